//! Sends whose outcome is uncertain (sql/definitions/340_outbox_uncertain.sql): the provider may have
//! taken the message (it processed the request, then the connection broke or the
//! answer came too late), so the message is held, its capacity kept, and decided by
//! evidence (a signed webhook event, a provider lookup) or, after the wait, by the
//! client's duplicate policy. Real simulators that take the message and then fail the
//! answer; events signed by independent code; the real worker and resolver.

use std::sync::Arc;
use std::time::Duration;

use postrunner::kinds::{self, uncertain::ResolveUncertain};
use postrunner_providers::mailgun::Mailgun;
use postrunner_providers::postmark::Postmark;
use postrunner_providers::resend::Resend;
use postrunner_providers::secret::Secret;
use postrunner_providers::sendgrid::SendGrid;
use postrunner_providers::{http, Directory, Provider};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory::{self, status};
use crate::support::fake_provider::{FakeProvider, Fault, Kind};
use crate::support::run::{fast_config, spawn, Running};
use crate::support::webhooks::{headers_of, now_unix, post, secret_variable, sendgrid_event, serve, sign};
use crate::support::{eventually, wait_for_count};

const KEY: &str = "uncertain-key";

/// Client acme (direction d) sending through one provider `p` of `kind` at the
/// simulator (with a minute rate and a monthly budget, so both are counted), from one
/// address whose pacing does not hold a resend back; a directory whose adapter for `p`
/// gives up on an answer after 500 ms.
async fn acme_on(db: &TestDb, kind: Kind) -> (FakeProvider, Arc<Directory>) {
    let fake = FakeProvider::start(kind, KEY).await;
    let kind_name = match kind {
        Kind::SendGrid => "sendgrid",
        Kind::Postmark => "postmark",
        Kind::Resend => "resend",
        Kind::Mailgun => "mailgun",
        Kind::Ses => "ses",
    };
    exec(
        &db.pool,
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
             INSERT INTO postrunner.providers (name, kind, per_minute, monthly_budget)
             VALUES ('p', '{kind_name}', 1000, 100000);
             INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
             VALUES ('alice@mail.acme.test', 'p', 'acme', 10000000);"
        ),
    )
    .await;
    let url = fake.url.clone();
    let client = http::client(Duration::from_millis(500));
    let directory = Directory::with_builder(db.pool.clone(), move |name| {
        let key = Secret::new(KEY.to_owned());
        let adapter: Arc<dyn Provider> = match (name, kind) {
            ("p", Kind::SendGrid) => Arc::new(SendGrid::new(name, &url, key, client.clone())),
            ("p", Kind::Postmark) => Arc::new(Postmark::new(name, &url, key, client.clone())),
            ("p", Kind::Resend) => Arc::new(Resend::new(name, &url, key, client.clone())),
            ("p", Kind::Mailgun) => Arc::new(Mailgun::new(name, &url, key, client.clone())),
            _ => return None,
        };
        Some(adapter)
    });
    (fake, Arc::new(directory))
}

async fn one_message(pool: &PgPool) -> Uuid {
    factory::message(pool, "acme", "d", "jane@example.org").await
}

fn worker(pool: &PgPool, directory: &Arc<Directory>) -> Running {
    spawn(pool, kinds::registry(pool.clone(), directory.clone()), fast_config())
}

