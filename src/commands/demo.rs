//! `postrunner demo`: the whole path on the embedded default, in one process.
//!
//! It finds or starts PostgreSQL, creates and migrates a fresh `postrunner_demo`
//! database, configures two clients, enqueues messages with plain SQL (showing a refused
//! INSERT, an idempotent re-insert, delayed messages and a cancel), runs workers and a
//! scheduler side by side as separate executors, shows progress, and prints a summary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::DemoArgs;
use crate::kinds;
use crate::providers::log::LogProvider;
use crate::providers::{Directory, Provider};
use crate::queue::executor::{Executor, ExecutorConfig};
use crate::roles::presence::Presence;

const SETUP: &str = "
INSERT INTO postrunner.clients (name, time_zone) VALUES ('acme', 'Europe/Paris'), ('globex', 'America/New_York');
INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'q1-founders'), ('acme', 'q1-cto'), ('globex', 'launch');
INSERT INTO postrunner.providers (name, kind, weight) VALUES ('mailer-a', 'log', 200), ('mailer-b', 'log', 100);
-- q1-cto may only use mailer-b; the other directions use all of their client's providers.
INSERT INTO postrunner.direction_providers (client, direction, provider) VALUES ('acme', 'q1-cto', 'mailer-b');
-- 60 sender addresses; limits high enough that the demo drains in seconds (pacing spaces
-- each address's sends by 24 h / daily_limit: 0.09 s here, 29 min at the default 50).
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
SELECT 'sender' || i || '@' || c || '.test', CASE WHEN i % 2 = 0 THEN 'mailer-a' ELSE 'mailer-b' END, c, 1000000
  FROM generate_series(1, 30) AS i, unnest(ARRAY['acme', 'globex']) AS c;
INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'person30@example.org', 'unsubscribe');
";

