//! The feedback loop end to end: messages sent by a worker through the SendGrid
//! simulator, SendGrid's events posted back signed (by Python's cryptography) to two
//! `postrunner web` replicas at once, and what follows: statuses, suppressions, a
//! soft-bounce quarantine that expires by itself, an automatic pause with its alert,
//! and a later message to a bounced recipient never sent.

use std::sync::Arc;
use std::time::Duration;

use postrunner::kinds;
use postrunner_providers::secret::Secret;
use postrunner_providers::sendgrid::SendGrid;
use postrunner_providers::{http, Directory, Provider};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::fake_provider::{FakeProvider, Kind};
use crate::support::run::{fast_config, spawn};
use crate::support::wait_for_count;
use crate::support::webhooks::{headers_of, now_unix, post, secret_variable, sendgrid_event, serve, sign};

const KEY: &str = "loop-key";

/// Enqueues a message to each of `recipients` and runs a worker sending through a
/// fresh SendGrid simulator until every one is sent or suppressed. Returns the new
/// messages' ids and how many requests the simulator received.
async fn send_through_sendgrid<S: AsRef<str>>(db: &TestDb, recipients: &[S]) -> (Vec<Uuid>, usize) {
    let pool = &db.pool;
    let fake = FakeProvider::start(Kind::SendGrid, KEY).await;
    let url = fake.url.clone();
    let directory = Directory::with_builder(pool.clone(), move |name| {
        let adapter: Arc<dyn Provider> = Arc::new(SendGrid::new(
            name,
            &url,
            Secret::new(KEY.to_owned()),
            http::client(Duration::from_secs(5)),
        ));
        Some(adapter)
    });
    let mut ids = Vec::new();
    for to in recipients {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
             VALUES ('acme', 'd', $1, 'Hello', 'Hi') RETURNING id",
        )
        .bind(to.as_ref())
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let worker = spawn(pool, kinds::registry(pool.clone(), Arc::new(directory)), fast_config());
    let done = format!(
        "SELECT count(*) FROM postrunner.outbox WHERE id IN ({}) AND status IN ('sent', 'suppressed')",
        ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ")
    );
    wait_for_count(pool, &done, ids.len() as i64, Duration::from_secs(30)).await;
    worker.stop().await;
    (ids, fake.received().len())
}

/// Posts `batch` to `base`'s SendGrid webhook, signed with `private_pem`.
async fn post_signed(base: &str, private_pem: &str, batch: &Value) -> u16 {
    let body = batch.to_string();
    let signed = headers_of(&sign(
        json!({"op": "sendgrid", "private_pem": private_pem, "timestamp": now_unix(), "body": body}),
    ));
    post(&format!("{base}/webhooks/sg"), &signed, body).await.status
}

