//! Rows with sensible defaults, so a test states only what matters to it.

pub use postrunner_queue::testing::{job, job_count, jobs};
use sqlx::PgPool;
use uuid::Uuid;

/// A client with one direction, and senders to route its mail: provider `log` (kind
/// log) and 16 addresses whose limits are high enough never to bind (pacing spaces each
/// address's sends by about a millisecond).
pub async fn client(pool: &PgPool, client: &str, direction: &str) {
    bare_client(pool, client, direction).await;
    sqlx::query("INSERT INTO postrunner.providers (name, kind) VALUES ('log', 'log') ON CONFLICT DO NOTHING")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 'sender' || i || '@' || $1 || '.test', 'log', $1, 100000000 FROM generate_series(1, 16) AS i
         ON CONFLICT DO NOTHING",
    )
    .bind(client)
    .execute(pool)
    .await
    .unwrap();
}

/// A client with one direction and nothing else. It is marked as not sending bulk
/// mail, so that executors without unsubscribe links route it (tests/unsubscribe.rs
/// covers bulk clients, the default).
pub async fn bare_client(pool: &PgPool, client: &str, direction: &str) {
    zoned_client(pool, client, "UTC", direction).await;
}

/// [`bare_client`] in time zone `tz` (its day, its limits' days).
pub async fn zoned_client(pool: &PgPool, client: &str, tz: &str, direction: &str) {
    sqlx::query("INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ($1, $2, false) ON CONFLICT DO NOTHING")
        .bind(client)
        .bind(tz)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO postrunner.directions (client, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(client)
        .bind(direction)
        .execute(pool)
        .await
        .unwrap();
}

/// Enqueues a message the way an application does; returns its id.
pub async fn message(pool: &PgPool, client: &str, direction: &str, to: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ($1, $2, $3, 'Hello', 'Hi there') RETURNING id",
    )
    .bind(client)
    .bind(direction)
    .bind(to)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `n` messages to distinct recipients.
pub async fn messages(pool: &PgPool, client: &str, direction: &str, n: i32) {
    super::db::exec(
        pool,
        &format!(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
             SELECT '{client}', '{direction}', 'to' || i || '-{direction}@example.org', 'Hello', 'Hi'
               FROM generate_series(1, {n}) AS i"
        ),
    )
    .await;
}

/// A message's status as text.
pub async fn status(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM postrunner.outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The status of the only message in the outbox.
pub async fn status_of_only_message(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT status::text FROM postrunner.outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}
