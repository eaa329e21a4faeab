//! `postrunner bench events`: provider events through the real HTTP endpoint of a
//! `postrunner web` process (this binary), each request's signature checked and its
//! events committed before the answer: SendGrid batches (ECDSA-signed arrays), then
//! single Resend events (Svix-signed), each at a fixed concurrency.
//!
//! The requests are signed here (ring's ECDSA and Svix's own `standardwebhooks`); the
//! tests sign with independent code (tests/support/sign_webhook.py). Every event is
//! for a message already sent, so each one is matched, stored and moves its message
//! to `delivered`, the work of a real event.

use anyhow::Context as _;

use super::load::{blast, WebProcess};
use crate::commands::signing::SendGridSigner;
use crate::config::BenchEventsArgs;

const SENDGRID_KEY_VARIABLE: &str = "POSTRUNNER_BENCH_SENDGRID_WEBHOOK_KEY";
const RESEND_SECRET_VARIABLE: &str = "POSTRUNNER_BENCH_RESEND_WEBHOOK_SECRET";
const RESEND_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub async fn run(database_url: Option<String>, args: BenchEventsArgs) -> anyhow::Result<()> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_events").await?;
    let pool = postrunner_schema::pool(&url, 4, "postrunner-bench")?;
    let signer = SendGridSigner::generate()?;
    let public = signer.public_key();

    let sendgrid_events = args.batches * args.batch;
    let total = sendgrid_events + args.requests;
    let (sg, rs) = prepare(&pool, total, sendgrid_events).await?;

    let web = WebProcess::start(
        &url,
        args.connections,
        &[
            (SENDGRID_KEY_VARIABLE, public.as_str()),
            (RESEND_SECRET_VARIABLE, RESEND_SECRET),
        ],
    )
    .await?;
    let base = web.base.clone();
    let client = reqwest::Client::new();

    let now = chrono::Utc::now().timestamp();
    let requests = sendgrid_requests(&sg, args.batch, &signer, now);
    let url_sg = format!("{base}/webhooks/sg");
    let requests = requests.into_iter().map(|(h, b)| (url_sg.clone(), h, b)).collect();
    let sendgrid = blast(&client, requests, args.concurrency).await?;

    let requests = resend_requests(&rs, now)?;
    let url_rs = format!("{base}/webhooks/rs");
    let requests = requests.into_iter().map(|(h, b)| (url_rs.clone(), h, b)).collect();
    let resend = blast(&client, requests, args.concurrency).await?;
    drop(web);

    let (stored, delivered): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM postrunner.events), (SELECT count(*) FROM postrunner.outbox WHERE status = 'delivered')",
    )
    .fetch_one(&pool)
    .await?;
    anyhow::ensure!(
        stored as usize == total && delivered as usize == total,
        "stored {stored} events, {delivered} delivered, of {total}"
    );

    let events_per_sec = sendgrid_events as f64 / sendgrid.seconds;
    let requests_per_sec = args.requests as f64 / resend.seconds;
    println!(
        "postrunner bench events (one web process, {} connections; client concurrency {})",
        args.connections, args.concurrency
    );
    println!(
        "  SendGrid  {:>6} requests of {:>3} events  {:>7.2} s  {:>8.0} events/s   p50 {:>6.1} ms  p99 {:>6.1} ms",
        sendgrid.latencies.len(),
        args.batch,
        sendgrid.seconds,
        events_per_sec,
        sendgrid.p(50.0),
        sendgrid.p(99.0)
    );
    println!(
        "  Resend    {:>6} requests of   1 event   {:>7.2} s  {:>8.0} requests/s p50 {:>6.1} ms  p99 {:>6.1} ms",
        resend.latencies.len(),
        resend.seconds,
        requests_per_sec,
        resend.p(50.0),
        resend.p(99.0)
    );
    println!("  every event stored once and its message delivered ({stored} events)");
    println!(
        "events_per_sec={events_per_sec:.0} requests_per_sec={requests_per_sec:.0} p99_ms={:.1}",
        sendgrid.p(99.0).max(resend.p(99.0))
    );
    Ok(())
}

/// Messages already sent, the first `sendgrid_events` through SendGrid (`sg`) and the
/// rest through Resend (`rs`): an event is matched only to its own provider's messages.
/// Their ids and recipients, for each provider, in id order.
async fn prepare(pool: &sqlx::PgPool, total: usize, sendgrid_events: usize) -> anyhow::Result<(Messages, Messages)> {
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.clients (name) VALUES ('acme');
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.providers (name, kind, webhook_secret_env) VALUES
             ('sg', 'sendgrid', '{SENDGRID_KEY_VARIABLE}'), ('rs', 'resend', '{RESEND_SECRET_VARIABLE}');
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'acme', 'd', 'r' || i || '@example.org', 'Hello', 'Hi' FROM generate_series(1, {total}) AS i;
         UPDATE postrunner.outbox
            SET status = 'sent', provider_message_id = id::text, sent_at = now();
         DELETE FROM postrunner.jobs WHERE kind = 'email.send';"
    ))
    .execute(pool)
    .await
    .context("setting up")?;
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    let messages: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, to_address FROM postrunner.outbox")
        .fetch_all(pool)
        .await?;
    sqlx::query(
        "UPDATE postrunner.outbox o SET provider = CASE WHEN n.rank <= $1 THEN 'sg' ELSE 'rs' END
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS rank FROM postrunner.outbox) n
          WHERE o.id = n.id",
    )
    .bind(sendgrid_events as i64)
    .execute(pool)
    .await?;
    let mut messages = messages;
    messages.sort();
    let rs = messages.split_off(sendgrid_events.min(messages.len()));
    Ok((messages, rs))
}

type Messages = Vec<(uuid::Uuid, String)>;

/// A signed webhook request: its headers and body.
type Signed = (Vec<(String, String)>, String);

/// SendGrid's requests: batches of `batch` delivered events, signed over timestamp + body.
fn sendgrid_requests(
    sg: &Messages,
    batch: usize,
    signer: &SendGridSigner,
    now: i64,
) -> Vec<(Vec<(String, String)>, String)> {
    sg.chunks(batch)
        .map(|chunk| {
            let batch: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(id, to)| {
                    serde_json::json!({"email": to, "timestamp": now, "event": "delivered",
                        "sg_event_id": uuid::Uuid::new_v4().to_string(), "sg_message_id": id.to_string(),
                        "postrunner_id": id.to_string(), "response": "250 OK"})
                })
                .collect();
            let body = serde_json::Value::Array(batch).to_string();
            let headers = signer.headers(now, &body);
            (headers, body)
        })
        .collect()
}

/// Resend's requests: one delivered event each, Svix-signed.
fn resend_requests(rs: &Messages, now: i64) -> anyhow::Result<Vec<Signed>> {
    let webhook = standardwebhooks::Webhook::new(RESEND_SECRET).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(rs
        .iter()
        .enumerate()
        .map(|(i, (id, to))| {
            let body = serde_json::json!({"type": "email.delivered", "created_at": chrono::Utc::now().to_rfc3339(),
                "data": {"email_id": id.to_string(), "to": [to], "tags": {"postrunner_id": id.to_string()}}})
            .to_string();
            let svix_id = format!("msg_bench_{i}");
            let signature = webhook.sign(&svix_id, now, body.as_bytes()).expect("signing");
            let headers = vec![
                ("svix-id".to_owned(), svix_id),
                ("svix-timestamp".to_owned(), now.to_string()),
                ("svix-signature".to_owned(), signature),
            ];
            (headers, body)
        })
        .collect())
}
