//! Webhook tests' helpers: the web role served on a local port (in this process, or
//! as the real binary), requests signed by independent code (`sign_webhook.py`: the
//! svix library, Python's cryptography and hmac), and messages already sent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::db::exec;

/// Runs `sign_webhook.py` with `request`; its JSON answer.
pub fn sign(request: Value) -> Value {
    super::python::run("sign_webhook.py", &request)
}

/// Headers of a signer's answer.
pub fn headers_of(signed: &Value) -> BTreeMap<String, String> {
    signed["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A unique environment variable name holding `value` (set in this process, for the
/// in-process web role).
pub fn secret_variable(value: &str) -> String {
    let name = format!("PR_TEST_WEBHOOK_{}", Uuid::new_v4().simple().to_string().to_uppercase());
    std::env::set_var(&name, value);
    name
}

/// The web role on a free local port of this process; its base URL. Stops with the
/// test's runtime.
pub async fn serve(pool: &PgPool) -> String {
    serve_with(
        pool,
        postrunner::web::WebConfig {
            max_body: 64 * 1024,
            ..Default::default()
        },
    )
    .await
}

/// [`serve`] with `config`.
pub async fn serve_with(pool: &PgPool, config: postrunner::web::WebConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let pool = pool.clone();
    tokio::spawn(async move {
        postrunner::web::serve(listener, pool, config, tokio_util::sync::CancellationToken::new())
            .await
            .unwrap();
    });
    format!("http://{address}")
}

/// The answer to a request: status and JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub async fn post(url: &str, headers: &BTreeMap<String, String>, body: impl Into<reqwest::Body>) -> Answer {
    let mut request = crate::support::http().post(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.timeout(Duration::from_secs(20)).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

pub async fn get(url: &str) -> Answer {
    let response = crate::support::get(url).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Client `acme` (direction `d`) and provider `name` of `kind` whose webhooks are
/// checked with the secret in variable `secret_env`.
pub async fn provider_with_webhooks(pool: &PgPool, name: &str, kind: &str, secret_env: &str) {
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false) ON CONFLICT DO NOTHING;
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd') ON CONFLICT DO NOTHING;
             INSERT INTO postrunner.providers (name, kind, endpoint, webhook_secret_env)
             VALUES ('{name}', '{kind}', 'http://127.0.0.1:9', '{secret_env}');"
        ),
    )
    .await;
}

/// A message to `to` of client acme that `provider` accepted with id `provider_id`
/// (as a completed send leaves it: status sent, its attempt in the ledger, its job
/// gone). Returns its id.
pub async fn sent_message(pool: &PgPool, provider: &str, to: &str, provider_id: &str) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', $1, 'Hi', 'x') RETURNING id",
    )
    .bind(to)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "WITH m AS (UPDATE postrunner.outbox
                       SET status = 'sent', provider = $2, provider_message_id = $3,
                           from_address = 'alice@acme.test', sent_at = now(), attempts = 1
                     WHERE id = $1 RETURNING id, job_id, client, direction),
              ledger AS (INSERT INTO postrunner.send_attempts
                                (message_id, job_id, attempt, client, direction, provider, from_address, day,
                                 reserved_at, outcome, finished_at)
                         SELECT m.id, m.job_id, 1, m.client, m.direction, $2, 'alice@acme.test', current_date,
                                now(), 'sent', now()
                           FROM m)
         DELETE FROM postrunner.jobs WHERE id = (SELECT job_id FROM m)",
    )
    .bind(id)
    .bind(provider)
    .bind(provider_id)
    .execute(pool)
    .await
    .unwrap();
    id
}

pub async fn status_of(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM postrunner.outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The suppression of `address` for acme: (reason, has an event, expires).
pub async fn suppression(pool: &PgPool, address: &str) -> Option<(String, bool, bool)> {
    sqlx::query_as(
        "SELECT reason::text, event_id IS NOT NULL, expires_at IS NOT NULL
           FROM postrunner.suppressions WHERE client = 'acme' AND lower(address) = lower($1)",
    )
    .bind(address)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// A SendGrid event for message `our_id` (custom arg postrunner_id); `extra` adds or
/// replaces fields (`sg_message_id`, `type`, `reason`, ...).
pub fn sendgrid_event(event: &str, our_id: Uuid, email: &str, extra: Value) -> Value {
    let mut value = json!({
        "email": email,
        "timestamp": now_unix(),
        "event": event,
        "sg_event_id": Uuid::new_v4().to_string(),
        "postrunner_id": our_id.to_string(),
    });
    value
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    value
}
