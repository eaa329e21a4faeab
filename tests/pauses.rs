//! Automatic pauses (sql/definitions/360_feedback_pauses.sql): a sender address whose last sends bounce
//! or are complained about over its threshold stops sending, and so does a direction
//! or client over 10 % hard bounces; each pause raises one alert, resolved once when
//! the operator resumes it with one UPDATE. Messages go out through the real routed
//! claim (log provider); events are recorded as the web role records them.

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::routing::{acme_on_one_provider, drain_at};
use crate::support::run::{executor, fast_config, registry};

/// Sends every queued message that can go, a second of simulated time per round (the
/// addresses' pacing spaces their sends), until five rounds in a row send nothing.
async fn send_all(pool: &PgPool) {
    let worker = executor(pool, registry(pool), fast_config());
    // Simulated time goes on from the latest send (or the next pacing slot).
    let start: chrono::DateTime<Utc> = sqlx::query_scalar(
        "SELECT greatest(now(), max(reserved_at) + interval '1 second',
                         (SELECT min(next_slot_at) FROM postrunner.address_usage WHERE active))
           FROM postrunner.send_attempts",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let mut idle = 0;
    for round in 0..400 {
        if drain_at(&worker, start + chrono::Duration::seconds(round)).await == 0 {
            idle += 1;
            if idle == 5 {
                return;
            }
        } else {
            idle = 0;
        }
    }
}

/// Records a `kind` event for each of the first `n` sent messages not reported yet.
async fn report(pool: &PgPool, kind: &str, n: i64) {
    let sent: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, to_address FROM postrunner.outbox o
          WHERE status = 'sent' AND NOT EXISTS (SELECT 1 FROM postrunner.events e WHERE e.message_id = o.id)
          ORDER BY id LIMIT $1",
    )
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap();
    let events: Vec<_> = sent
        .iter()
        .map(|(id, to)| {
            let mut e = json!({"dedupe_key": Uuid::new_v4().to_string(), "kind": kind, "recipient": to,
                               "our_id": id, "occurred_at": Utc::now()});
            if kind == "bounced" {
                e["bounce_class"] = json!("hard");
            }
            e
        })
        .collect();
    sqlx::query("SELECT postrunner.record_events('p', $1)")
        .bind(json!(events))
        .execute(pool)
        .await
        .unwrap();
}

/// `n` messages to recipients never written to before.
async fn fresh_messages(pool: &PgPool, n: i32) {
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
             SELECT 'acme', 'd', 'new' || i || '@example.net', 'Hello', 'Hi' FROM generate_series(1, {n}) AS i"
        ),
    )
    .await;
}

async fn address_status(pool: &PgPool) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT status::text, status_reason FROM postrunner.sender_addresses WHERE address = 'p-1@acme.test'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn alerts(pool: &PgPool, kind: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT state FROM postrunner.alerts WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_address_over_five_percent_hard_bounces_is_paused_with_one_alert_until_resumed() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 100_000, 40).await;
    send_all(pool).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'").await,
        40
    );

    report(pool, "bounced", 2).await; // 5 %: not over
    assert_eq!(address_status(pool).await.0, "active");
    report(pool, "bounced", 1).await; // 7.5 %
    let (status, reason) = address_status(pool).await;
    assert_eq!(status, "paused");
    assert!(reason.unwrap().contains("3 hard bounces in its last 40 sends"));
    report(pool, "bounced", 1).await;
    assert_eq!(
        alerts(pool, "address_paused").await,
        ["firing"],
        "one alert, however many bounces follow"
    );

    // The claim honours it at once: nothing more goes out from it.
    fresh_messages(pool, 5).await;
    send_all(pool).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued'").await,
        5
    );

    // Resuming is one UPDATE; the alert resolves once; rates restart from there. (The
    // simulated sends so far ran ahead of the clock: put them before the resume.)
    exec(
        pool,
        "UPDATE postrunner.send_attempts SET reserved_at = reserved_at - interval '1 hour'",
    )
    .await;
    exec(
        pool,
        "UPDATE postrunner.sender_addresses SET status = 'active' WHERE address = 'p-1@acme.test'",
    )
    .await;
    assert_eq!(alerts(pool, "address_paused").await, ["resolved"]);
    send_all(pool).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued'").await,
        0
    );
    report(pool, "bounced", 1).await;
    assert_eq!(
        address_status(pool).await.0,
        "active",
        "5 sends since the resume: under the minimum"
    );
}

