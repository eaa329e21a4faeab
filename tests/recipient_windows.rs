//! Sending windows in the recipient's time zone (issue 10, part 6): a direction whose
//! window follows the recipient sends each message within the window where its
//! recipient is, across time zones and a daylight-saving change; waiting messages use
//! no capacity and report_blocked says which zone they wait for. Time moves through the
//! claim's `now`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory;
use crate::support::routing::{addresses, at, drain_at, provider};
use crate::support::run::{executor, fast_config, registry};

/// A message of acme/`direction` to `to` whose recipient lives in `zone`.
async fn message_in(pool: &PgPool, direction: &str, to: &str, zone: Option<&str>) {
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, recipient_time_zone)
         VALUES ('acme', $1, $2, 'Hello', 'Hi', $3)",
    )
    .bind(direction)
    .bind(to)
    .bind(zone)
    .execute(pool)
    .await
    .unwrap();
}

/// Recipients sent to so far, in order.
async fn sent(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT to_address FROM postrunner.outbox WHERE status = 'sent' ORDER BY sent_at, to_address")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// report_blocked's (waiting_for, until) for the lane of recipients in `zone`.
async fn gate_of(pool: &PgPool, zone: &str) -> (Option<String>, Option<DateTime<Utc>>, Option<String>) {
    sqlx::query_as(
        "SELECT waiting_for, until, detail FROM postrunner.report_blocked
          WHERE client = 'acme' AND direction = 'local' AND recipient_zone IS NOT DISTINCT FROM $1",
    )
    .bind((!zone.is_empty()).then_some(zone))
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_message_goes_within_office_hours_where_its_recipient_is() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "local").await;
    exec(
        pool,
        "UPDATE postrunner.directions
            SET send_days = '{1,2,3,4,5}', window_start = '09:00', window_end = '17:00',
                time_zone = 'Europe/London', window_basis = 'recipient'",
    )
    .await;
    provider(pool, "p", 100).await;
    addresses(pool, "acme", "p", 10, 1000).await;
    message_in(pool, "local", "ny@example.org", Some("America/New_York")).await;
    message_in(pool, "local", "tokyo@example.org", Some("Asia/Tokyo")).await;
    message_in(pool, "local", "berlin@example.org", Some("Europe/Berlin")).await;
    // No zone given: the direction's own (London).
    message_in(pool, "local", "somewhere@example.org", None).await;
    let worker = executor(pool, registry(pool), fast_config());

    // Friday 2027-03-12 08:30 UTC: 09:30 in Berlin, 08:30 in London, 17:30 in Tokyo,
    // 03:30 in New York (still on EST, UTC-5).
    assert_eq!(drain_at(&worker, at("2027-03-12T08:30:00Z")).await, 1);
    assert_eq!(sent(pool).await, ["berlin@example.org"]);
    let (why, until, detail) = gate_of(pool, "America/New_York").await;
    assert_eq!(why.as_deref(), Some("window"));
    assert_eq!(until, Some(at("2027-03-12T14:00:00Z")), "09:00 EST");
    assert!(detail.unwrap().contains("recipient local, America/New_York"));
    assert_eq!(
        gate_of(pool, "Asia/Tokyo").await.1,
        Some(at("2027-03-15T00:00:00Z")),
        "Monday 09:00 in Tokyo"
    );
    assert_eq!(
        gate_of(pool, "").await.1,
        Some(at("2027-03-12T09:00:00Z")),
        "09:00 in London"
    );
    // They wait without using capacity: one reservation so far.
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.send_attempts").await, 1);

    assert_eq!(drain_at(&worker, at("2027-03-12T09:00:00Z")).await, 1);
    assert_eq!(drain_at(&worker, at("2027-03-12T13:59:00Z")).await, 0);
    assert_eq!(drain_at(&worker, at("2027-03-12T14:00:00Z")).await, 1);
    assert_eq!(
        sent(pool).await,
        ["berlin@example.org", "somewhere@example.org", "ny@example.org"]
    );

    // Friday 17:00 in New York: closed until Monday 09:00, which is EDT (UTC-4) after
    // the change of Sunday 14 March: 13:00 UTC, not 14:00.
    message_in(pool, "local", "ny2@example.org", Some("America/New_York")).await;
    assert_eq!(drain_at(&worker, at("2027-03-12T22:00:00Z")).await, 0);
    assert_eq!(
        gate_of(pool, "America/New_York").await.1,
        Some(at("2027-03-15T13:00:00Z"))
    );
    // Monday 00:00 UTC is 09:00 in Tokyo.
    assert_eq!(drain_at(&worker, at("2027-03-15T00:00:00Z")).await, 1);
    assert_eq!(drain_at(&worker, at("2027-03-15T12:59:00Z")).await, 0);
    assert_eq!(drain_at(&worker, at("2027-03-15T13:00:00Z")).await, 1);
    assert_eq!(
        sent(pool).await,
        [
            "berlin@example.org",
            "somewhere@example.org",
            "ny@example.org",
            "tokyo@example.org",
            "ny2@example.org"
        ]
    );
}

#[tokio::test]
async fn a_direction_on_its_own_window_ignores_the_recipients_zone() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "local").await;
    exec(
        pool,
        "UPDATE postrunner.directions SET window_start = '09:00', window_end = '17:00', time_zone = 'Europe/London'",
    )
    .await;
    provider(pool, "p", 100).await;
    addresses(pool, "acme", "p", 10, 1000).await;
    message_in(pool, "local", "ny@example.org", Some("America/New_York")).await;
    message_in(pool, "local", "tokyo@example.org", Some("Asia/Tokyo")).await;
    let worker = executor(pool, registry(pool), fast_config());
    assert_eq!(drain_at(&worker, at("2027-03-12T10:00:00Z")).await, 2);
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.lanes").await, 1);
}

/// What an application writes must not make lanes without bound (issue 18, 1.2): every
/// name PostgreSQL's AT TIME ZONE accepts but the tz database does not list under an
/// IANA area (POSIX rules, `posix/` copies, other cases) is refused by the INSERT, with
/// a message that names the column.
#[tokio::test]
async fn a_recipient_time_zone_must_be_a_canonical_iana_name() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "local").await;
    for zone in [
        "ZZ+0:00:01",
        "Mars/Olympus",
        "EST5EDT,M3.2.0,M11.1.0",
        "EST5EDT",
        "posix/America/New_York",
        "america/new_york",
        "AMERICA/NEW_YORK",
        "UTC+3",
    ] {
        let refused = sqlx::query(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, recipient_time_zone)
             VALUES ('acme', 'local', 'a@example.org', 'Hello', 'Hi', $1)",
        )
        .bind(zone)
        .execute(pool)
        .await
        .unwrap_err();
        assert!(
            refused.to_string().contains(&format!(
                "recipient_time_zone '{zone}' is not a canonical IANA time zone name"
            )),
            "{zone}: {refused}"
        );
    }
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.outbox").await, 0);
    for zone in [
        "America/New_York",
        "Europe/Paris",
        "America/Argentina/Buenos_Aires",
        "UTC",
    ] {
        sqlx::query(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, recipient_time_zone)
             VALUES ('acme', 'local', 'a@example.org', 'Hello', 'Hi', $1)",
        )
        .bind(zone)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{zone}: {e}"));
    }
}
