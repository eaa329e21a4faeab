//! The policies provider events feed, in SQL (sql/definitions/*_feedback_*.sql): suppressions with the
//! event that caused them, quarantine after repeated soft bounces that ends by
//! itself, and messages still queued to a suppressed recipient ending 'suppressed'.
//! Events are recorded here through postrunner.record_events, as the web role does
//! after verifying a request (tests/webhooks.rs covers the HTTP side).

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::routing::{acme_on_one_provider, at, drain_at};
use crate::support::run::{executor, fast_config, registry};
use crate::support::webhooks::{sent_message, status_of, suppression};

async fn record(pool: &PgPool, events: serde_json::Value) -> (i32, i32) {
    sqlx::query_as("SELECT stored, duplicates FROM postrunner.record_events('p', $1)")
        .bind(events)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn soft_bounce(message: Uuid, to: &str, occurred: DateTime<Utc>) -> serde_json::Value {
    json!({"dedupe_key": Uuid::new_v4().to_string(), "kind": "bounced", "bounce_class": "soft",
           "recipient": to, "our_id": message, "occurred_at": occurred, "diagnostic": "452 mailbox full"})
}

async fn queued_to(pool: &PgPool, to: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', $1, 'Hi', 'x') RETURNING id",
    )
    .bind(to)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn three_soft_bounces_in_a_week_quarantine_a_recipient_until_it_expires() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1000, 0).await;
    let m = sent_message(pool, "p", "jane@example.org", "p-1").await;
    // Whole microseconds: what PostgreSQL keeps.
    let t0 = (Utc::now() - Duration::days(20)).trunc_subsecs(6);

    // Two soft bounces, then a third eight days later: never three within seven days.
    record(
        pool,
        json!([
            soft_bounce(m, "jane@example.org", t0),
            soft_bounce(m, "jane@example.org", t0 + Duration::days(1))
        ]),
    )
    .await;
    record(
        pool,
        json!([soft_bounce(m, "jane@example.org", t0 + Duration::days(9))]),
    )
    .await;
    assert_eq!(suppression(pool, "jane@example.org").await, None);
    assert_eq!(
        status_of(pool, m).await,
        "sent",
        "a soft bounce does not end the message"
    );
    // Two more within the week of the third: quarantined, for 30 days from the last.
    record(
        pool,
        json!([
            soft_bounce(m, "jane@example.org", t0 + Duration::days(10)),
            soft_bounce(m, "Jane@Example.org", t0 + Duration::days(11))
        ]),
    )
    .await;
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("soft_bounce".into(), true, true))
    );
    let expires: DateTime<Utc> = sqlx::query_scalar("SELECT expires_at FROM postrunner.suppressions")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(expires, t0 + Duration::days(41));

    // A message queued to her is suppressed while the quarantine lasts...
    let during = queued_to(pool, "jane@example.org").await;
    let worker = executor(pool, registry(pool), fast_config());
    drain_at(&worker, Utc::now()).await;
    assert_eq!(status_of(pool, during).await, "suppressed");
    // ...and goes out once it has ended.
    let after = queued_to(pool, "jane@example.org").await;
    drain_at(&worker, expires + Duration::minutes(1)).await;
    assert_eq!(status_of(pool, after).await, "sent");
}

#[tokio::test]
async fn a_client_sets_its_own_soft_bounce_policy() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1000, 0).await;
    exec(
        pool,
        "UPDATE postrunner.clients SET soft_bounce_limit = 1, quarantine_days = 2 WHERE name = 'acme'",
    )
    .await;
    let m = sent_message(pool, "p", "joe@example.org", "p-1").await;
    let now = Utc::now();
    record(pool, json!([soft_bounce(m, "joe@example.org", now)])).await;
    let days: f64 =
        sqlx::query_scalar("SELECT (extract(epoch FROM expires_at - $1) / 86400)::float8 FROM postrunner.suppressions")
            .bind(now)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!((days - 2.0).abs() < 0.01, "{days}");
}

