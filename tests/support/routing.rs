//! Sender setups and a simulated clock for routing tests.
//!
//! Routing decisions take "now" from the claim, so tests move time by passing instants
//! to [`Executor::tick`]/[`Executor::drain`] instead of sleeping. Simulated instants lie
//! in the future (2027), after the real `run_at` of every inserted message.

use chrono::{DateTime, Utc};
use postrunner_queue::executor::Executor;
use sqlx::PgPool;

use super::db::exec;
use super::factory::messages;

/// An instant, from RFC 3339 text: `at("2027-01-04T09:00:00Z")`.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

/// A provider of kind `log` with `weight`.
pub async fn provider(pool: &PgPool, name: &str, weight: i32) {
    exec(
        pool,
        &format!("INSERT INTO postrunner.providers (name, kind, weight) VALUES ('{name}', 'log', {weight})"),
    )
    .await;
}

/// `n` active addresses of `client` on `provider`, named `<provider>-<i>@<client>.test`.
pub async fn addresses(pool: &PgPool, client: &str, provider: &str, n: i32, daily_limit: i32) {
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
             SELECT '{provider}-' || i || '@{client}.test', '{provider}', '{client}', {daily_limit}
               FROM generate_series(1, {n}) AS i"
        ),
    )
    .await;
}

/// Pacing slots exactly (window / limit), for tests that count slots.
pub async fn no_jitter(pool: &PgPool) {
    exec(
        pool,
        "UPDATE postrunner.settings SET value = '0' WHERE name = 'pacing_jitter'",
    )
    .await;
}

/// Drains at `now` and returns how many jobs ran.
pub async fn drain_at(executor: &Executor, now: DateTime<Utc>) -> usize {
    executor.drain(Some(now)).await.expect("drain")
}

/// Drains with several executors at once (separate connections), at `now`, then with
/// the first alone: what they sent in all.
pub async fn drain_all_at(executors: &[Executor], now: DateTime<Utc>) -> usize {
    let together: usize = futures_util::future::join_all(executors.iter().map(|e| drain_at(e, now)))
        .await
        .into_iter()
        .sum();
    // Each executor stops at its first empty claim, and a claim passes over a lane
    // another holds (SKIP LOCKED): one more drain alone examines every lane, so what
    // is left (and every lane's gate) is this instant's.
    together + drain_at(&executors[0], now).await
}

/// Messages the providers accepted, per provider name.
pub async fn sent_by_provider(pool: &PgPool) -> std::collections::BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT provider, count(*) FROM postrunner.send_attempts WHERE outcome = 'sent' GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// `report_blocked` for a direction: (waiting_for, until).
pub async fn blocked(pool: &PgPool, client: &str, direction: &str) -> (Option<String>, Option<DateTime<Utc>>) {
    sqlx::query_as("SELECT waiting_for, until FROM postrunner.report_blocked WHERE client = $1 AND direction = $2")
        .bind(client)
        .bind(direction)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The common setup: client `acme` (UTC) with direction `d`, provider `p` (kind log),
/// `n_addresses` addresses of `daily_limit`, and `n_messages` messages waiting.
pub async fn acme_on_one_provider(pool: &PgPool, n_addresses: i32, daily_limit: i32, n_messages: i32) {
    super::factory::zoned_client(pool, "acme", "UTC", "d").await;
    provider(pool, "p", 100).await;
    addresses(pool, "acme", "p", n_addresses, daily_limit).await;
    messages(pool, "acme", "d", n_messages).await;
}

/// Client `acme` with direction `d` sending through one SendGrid provider `sg` at
/// `endpoint` with one address, `alice@acme.test`. Returns the name of the environment
/// variable the provider's secret is read from: unique per call, so tests running side
/// by side never share one; pass it to the worker's environment.
pub async fn acme_on_sendgrid(pool: &PgPool, endpoint: &str) -> String {
    let variable = format!(
        "PR_TEST_KEY_{}",
        uuid::Uuid::new_v4().simple().to_string().to_uppercase()
    );
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
             INSERT INTO postrunner.providers (name, kind, endpoint, secret_env) VALUES ('sg', 'sendgrid', '{endpoint}', '{variable}');
             INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit) VALUES ('alice@acme.test', 'sg', 'acme', 10000000);"
        ),
    )
    .await;
    variable
}