pub async fn run(database_url: Option<String>, args: DemoArgs) -> anyhow::Result<()> {
    println!("postrunner demo: {} messages, {} workers", args.messages, args.workers);
    let (server, url) = super::fresh_database(database_url, "postrunner_demo").await?;
    let where_ = if server.cluster.is_some() {
        "a private throwaway PostgreSQL cluster"
    } else {
        "the local PostgreSQL"
    };
    println!("  database   {} on {where_}, migrated", super::redact(&url));
    let pool = crate::db::pool(&url, 20, "postrunner-demo")?;
    sqlx::raw_sql(SETUP).execute(&pool).await?;
    println!("  setup      clients acme and globex, 3 directions, providers mailer-a (weight 200) and mailer-b (weight 100),");
    println!("             both of kind 'log' (records and accepts), 60 sender addresses, 1 suppressed recipient");

    enqueue(&pool, args.messages).await?;

    let shutdown = CancellationToken::new();
    let mut roles = Vec::new();
    for _ in 0..args.workers {
        let presence = Presence::new("worker", Some(8), Duration::from_secs(1));
        presence.register(&pool).await?;
        let send_ms = args.send_ms;
        let providers = Directory::with_builder(pool.clone(), move |name| {
            let provider: Arc<dyn Provider> =
                Arc::new(LogProvider::new(name).with_latency(Duration::from_millis(send_ms)));
            Some(provider)
        });
        let registry = kinds::registry(pool.clone(), Arc::new(providers));
        let config = ExecutorConfig {
            concurrency: 8,
            heartbeat: Duration::from_secs(1),
            ..ExecutorConfig::default()
        };
        let executor = Executor::new(pool.clone(), registry, config, presence.id);
        roles.push(tokio::spawn(executor.run(shutdown.clone())));
    }
    roles.push(tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move {
            let _ = crate::roles::scheduler::run(pool, shutdown).await;
        }
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let workers: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.workers")
        .fetch_one(&pool)
        .await?;
    println!(
        "  running    {workers} processes in postrunner.workers ({} workers, 1 scheduler)\n",
        args.workers
    );

    let started = Instant::now();
    loop {
        let counts = status_counts(&pool).await?;
        let pending: i64 = ["queued", "sending", "retrying"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum();
        println!("  [{:>5.1}s] {}", started.elapsed().as_secs_f64(), line(&counts));
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the demo did not finish within two minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    for role in roles {
        let _ = role.await;
    }

    let counts = status_counts(&pool).await?;
    let sent = counts.get("sent").copied().unwrap_or(0);
    println!("\nsummary");
    println!("  {}", line(&counts));
    println!(
        "  {sent} messages sent in {elapsed:.1} s ({:.0}/s) by {} workers",
        sent as f64 / elapsed.max(0.001),
        args.workers
    );
    let per_client: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT client, direction, sum(messages)::bigint FROM postrunner.report_outbox WHERE status = 'sent' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await?;
    for (client, direction, n) in per_client {
        println!("  {client:<8} {direction:<12} {n:>6} sent");
    }
    let per_provider: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT provider, count(*), count(DISTINCT from_address) FROM postrunner.send_attempts
          WHERE outcome = 'sent' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    for (provider, n, addresses) in per_provider {
        println!("  {provider:<21} {n:>6} sent from {addresses} addresses");
    }
    if server.cluster.is_none() {
        println!(
            "\nexplore it:  psql '{}' -c 'SELECT * FROM postrunner.report_outbox'",
            super::redact(&url)
        );
    }
    Ok(())
}

async fn enqueue(pool: &PgPool, messages: u32) -> anyhow::Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key, metadata)
         SELECT c.client, c.direction, 'person' || i || '@example.org', 'Hello #' || i, 'Hi, this is message ' || i,
                'demo-' || i, jsonb_build_object('i', i)
           FROM generate_series(1, $1) AS i,
                LATERAL (SELECT (ARRAY['acme','acme','globex'])[1 + i % 3] AS client,
                                (ARRAY['q1-founders','q1-cto','launch'])[1 + i % 3] AS direction) AS c",
    )
    .bind(messages as i32)
    .execute(pool)
    .await?
    .rows_affected();
    println!("  enqueued   {inserted} messages with one INSERT INTO postrunner.outbox");

    let again = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key)
         VALUES ('acme', 'q1-founders', 'person1@example.org', 'Hello #1', 'again', 'demo-1')
         ON CONFLICT DO NOTHING",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!("  re-insert  same idempotency_key with ON CONFLICT DO NOTHING: {again} new rows");

    let delayed = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, send_after)
         SELECT 'globex', 'launch', 'later' || i || '@example.org', 'Later', 'Sent two seconds later', now() + interval '2 seconds'
           FROM generate_series(1, 20) AS i",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!("  delayed    {delayed} messages with send_after = now() + 2 s");

    let cancelled = sqlx::query(
        "UPDATE postrunner.outbox SET status = 'cancelled'
          WHERE idempotency_key IN ('demo-3', 'demo-6', 'demo-9') AND status IN ('queued', 'retrying')",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!("  cancelled  {cancelled} messages with an UPDATE");

    let refused = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body) VALUES ('acme', 'q1-founders', 'not-an-address', 'Hi', 'x')",
    )
    .execute(pool)
    .await
    .expect_err("the outbox refuses a malformed address");
    println!(
        "  refused    a bad INSERT: {}",
        refused
            .as_database_error()
            .map_or(refused.to_string(), |e| e.message().to_owned())
    );
    Ok(())
}

async fn status_counts(pool: &PgPool) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status::text, count(*) FROM postrunner.outbox GROUP BY 1")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

fn line(counts: &BTreeMap<String, i64>) -> String {
    [
        "queued",
        "sending",
        "sent",
        "retrying",
        "failed",
        "cancelled",
        "suppressed",
    ]
    .iter()
    .map(|s| format!("{s} {:>5}", counts.get(*s).copied().unwrap_or(0)))
    .collect::<Vec<_>>()
    .join("  ")
}
