//! GDPR erasure and export (sql/gdpr/erasure.sql): after `erase`, no table holds the
//! person's address or their messages' contents in clear (every text and jsonb column
//! of the schema is searched), a later INSERT to them ends suppressed without storing
//! them, an export returns only the hashed suppression; other people are untouched.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::routing::{count, exec};
use crate::support::run::Process;
use crate::support::webhooks::sent_message;

const JANE: &str = "Jane.Doe@example.org";

/// Rows of any table in schema postrunner with `needle` in a text, varchar or jsonb
/// column: (table, column, rows).
async fn found_anywhere(pool: &PgPool, needle: &str) -> Vec<(String, String, i64)> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text
           FROM information_schema.columns c
           JOIN information_schema.tables t ON (t.table_schema, t.table_name) = (c.table_schema, c.table_name)
          WHERE c.table_schema = 'postrunner' AND t.table_type = 'BASE TABLE'
            AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(columns.len() > 30, "the scan sees the schema's columns");
    let mut found = Vec::new();
    for (table, column) in columns {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM postrunner.{table} WHERE lower({column}::text) LIKE '%' || lower($1) || '%'"
        ))
        .bind(needle)
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            found.push((table, column, n));
        }
    }
    found
}

/// Jane: two sent messages (one bounced, with its event), one still queued, her
/// suppression; Joe: one sent message.
async fn jane_and_joe(pool: &PgPool) {
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.providers (name, kind) VALUES ('sg', 'sendgrid');",
    )
    .await;
    let bounced = sent_message(pool, "sg", JANE, "sg-1").await;
    sent_message(pool, "sg", "jane.doe@example.org", "sg-2").await;
    sent_message(pool, "sg", "joe@example.org", "sg-3").await;
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, metadata)
         VALUES ('acme', 'd', $1, 'Follow-up for Jane', 'Dear Jane Doe', '{\"crm\": \"jane.doe@example.org\"}')",
    )
    .bind(JANE)
    .execute(pool)
    .await
    .unwrap();
    let events = json!([{
        "dedupe_key": "b1", "kind": "bounced", "bounce_class": "hard", "our_id": bounced,
        "recipient": JANE, "diagnostic": "550 5.1.1 user unknown",
        "occurred_at": chrono::Utc::now(), "payload": {"email": JANE, "event": "bounce"}
    }]);
    sqlx::query("SELECT * FROM postrunner.record_events('sg', $1)")
        .bind(events)
        .execute(pool)
        .await
        .unwrap();
}

async fn export(pool: &PgPool, address: &str) -> Value {
    sqlx::query_scalar("SELECT postrunner.export_recipient('acme', $1)")
        .bind(address)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_erased_person_is_nowhere_in_clear_and_never_mailed_again() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    jane_and_joe(pool).await;

    let before = export(pool, "jane.doe@EXAMPLE.org").await;
    assert_eq!(before["messages"].as_array().unwrap().len(), 3);
    assert_eq!(before["events"].as_array().unwrap().len(), 1);
    assert_eq!(before["suppression"]["reason"], "hard_bounce");
    assert!(before["erasure"].is_null());
    assert!(!found_anywhere(pool, JANE).await.is_empty());

    // The command, as an operator runs it.
    let mut erase = Process::spawn(&db.url, &["erase", "--client", "acme", "--address", JANE]);
    assert!(erase.child.wait().await.unwrap().success(), "{}", erase.logs());
    assert!(
        !erase.logs().to_lowercase().contains("jane.doe@"),
        "no address in the logs"
    );

    assert_eq!(found_anywhere(pool, "jane.doe").await, [], "nothing left in clear");
    assert_eq!(
        found_anywhere(pool, "Dear Jane").await,
        [],
        "nor her messages' contents"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.outbox WHERE to_address = 'joe@example.org'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.outbox WHERE status = 'cancelled'"
        )
        .await,
        1,
        "the queued one will not be sent"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.jobs WHERE kind = 'email.send' AND state <> 'cancelled'"
        )
        .await,
        0
    );

    // A later INSERT to her: accepted, suppressed at once, not stored in clear.
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'JANE.DOE@example.org', 'Again', 'Dear Jane')",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(found_anywhere(pool, "jane.doe").await, []);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.outbox WHERE subject = '[erased]' AND status = 'suppressed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.jobs WHERE kind = 'email.send' AND state <> 'cancelled'"
        )
        .await,
        0,
        "nothing to send"
    );

    let after = export(pool, JANE).await;
    assert_eq!(after["messages"], json!([]));
    assert_eq!(after["events"], json!([]));
    assert!(after["suppression"].is_null());
    assert!(after["erasure"]["address_hash"].as_str().is_some_and(|h| h.len() == 64));
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.erasures").await,
        1,
        "one logged erasure"
    );

    // Erasing again changes nothing, and the export command prints the same.
    sqlx::query("SELECT postrunner.erase_recipient('acme', $1)")
        .bind(JANE)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.erasures").await, 1);
}

#[tokio::test]
async fn an_erasure_is_replayed_after_restoring_an_older_backup() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    jane_and_joe(pool).await;
    sqlx::query("SELECT postrunner.erase_recipient('acme', $1)")
        .bind(JANE)
        .execute(pool)
        .await
        .unwrap();
    // What an older backup brings back: her message in clear, the erasure log kept.
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'joe@example.org', 'x', 'y')",
    )
    .execute(pool)
    .await
    .unwrap();
    exec(
        pool,
        &format!(
            "ALTER TABLE postrunner.outbox DISABLE TRIGGER outbox_before_insert;
             INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, job_id)
             VALUES ('acme', 'd', '{JANE}', 'restored', 'Dear Jane', 999999);
             ALTER TABLE postrunner.outbox ENABLE TRIGGER outbox_before_insert;"
        ),
    )
    .await;
    assert!(!found_anywhere(pool, "jane.doe").await.is_empty());
    let replayed: i32 = sqlx::query_scalar("SELECT postrunner.replay_erasures()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(found_anywhere(pool, "jane.doe").await, []);
}

#[tokio::test]
async fn an_application_login_cannot_erase_or_read_the_erasure_log() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    jane_and_joe(pool).await;
    let app = crate::support::logins::Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    assert!(app
        .run(&format!("SELECT postrunner.erase_recipient('acme', '{JANE}')"))
        .await
        .is_err());
    assert!(app.count("SELECT count(*) FROM postrunner.erasures").await.is_err());
    app.remove(&db).await;
}