/// The message's attempts: (attempt, outcome, resolution).
async fn history(pool: &PgPool, id: Uuid) -> Vec<(i32, String, Option<String>)> {
    sqlx::query_as(
        "SELECT attempt, outcome::text, resolution FROM postrunner.send_attempts WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Enqueues one message and runs a worker until the message is held as uncertain.
async fn send_and_hold(pool: &PgPool, directory: &Arc<Directory>) -> (Uuid, Running) {
    let id = one_message(pool).await;
    let running = worker(pool, directory);
    held(pool, id).await;
    (id, running)
}

/// The resolver task, as a worker runs it (no unsubscribe links).
fn resolver(pool: &PgPool, directory: &Arc<Directory>) -> ResolveUncertain {
    ResolveUncertain::new(pool.clone(), directory.clone(), None)
}

/// Waits until message `id` is held as uncertain.
async fn held(pool: &PgPool, id: Uuid) {
    wait_for_count(
        pool,
        &format!(
            "SELECT count(*) FROM postrunner.outbox o JOIN postrunner.jobs j ON j.id = o.job_id
              WHERE o.id = '{id}' AND o.status = 'uncertain' AND j.state = 'held'"
        ),
        1,
        Duration::from_secs(20),
    )
    .await;
}

/// The address's count for today and the provider's for this month: what the
/// uncertain attempt keeps reserved.
async fn capacity_used(pool: &PgPool) -> (i64, i64) {
    let day = count(
        pool,
        "SELECT coalesce(sum(sent_on_day), 0) FROM postrunner.address_usage WHERE address = 'alice@mail.acme.test'",
    )
    .await;
    let month = count(
        pool,
        "SELECT coalesce(sum(sent_in_month), 0) FROM postrunner.provider_usage WHERE provider = 'p'",
    )
    .await;
    (day, month)
}

async fn wait_secs(pool: &PgPool, secs: u32) {
    exec(
        pool,
        &format!("UPDATE postrunner.settings SET value = '{secs}' WHERE name = 'uncertain_wait_secs'"),
    )
    .await;
}

/// Sends one message whose answer fails with `fault` (so it is held as uncertain), with
/// a one-second wait, and lets the wait pass: the resolver's next pass decides it.
async fn held_past_its_wait(
    pool: &PgPool,
    directory: &Arc<Directory>,
    fake: &FakeProvider,
    fault: Fault,
) -> (Uuid, Running) {
    fake.fail_next([fault]);
    wait_secs(pool, 1).await;
    let held = send_and_hold(pool, directory).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    held
}

async fn never_duplicate(pool: &PgPool) {
    exec(
        pool,
        "UPDATE postrunner.clients SET duplicate_policy = 'never-duplicate' WHERE name = 'acme'",
    )
    .await;
}

#[tokio::test]
async fn a_dropped_connection_holds_the_message_and_a_signed_delivered_event_sends_it_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    // SendGrid takes the message, then the connection breaks before the answer.
    fake.fail_next([Fault::Drop]);
    wait_secs(pool, 2).await;
    let (id, running) = send_and_hold(pool, &directory).await;
    assert_eq!(capacity_used(pool).await, (1, 1), "its capacity stays reserved");
    assert_eq!(history(pool, id).await, [(1, "uncertain".to_owned(), None)]);

    // SendGrid's delivered event comes back through the signed webhook.
    let key = sign(json!({"op": "sendgrid-key"}));
    let variable = secret_variable(key["public_b64"].as_str().unwrap());
    exec(
        pool,
        &format!("UPDATE postrunner.providers SET webhook_secret_env = '{variable}' WHERE name = 'p'"),
    )
    .await;
    let base = serve(pool).await;
    let body = json!([sendgrid_event(
        "delivered",
        id,
        "jane@example.org",
        json!({"sg_message_id": "SGtaken.filter0001"})
    )])
    .to_string();
    let signed = headers_of(&sign(json!({
        "op": "sendgrid", "private_pem": key["private_pem"], "timestamp": now_unix(), "body": body
    })));
    let answer = post(&format!("{base}/webhooks/p"), &signed, body).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    assert_eq!(status(pool, id).await, "delivered");
    assert_eq!(
        history(pool, id).await,
        [(1, "sent".to_owned(), Some("event".to_owned()))]
    );
    assert_eq!(
        count(pool, &format!("SELECT count(*) FROM postrunner.jobs WHERE id = (SELECT job_id FROM postrunner.outbox WHERE id = '{id}')")).await,
        0,
        "its job is done"
    );
    let provider_id: Option<String> =
        sqlx::query_scalar("SELECT provider_message_id FROM postrunner.outbox WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    // SendGrid's event id is its X-Message-Id and a suffix: the message's id is the prefix.
    assert_eq!(provider_id.as_deref(), Some("SGtaken"));

    // Past the wait, nothing is sent again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let settled = resolver(pool, &directory).pass(None).await.unwrap();
    assert_eq!(settled.resent, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    assert_eq!(fake.received().len(), 1, "no duplicate");
    assert_eq!(capacity_used(pool).await, (1, 1));
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn without_evidence_it_is_sent_again_once_after_the_wait() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    // Taken, but answered only after the client gave up (500 ms).
    fake.fail_next([Fault::Slow(Duration::from_secs(2))]);
    wait_secs(pool, 1).await;
    let (id, running) = send_and_hold(pool, &directory).await;
    assert_eq!(fake.received().len(), 1);

    // Before the wait is over, the resolver leaves it held.
    let resolver = resolver(pool, &directory);
    let early = resolver.pass(None).await.unwrap();
    if early.resent == 0 {
        assert_eq!(status(pool, id).await, "uncertain");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let settled = resolver.pass(None).await.unwrap();
    assert_eq!(settled.resent + early.resent, 1);
    eventually(Duration::from_secs(20), "sent again", || async {
        status(pool, id).await == "sent"
    })
    .await;
    // Later passes change nothing.
    resolver.pass(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    assert_eq!(fake.received().len(), 2, "resent once");
    assert_eq!(
        history(pool, id).await,
        [
            (1, "failed".to_owned(), Some("resent".to_owned())),
            (2, "sent".to_owned(), None)
        ]
    );
    assert_eq!(
        capacity_used(pool).await,
        (2, 2),
        "both attempts count: the first may have been delivered"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_never_duplicate_client_fails_it_after_the_wait_instead() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    never_duplicate(pool).await;
    // A gateway's 504: the provider behind it may have taken the message.
    let (id, running) = held_past_its_wait(
        pool,
        &directory,
        &fake,
        Fault::Reply(504, "Gateway Timeout".into(), vec![]),
    )
    .await;
    let settled = resolver(pool, &directory).pass(None).await.unwrap();
    assert_eq!((settled.resent, settled.given_up), (0, 1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    assert_eq!(status(pool, id).await, "failed");
    let error: String = sqlx::query_scalar("SELECT last_error FROM postrunner.outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(error.contains("never-duplicate"), "{error}");
    assert_eq!(fake.received().len(), 1, "never sent twice");
    assert_eq!(
        history(pool, id).await,
        [(1, "failed".to_owned(), Some("given_up".to_owned()))]
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn postmark_and_mailgun_lookups_find_a_taken_message_and_it_is_sent() {
    for kind in [Kind::Postmark, Kind::Mailgun] {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let (fake, directory) = acme_on(&db, kind).await;
        fake.fail_next([Fault::Drop]);
        let (id, running) = send_and_hold(pool, &directory).await;
        let settled = resolver(pool, &directory).pass(None).await.unwrap();
        running.stop().await;
        assert_eq!(settled.looked_up, 1, "{kind:?}");
        assert_eq!(status(pool, id).await, "sent", "{kind:?}");
        assert_eq!(
            history(pool, id).await,
            [(1, "sent".to_owned(), Some("lookup".to_owned()))],
            "{kind:?}"
        );
        let provider_id: Option<String> =
            sqlx::query_scalar("SELECT provider_message_id FROM postrunner.outbox WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(provider_id.is_some_and(|p| !p.is_empty()), "{kind:?}");
        assert_eq!((fake.received().len(), fake.taken()), (1, 1), "{kind:?}");
        crate::support::assert_promises_hold(pool).await;
    }
}

#[tokio::test]
async fn a_lookup_that_finds_nothing_leaves_it_held() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::Postmark).await;
    // A 502 from the gateway: Postmark never saw it, but postrunner cannot know that.
    fake.fail_next([Fault::Reply(502, "Bad Gateway".into(), vec![])]);
    let (id, running) = send_and_hold(pool, &directory).await;
    let resolver = resolver(pool, &directory);
    assert_eq!(resolver.pass(None).await.unwrap().looked_up, 0);
    running.stop().await;
    assert_eq!(status(pool, id).await, "uncertain");
    let asked = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'uncertain' AND looked_up_at IS NOT NULL",
    )
    .await;
    assert_eq!(
        asked, 1,
        "the lookup is recorded, and not repeated before uncertain_lookup_secs"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn resend_is_asked_by_replaying_the_same_idempotent_request() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::Resend).await;
    fake.fail_next([Fault::Slow(Duration::from_secs(2))]);
    let (id, running) = send_and_hold(pool, &directory).await;
    // Let the slow answer finish on the fake's side.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = resolver(pool, &directory).pass(None).await.unwrap();
    running.stop().await;
    assert_eq!(settled.looked_up, 1);
    assert_eq!(status(pool, id).await, "sent");
    assert_eq!(fake.received().len(), 2, "the replay reached Resend");
    assert_eq!(fake.taken(), 1, "and Resend has the message once");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn an_event_that_came_while_the_worker_still_waited_settles_it_at_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    fake.fail_next([Fault::Slow(Duration::from_millis(1500))]);
    let id = one_message(pool).await;
    let running = worker(pool, &directory);
    eventually(Duration::from_secs(20), "the send in flight", || async {
        !fake.received().is_empty()
    })
    .await;
    // A fast webhook: delivered before the worker has given up on the answer.
    let events = json!([{
        "dedupe_key": "early-1", "kind": "delivered", "our_id": id, "recipient": "jane@example.org",
        "occurred_at": chrono::Utc::now(), "payload": {}
    }]);
    sqlx::query("SELECT * FROM postrunner.record_events('p', $1)")
        .bind(&events)
        .execute(pool)
        .await
        .unwrap();
    held(pool, id).await;
    let settled = resolver(pool, &directory).pass(None).await.unwrap();
    running.stop().await;
    assert_eq!(settled.confirmed, 1);
    assert_eq!(status(pool, id).await, "delivered");
    assert_eq!(
        history(pool, id).await,
        [(1, "sent".to_owned(), Some("event".to_owned()))]
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn an_uncertain_message_cannot_be_cancelled_or_redriven_by_an_application() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    fake.fail_next([Fault::Drop]);
    let (id, running) = send_and_hold(pool, &directory).await;
    running.stop().await;
    let app = crate::support::logins::Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    for sql in [
        format!("UPDATE postrunner.outbox SET status = 'cancelled' WHERE id = '{id}'"),
        format!("SELECT postrunner.retry_message('{id}')"),
    ] {
        assert!(app.run(&sql).await.is_err(), "{sql}");
    }
    assert_eq!(status(pool, id).await, "uncertain");
    app.remove(&db).await;
    crate::support::assert_promises_hold(&db.pool).await;
}

/// The web role for provider `p` (SendGrid) with a fresh signing key; posts SendGrid's
/// signed `event` about message `id` (signed by independent code) and expects a 2xx.
async fn sendgrid_reports(pool: &PgPool, event: &str, id: Uuid, extra: serde_json::Value) {
    let key = sign(json!({"op": "sendgrid-key"}));
    let variable = secret_variable(key["public_b64"].as_str().unwrap());
    exec(
        pool,
        &format!("UPDATE postrunner.providers SET webhook_secret_env = '{variable}' WHERE name = 'p'"),
    )
    .await;
    let base = serve(pool).await;
    let body = json!([sendgrid_event(event, id, "jane@example.org", extra)]).to_string();
    let signed = headers_of(&sign(json!({
        "op": "sendgrid", "private_pem": key["private_pem"], "timestamp": now_unix(), "body": body
    })));
    let answer = post(&format!("{base}/webhooks/p"), &signed, body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// Issue 18, 2.2a: under duplicate_policy 'resend', the wait ends with no evidence and
/// the message waits to be sent again, here for capacity (its address has used its day).
/// Its provider's 'delivered' then arrives: the message is delivered, not sent a second
/// time once capacity frees.
#[tokio::test]
async fn late_evidence_settles_a_message_waiting_to_be_sent_again() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    let (id, running) = held_past_its_wait(pool, &directory, &fake, Fault::Drop).await;
    // The address has used its day (the uncertain attempt counts): the resend waits.
    exec(
        pool,
        "UPDATE postrunner.sender_addresses SET daily_limit = 1 WHERE address = 'alice@mail.acme.test'",
    )
    .await;
    let settled = resolver(pool, &directory).pass(None).await.unwrap();
    assert_eq!(settled.resent, 1);
    assert_eq!(status(pool, id).await, "retrying", "waiting to be sent again");

    sendgrid_reports(pool, "delivered", id, json!({"sg_message_id": "SGlate.filter0001"})).await;
    assert_eq!(status(pool, id).await, "delivered");
    assert_eq!(
        history(pool, id).await,
        [(1, "sent".to_owned(), Some("event".to_owned()))]
    );

    // Capacity frees: nothing is sent again.
    exec(
        pool,
        "UPDATE postrunner.sender_addresses SET daily_limit = 100 WHERE address = 'alice@mail.acme.test'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.stop().await;
    assert_eq!(fake.received().len(), 1, "no duplicate");
    assert_eq!(status(pool, id).await, "delivered");
    crate::support::assert_promises_hold(pool).await;
}

/// Issue 18, 2.2b: under 'never-duplicate' the message failed after the wait; its
/// provider's 'delivered' arriving later makes it delivered (with its provider), and a
/// re-drive of a message a provider reported on is refused with a message that says so.
#[tokio::test]
async fn a_redrive_of_a_message_a_provider_reported_delivered_is_refused() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fake, directory) = acme_on(&db, Kind::SendGrid).await;
    never_duplicate(pool).await;
    let (id, running) = held_past_its_wait(pool, &directory, &fake, Fault::Drop).await;
    assert_eq!(resolver(pool, &directory).pass(None).await.unwrap().given_up, 1);
    assert_eq!(status(pool, id).await, "failed");

    sendgrid_reports(pool, "delivered", id, json!({"sg_message_id": "SGlate.filter0001"})).await;
    assert_eq!(status(pool, id).await, "delivered");
    let provider: Option<String> = sqlx::query_scalar("SELECT provider FROM postrunner.outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(provider.as_deref(), Some("p"));

    // A failed message its provider reported on (here: an open after a later failure).
    // The worker stops first: it would otherwise claim and send the new message before
    // the statement below makes it look sent and failed.
    running.stop().await;
    let other = one_message(pool).await;
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address,
                                                   day, reserved_at, outcome, finished_at, resolution)
             SELECT id, job_id, 1, client, direction, 'p', 'alice@mail.acme.test', current_date, now(), 'failed', now(), 'given_up'
               FROM postrunner.outbox WHERE id = '{other}';
             UPDATE postrunner.jobs
                SET state = 'running', attempts = 1, leased_by = gen_random_uuid(), lease_token = gen_random_uuid(),
                    lease_expires_at = now() + interval '1 minute'
              WHERE id = (SELECT job_id FROM postrunner.outbox WHERE id = '{other}');"
        ),
    )
    .await;
    sendgrid_reports(pool, "open", other, json!({})).await;
    exec(
        pool,
        &format!(
            "UPDATE postrunner.jobs SET state = 'discarded', finalized_at = now(), leased_by = NULL, lease_token = NULL,
                                        lease_expires_at = NULL
              WHERE id = (SELECT job_id FROM postrunner.outbox WHERE id = '{other}')"
        ),
    )
    .await;
    assert_eq!(status(pool, other).await, "failed");
    let app = crate::support::logins::Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    for message in [id, other] {
        let refused = app
            .run(&format!("SELECT postrunner.retry_message('{message}')"))
            .await
            .unwrap_err();
        assert!(
            refused.contains("needs no retry") || refused.contains("it is not sent again"),
            "{refused}"
        );
    }
    let refused = app
        .run(&format!(
            "UPDATE postrunner.outbox SET status = 'queued' WHERE id = '{other}'"
        ))
        .await
        .unwrap_err();
    assert!(
        refused.contains(&format!("message {other} was reported opened by provider p")),
        "{refused}"
    );
    app.remove(&db).await;
    assert_eq!(fake.received().len(), 1, "never sent twice");
}

/// Issue 18, 2.1: a send held as uncertain at provider A is sent again through B; A's
/// complaint (with postrunner's id) then reaches the message: the recipient is
/// suppressed and the message complained, instead of an unmatched event.
#[tokio::test]
async fn a_complaint_about_a_rerouted_message_reaches_it() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    crate::support::routing::acme_on_one_provider(pool, 1, 1000, 0).await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind) VALUES ('b', 'log')",
    )
    .await;
    let id = one_message(pool).await;
    // Attempt 1 at p: uncertain, resent after the wait; attempt 2 sent by b.
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address,
                                                   day, reserved_at, outcome, finished_at, resolution)
             SELECT id, job_id, 1, client, direction, 'p', 'p-1@acme.test', current_date, now() - interval '1 hour',
                    'failed', now() - interval '1 hour', 'resent'
               FROM postrunner.outbox WHERE id = '{id}';
             INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address,
                                                   day, reserved_at, outcome, finished_at)
             SELECT id, job_id, 2, client, direction, 'b', 'p-1@acme.test', current_date, now(), 'sent', now()
               FROM postrunner.outbox WHERE id = '{id}';
             WITH m AS (UPDATE postrunner.outbox SET status = 'sent', provider = 'b', from_address = 'p-1@acme.test',
                                                     sent_at = now(), attempts = 2
                         WHERE id = '{id}' RETURNING job_id)
             DELETE FROM postrunner.jobs WHERE id = (SELECT job_id FROM m);"
        ),
    )
    .await;
    let (stored, unmatched): (i32, i32) =
        sqlx::query_as("SELECT stored, unmatched FROM postrunner.record_events('p', $1)")
            .bind(
                json!([{"dedupe_key": "c1", "kind": "complained", "recipient": "jane@example.org",
                  "our_id": id, "occurred_at": chrono::Utc::now()}]),
            )
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((stored, unmatched), (1, 0), "matched through its attempt at p");
    assert_eq!(status(pool, id).await, "complained");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.suppressions WHERE address = 'jane@example.org' AND reason = 'complaint'"
        )
        .await,
        1
    );
}
