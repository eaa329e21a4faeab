//! The configuration tables refuse bad rows when they are written.

use crate::support::app::TestApp;
use crate::support::db::TestDb;

async fn refused(db: &TestDb, sql: &str) -> String {
    match sqlx::query(sql).execute(&db.pool).await {
        Ok(_) => panic!("accepted: {sql}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_configuration_rows_are_refused() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    sqlx::query(
        "INSERT INTO postrunner.providers (name, kind, secret_env) VALUES ('sg', 'sendgrid', 'SENDGRID_API_KEY')",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let cases = [
        ("INSERT INTO postrunner.clients (name, time_zone) VALUES ('beta', 'Mars/Olympus')", "clients_time_zone_check"),
        ("INSERT INTO postrunner.clients (name) VALUES ('Has Spaces')", "clients_name_check"),
        ("INSERT INTO postrunner.directions (client, name) VALUES ('nobody', 'q1')", "directions_client_fkey"),
        (
            "INSERT INTO postrunner.directions (client, name, window_start, window_end) VALUES ('acme', 'q2', '18:00', '09:00')",
            "directions_window_not_empty",
        ),
        ("INSERT INTO postrunner.directions (client, name, send_days) VALUES ('acme', 'q3', '{0,8}')", "directions_send_days_check"),
        ("INSERT INTO postrunner.providers (name, kind) VALUES ('x', 'carrier-pigeon')", "invalid input value for enum"),
        // A secret itself instead of the NAME of the variable that holds it.
        ("INSERT INTO postrunner.providers (name, kind, secret_env) VALUES ('y', 'mailgun', 'key-3ax6xnjp29jd6fds4gc373sgvjxteol0')", "providers_secret_env_check"),
        ("INSERT INTO postrunner.providers (name, kind, endpoint) VALUES ('z', 'smtp', 'mail.example.org')", "providers_endpoint_check"),
        ("INSERT INTO postrunner.sender_addresses (address, provider, client) VALUES ('not-an-address', 'sg', 'acme')", "sender_addresses_address_check"),
        ("INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit) VALUES ('a@acme.test', 'sg', 'acme', 0)", "sender_addresses_daily_limit_check"),
        ("INSERT INTO postrunner.sender_addresses (address, provider, client) VALUES ('a@acme.test', 'nope', 'acme')", "sender_addresses_provider_fkey"),
        ("INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'x@example.org', 'dislike')", "invalid input value for enum"),
        ("INSERT INTO postrunner.direction_providers (client, direction, provider) VALUES ('acme', 'q9', 'sg')", "direction_providers_client_direction_fkey"),
    ];
    for (sql, expected) in cases {
        let error = refused(db, sql).await;
        assert!(
            error.contains(expected),
            "{sql}\n  expected {expected:?}\n  got {error}"
        );
    }

    // Addresses are unique whatever their case, per client for suppressions.
    sqlx::query("INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'Jane@Example.org', 'unsubscribe')")
        .execute(&db.pool)
        .await
        .unwrap();
    let error = refused(
        db,
        "INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'jane@example.org', 'manual')",
    )
    .await;
    assert!(error.contains("suppressions_client_address_idx"), "{error}");
}
