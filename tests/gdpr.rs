//! GDPR erasure and export (sql/definitions/100_gdpr_erasure.sql): after `erase`, no table holds the
//! person's address or their messages' contents in clear (every text and jsonb column
//! of the schema is searched), a later INSERT to them ends suppressed without storing
//! them, an export returns only the hashed suppression; other people are untouched.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
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

/// Erases Jane for acme (as `postrunner erase` does).
async fn erase_jane(pool: &PgPool) {
    sqlx::query("SELECT postrunner.erase_recipient('acme', $1)")
        .bind(JANE)
        .execute(pool)
        .await
        .unwrap();
}

/// Issue 18, 3.2a: providers keep posting events about an erased person for days
/// (opens, a late complaint, with the address in their payloads); suppressions come in
/// from imports and the providers' own lists; a one-click unsubscribe of an old link is
/// posted. After each of these paths, the address is nowhere in clear.
#[tokio::test]
async fn no_path_stores_an_erased_address_in_clear_again() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    jane_and_joe(pool).await;
    let sent: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM postrunner.outbox WHERE lower(to_address) = lower($1) AND status = 'sent' LIMIT 1",
    )
    .bind(JANE)
    .fetch_one(pool)
    .await
    .unwrap();
    erase_jane(pool).await;
    assert!(found_anywhere(pool, JANE).await.is_empty());

    // The provider's events about her message, naming her, with her in the payload.
    let events = json!([
        {"dedupe_key": "o1", "kind": "opened", "our_id": sent, "recipient": JANE,
         "occurred_at": chrono::Utc::now(), "payload": {"email": JANE, "event": "open"}},
        {"dedupe_key": "c1", "kind": "complained", "our_id": sent, "recipient": JANE,
         "diagnostic": format!("complaint from {JANE}"),
         "occurred_at": chrono::Utc::now(), "payload": {"email": JANE, "event": "spamreport"}}
    ]);
    let stored: i32 = sqlx::query_scalar("SELECT stored FROM postrunner.record_events('sg', $1)")
        .bind(events)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, 2, "the events are kept, without her");
    assert!(found_anywhere(pool, JANE).await.is_empty(), "after the events");

    // Suppressions from an import, a provider's list, and an unsubscribe of her message.
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.suppressions (client, address, reason, detail)
             VALUES ('acme', '{JANE}', 'manual', 'imported');
             INSERT INTO postrunner.suppressions (client, address, reason, detail)
             VALUES ('acme', 'JANE.DOE@example.org', 'complaint', 'sg suppression list')
             ON CONFLICT DO NOTHING;
             SELECT postrunner.unsubscribe('{sent}');"
        ),
    )
    .await;
    assert_eq!(
        found_anywhere(pool, JANE).await,
        Vec::<(String, String, i64)>::new(),
        "after the suppressions"
    );
    // She stays kept from mail (the erasure), and the others are untouched.
    crate::support::factory::message(pool, "acme", "d", JANE).await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.outbox WHERE status = 'suppressed'"
        )
        .await,
        1
    );
    assert!(!found_anywhere(pool, "joe@example.org").await.is_empty());
    crate::support::assert_promises_hold(pool).await;
}

/// Issue 18, 3.2b: a person who was only on a suppression list (imported, or pulled
/// from a provider) and erased is in clear again in a database restored from a backup
/// taken before the erasure; replaying the erasure log finds them there too.
#[tokio::test]
async fn a_person_only_on_a_suppression_list_is_erased_again_after_a_restore() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    jane_and_joe(pool).await;
    exec(
        pool,
        "INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'ann@example.org', 'manual')",
    )
    .await;
    sqlx::query("SELECT postrunner.erase_recipient('acme', 'ann@example.org')")
        .execute(pool)
        .await
        .unwrap();
    assert!(found_anywhere(pool, "ann@example.org").await.is_empty());

    // The restored backup's rows, from before the erasure (written as pg_restore does,
    // without triggers).
    exec(
        pool,
        "SET session_replication_role = replica;
         INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'ann@example.org', 'manual');
         SET session_replication_role = origin;",
    )
    .await;
    assert!(!found_anywhere(pool, "ann@example.org").await.is_empty());
    sqlx::query("SELECT postrunner.replay_erasures()")
        .execute(pool)
        .await
        .unwrap();
    assert!(found_anywhere(pool, "ann@example.org").await.is_empty());
    crate::support::assert_promises_hold(pool).await;
}

/// Issue 18, 2.3: erasing a person whose send is held as uncertain closes its ledger
/// row (resolution 'erased'): it is neither counted as in flight forever nor looked at
/// by the resolver again.
#[tokio::test]
async fn erasing_a_person_whose_send_is_held_closes_its_uncertain_attempt() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    crate::support::routing::acme_on_one_provider(pool, 1, 1000, 0).await;
    crate::support::factory::message(pool, "acme", "d", JANE).await;
    // Claimed, then held: the provider may have taken it.
    let job: i64 = sqlx::query_scalar(
        "SELECT id FROM postrunner.claim_messages(1, gen_random_uuid(), gen_random_uuid(), '1 minute', NULL, false)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let token: uuid::Uuid = sqlx::query_scalar("SELECT lease_token FROM postrunner.jobs WHERE id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap();
    postrunner_schema::statements::queue::fail(
        &[job],
        &[token],
        &["held"],
        &[0.0],
        &["timed out: the outcome is uncertain".to_owned()],
        None,
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'uncertain'"
        )
        .await,
        1
    );
    erase_jane(pool).await;
    let closed: (String, Option<String>) =
        sqlx::query_as("SELECT outcome::text, resolution FROM postrunner.send_attempts")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(closed, ("failed".to_owned(), Some("erased".to_owned())));
    let uncertain: i64 = count(
        pool,
        "SELECT coalesce(sum(uncertain), 0)::bigint FROM postrunner.report_daily_volume",
    )
    .await;
    assert_eq!(uncertain, 1, "its capacity stays used: the provider may have it");
    crate::support::assert_promises_hold(pool).await;
}