#[tokio::test]
async fn a_hard_bounce_or_complaint_makes_a_quarantine_permanent_and_names_its_event() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1000, 0).await;
    exec(
        pool,
        "UPDATE postrunner.clients SET soft_bounce_limit = 1 WHERE name = 'acme'",
    )
    .await;
    let m = sent_message(pool, "p", "jane@example.org", "p-1").await;
    record(pool, json!([soft_bounce(m, "jane@example.org", Utc::now())])).await;
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("soft_bounce".into(), true, true))
    );
    record(
        pool,
        json!([{"dedupe_key": "c1", "kind": "complained", "recipient": "jane@example.org",
                         "our_id": m, "occurred_at": Utc::now()}]),
    )
    .await;
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("complaint".into(), true, false))
    );
    let (reason, event_kind): (String, String) = sqlx::query_as(
        "SELECT s.reason::text, e.kind::text FROM postrunner.suppressions s JOIN postrunner.events e ON e.id = s.event_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), event_kind.as_str()), ("complaint", "complained"));
    // An unsubscribe later does not weaken the complaint.
    record(
        pool,
        json!([{"dedupe_key": "u1", "kind": "unsubscribed", "recipient": "jane@example.org",
                         "our_id": m, "occurred_at": Utc::now()}]),
    )
    .await;
    assert_eq!(suppression(pool, "jane@example.org").await.unwrap().0, "complaint");
    assert_eq!(status_of(pool, m).await, "complained");
}

#[tokio::test]
async fn messages_queued_to_a_hard_bounced_recipient_end_suppressed_without_using_capacity() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1000, 0).await;
    let m = sent_message(pool, "p", "jane@example.org", "p-1").await;
    let queued = [
        queued_to(pool, "jane@example.org").await,
        queued_to(pool, "JANE@example.org").await,
    ];
    let other = queued_to(pool, "joe@example.org").await;
    record(
        pool,
        json!([{"dedupe_key": "b1", "kind": "bounced", "bounce_class": "hard", "recipient": "jane@example.org",
                         "our_id": m, "occurred_at": Utc::now(), "diagnostic": "550 5.1.1 unknown user"}]),
    )
    .await;
    let worker = executor(pool, registry(pool), fast_config());
    drain_at(&worker, Utc::now()).await;
    for id in queued {
        assert_eq!(status_of(pool, id).await, "suppressed");
    }
    assert_eq!(status_of(pool, other).await, "sent");
    assert_eq!(
        count(
            pool,
            &format!("SELECT count(*) FROM postrunner.send_attempts WHERE message_id <> '{m}'")
        )
        .await,
        1,
        "of the queued messages, only joe's used an attempt"
    );
}

#[tokio::test]
async fn an_event_that_arrives_before_the_send_is_recorded_still_sets_the_status() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1000, 0).await;
    let id = queued_to(pool, "jane@example.org").await;
    // The event is committed while the message is still 'sending' (a fast webhook);
    // the completion that follows keeps what the event said.
    // (The claim's reservation at p, which the event is matched by.)
    exec(
        pool,
        &format!(
            "UPDATE postrunner.outbox SET status = 'sending' WHERE id = '{id}';
             INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider,
                                                   from_address, day, reserved_at)
             SELECT id, job_id, 1, client, direction, 'p', 'a1@acme.test', current_date, now()
               FROM postrunner.outbox WHERE id = '{id}'"
        ),
    )
    .await;
    let (stored, _) = record(
        pool,
        json!([{"dedupe_key": "d1", "kind": "delivered", "recipient": "jane@example.org",
                                           "our_id": id, "occurred_at": Utc::now()}]),
    )
    .await;
    assert_eq!(stored, 1);
    assert_eq!(
        status_of(pool, id).await,
        "sending",
        "the worker's row until its completion"
    );
    exec(
        pool,
        &format!(
            "UPDATE postrunner.outbox SET status = 'queued' WHERE id = '{id}';
             UPDATE postrunner.send_attempts SET outcome = 'released' WHERE message_id = '{id}'"
        ),
    )
    .await;
    let worker = executor(pool, registry(pool), fast_config());
    drain_at(&worker, at("2026-12-01T12:00:00Z").max(Utc::now())).await;
    assert_eq!(status_of(pool, id).await, "delivered");
}

#[tokio::test]
async fn cleanup_drops_old_payloads_and_nonces_and_keeps_the_events() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.events (provider, dedupe_key, kind, occurred_at, received_at, payload) VALUES
             ('p', 'old', 'delivered', now() - interval '40 days', now() - interval '40 days', '{\"a\": 1}'),
             ('p', 'new', 'delivered', now(), now(), '{\"a\": 2}');
         INSERT INTO postrunner.webhook_nonces (scope, nonce, seen_at) VALUES
             ('p', 'old', now() - interval '3 days'), ('p', 'new', now());",
    )
    .await;
    let (_, _, _, nonces, payloads): (i64, i64, i64, i64, i64) =
        postrunner_schema::statements::queue::cleanup(std::time::Duration::from_secs(30 * 86400))
            .rows()
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((nonces, payloads), (1, 1));
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.events").await,
        2,
        "the events stay"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.events WHERE payload IS NULL AND dedupe_key = 'old'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.webhook_nonces WHERE nonce = 'new'"
        )
        .await,
        1
    );
}