async fn status_counts(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status::text, count(*) FROM postrunner.outbox GROUP BY 1 ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sends_their_events_through_two_web_replicas_and_what_follows() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let key = sign(json!({"op": "sendgrid-key"}));
    let variable = secret_variable(key["public_b64"].as_str().unwrap());
    let private_pem = key["private_pem"].as_str().unwrap().to_owned();
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
             INSERT INTO postrunner.providers (name, kind, endpoint, webhook_secret_env)
             VALUES ('sg', 'sendgrid', 'http://127.0.0.1:9', '{variable}');
             INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
             VALUES ('alice@mail.acme.test', 'sg', 'acme', 10000000);"
        ),
    )
    .await;
    // 40 recipients: 3 whose mailboxes are gone, 1 who reports spam, 1 whose mailbox is
    // full (three soft bounces: quarantined), the rest delivered.
    let recipients: Vec<String> = (1..=40)
        .map(|i| match i {
            1..=3 => format!("gone{i}@example.org"),
            4 => "spam@example.org".to_owned(),
            5..=7 => "full@example.org".to_owned(),
            _ => format!("reader{i}@example.org"),
        })
        .collect();
    let (_, requests) = send_through_sendgrid(&db, &recipients).await;
    assert_eq!(requests, 40);
    let sent: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, to_address, provider_message_id FROM postrunner.outbox ORDER BY to_address")
            .fetch_all(pool)
            .await
            .unwrap();

    let events: Vec<Value> = sent
        .iter()
        .map(|(id, to, sg_id)| {
            let sg_message_id = json!({ "sg_message_id": format!("{sg_id}.filter0001") });
            if to.starts_with("gone") {
                sendgrid_event(
                    "bounce",
                    *id,
                    to,
                    json!({"type": "bounce", "reason": "550 5.1.1 user unknown", "status": "5.1.1", "sg_message_id": sg_message_id["sg_message_id"]}),
                )
            } else if to.starts_with("spam") {
                sendgrid_event("spamreport", *id, to, sg_message_id)
            } else if to.starts_with("full") {
                sendgrid_event(
                    "bounce",
                    *id,
                    to,
                    json!({"type": "blocked", "reason": "452 4.2.2 mailbox full", "status": "4.2.2", "sg_message_id": sg_message_id["sg_message_id"]}),
                )
            } else {
                sendgrid_event("delivered", *id, to, sg_message_id)
            }
        })
        .collect();

    // Two replicas; SendGrid delivers the first half to one, the second half to the
    // other, and (its retries) the whole batch again to both, all at the same moment.
    let (a, b) = (serve(pool).await, serve(&db.another_pool(5)).await);
    let (first, second) = events.split_at(20);
    let all = Value::Array(events.clone());
    let (first, second) = (Value::Array(first.to_vec()), Value::Array(second.to_vec()));
    let (s1, s2, s3, s4) = tokio::join!(
        post_signed(&a, &private_pem, &first),
        post_signed(&b, &private_pem, &second),
        post_signed(&a, &private_pem, &all),
        post_signed(&b, &private_pem, &all),
    );
    assert_eq!((s1, s2, s3, s4), (200, 200, 200, 200));
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.events").await,
        40,
        "each event once"
    );

    assert_eq!(
        status_counts(pool).await,
        [
            ("bounced".to_owned(), 3),
            ("complained".to_owned(), 1),
            ("delivered".to_owned(), 33),
            ("sent".to_owned(), 3)
        ],
        "soft bounces leave a message sent"
    );
    let suppressions: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT address, reason::text, expires_at IS NOT NULL FROM postrunner.report_suppressions ORDER BY address",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        suppressions,
        [
            ("full@example.org".to_owned(), "soft_bounce".to_owned(), true),
            ("gone1@example.org".to_owned(), "hard_bounce".to_owned(), false),
            ("gone2@example.org".to_owned(), "hard_bounce".to_owned(), false),
            ("gone3@example.org".to_owned(), "hard_bounce".to_owned(), false),
            ("spam@example.org".to_owned(), "complaint".to_owned(), false),
        ]
    );

    // 3 hard bounces in 40 sends is 7.5 %, over the address's 5 %: paused, one alert.
    let (status, reason): (String, Option<String>) =
        sqlx::query_as("SELECT status::text, status_reason FROM postrunner.sender_addresses")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(status, "paused", "{reason:?}");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.alerts WHERE kind = 'address_paused' AND state = 'firing'"
        )
        .await,
        1
    );

    // Resumed by its documented UPDATE; later messages: to a bounced recipient never
    // sent, to the quarantined one held back until the quarantine expires by itself.
    exec(
        pool,
        "UPDATE postrunner.sender_addresses SET status = 'active' WHERE address = 'alice@mail.acme.test'",
    )
    .await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.alerts WHERE kind = 'address_paused' AND state = 'resolved'"
        )
        .await,
        1
    );
    exec(
        pool,
        "UPDATE postrunner.suppressions SET expires_at = now() - interval '1 second' WHERE reason = 'soft_bounce'",
    )
    .await;
    let (later, requests) = send_through_sendgrid(&db, &["gone1@example.org", "full@example.org"]).await;
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT to_address, status::text FROM postrunner.outbox WHERE id = ANY($1) ORDER BY to_address")
            .bind(&later)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        [
            ("full@example.org".to_owned(), "sent".to_owned()),
            ("gone1@example.org".to_owned(), "suppressed".to_owned())
        ]
    );
    assert_eq!(
        requests, 1,
        "only the message whose recipient's quarantine expired went out"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}