#[tokio::test]
async fn an_address_needs_twenty_sends_before_it_can_be_paused() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 100_000, 10).await;
    send_all(pool).await;
    report(pool, "bounced", 5).await;
    assert_eq!(address_status(pool).await.0, "active");
}

#[tokio::test]
async fn complaints_pause_an_address_at_its_clients_threshold() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 100_000, 40).await;
    send_all(pool).await;
    // One complaint in 40 sends is 2.5 %: under this client's 5 %...
    exec(
        pool,
        "UPDATE postrunner.clients SET pause_address_complaint_rate = 0.05 WHERE name = 'acme'",
    )
    .await;
    report(pool, "complained", 1).await;
    assert_eq!(address_status(pool).await.0, "active");
    // ...and over the default 0.3 %.
    exec(
        pool,
        "UPDATE postrunner.clients SET pause_address_complaint_rate = NULL WHERE name = 'acme'",
    )
    .await;
    report(pool, "complained", 1).await;
    let (status, reason) = address_status(pool).await;
    assert_eq!(status, "paused");
    assert!(reason.unwrap().contains("complaints"));
}

#[tokio::test]
async fn a_direction_and_its_client_over_ten_percent_bounces_stop_until_both_are_resumed() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 4, 100_000, 100).await;
    // Addresses never pause here, so the direction's rule is what acts.
    exec(
        pool,
        "UPDATE postrunner.clients SET pause_address_bounce_rate = 1 WHERE name = 'acme'",
    )
    .await;
    send_all(pool).await;
    report(pool, "bounced", 10).await; // 10 %: not over
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.directions WHERE paused_at IS NOT NULL"
        )
        .await,
        0
    );
    report(pool, "bounced", 1).await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.directions WHERE paused_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.clients WHERE paused_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(alerts(pool, "direction_paused").await, ["firing"]);
    assert_eq!(alerts(pool, "client_paused").await, ["firing"]);

    fresh_messages(pool, 3).await;
    send_all(pool).await;
    let waiting: Option<String> = sqlx::query_scalar("SELECT waiting_for FROM postrunner.report_blocked")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(waiting.as_deref(), Some("paused"));
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued'").await,
        3
    );

    exec(pool, "UPDATE postrunner.directions SET paused_at = NULL").await;
    send_all(pool).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued'").await,
        3,
        "the client is still paused"
    );
    exec(pool, "UPDATE postrunner.clients SET paused_at = NULL").await;
    send_all(pool).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued'").await,
        0
    );
    assert_eq!(alerts(pool, "direction_paused").await, ["resolved"]);
    assert_eq!(alerts(pool, "client_paused").await, ["resolved"]);

    let (sends, bounces): (i64, i64) = sqlx::query_as(
        "SELECT sends_7d, bounces_7d FROM postrunner.report_bounce_rates WHERE level = 'direction' AND name = 'acme/d'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((sends, bounces), (103, 11));
}

/// Issue 18, 4.2: a paused address that is retired, or deleted, will never be resumed:
/// its alert resolves then, instead of firing forever; likewise a paused direction or
/// client that is deleted.
#[tokio::test]
async fn a_paused_address_retired_or_deleted_resolves_its_alert() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 2, 100_000, 0).await;
    exec(
        pool,
        "INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'old');
         UPDATE postrunner.sender_addresses SET status = 'paused', status_reason = 'bounces';
         UPDATE postrunner.directions SET paused_at = now(), paused_reason = 'bounces' WHERE name = 'old';
         INSERT INTO postrunner.alerts (kind, subject, detail) VALUES
             ('address_paused', 'p-1@acme.test', 'bounces'), ('address_paused', 'p-2@acme.test', 'bounces'),
             ('direction_paused', 'acme/old', 'bounces');",
    )
    .await;
    exec(
        pool,
        "UPDATE postrunner.sender_addresses SET status = 'retired' WHERE address = 'p-1@acme.test'",
    )
    .await;
    assert_eq!(alerts(pool, "address_paused").await, ["resolved", "firing"]);
    exec(
        pool,
        "DELETE FROM postrunner.sender_addresses WHERE address = 'p-2@acme.test';
         DELETE FROM postrunner.directions WHERE client = 'acme' AND name = 'old';",
    )
    .await;
    assert_eq!(alerts(pool, "address_paused").await, ["resolved", "resolved"]);
    assert_eq!(alerts(pool, "direction_paused").await, ["resolved"]);
}
