//! `postrunner bench route`: routed sends per second through the full claim + route +
//! send + record path (the `email.send` kind, `log` provider), at several sender pool
//! sizes, each in a fresh database `postrunner_bench_route`.
//!
//! Per pool size: 3 clients with 2 directions each, 4 providers of kind `log`, the
//! addresses spread evenly over clients and providers, daily limits high enough that
//! neither they nor pacing bind (each address may send every ~9 ms: the limits are
//! still checked on every claim, that is the point). The messages are inserted with SQL
//! first, then the workers start and the clock runs until every message is `sent`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::BenchRouteArgs;
use crate::kinds;
use postrunner_providers::Directory;
use postrunner_queue::executor::{Executor, ExecutorConfig};

const SETUP: &str = "
-- Not bulk: the bench's in-process workers sign no unsubscribe links; routing is measured.
INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ('c1', 'UTC', false), ('c2', 'America/New_York', false), ('c3', 'Asia/Tokyo', false);
INSERT INTO postrunner.directions (client, name) SELECT c, d FROM unnest(ARRAY['c1', 'c2', 'c3']) c, unnest(ARRAY['d1', 'd2']) d;
INSERT INTO postrunner.providers (name, kind, weight) VALUES ('p1', 'log', 100), ('p2', 'log', 200), ('p3', 'log', 100), ('p4', 'log', 100);
";

/// Figures for one pool size.
struct Run {
    addresses: u32,
    secs: f64,
    per_sec: f64,
    claim_batch: f64,
    claim_ms: f64,
}

pub async fn run(database_url: Option<String>, args: BenchRouteArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for &addresses in &args.addresses {
        runs.push(one_size(database_url.clone(), &args, addresses).await?);
    }
    println!("postrunner bench route");
    println!(
        "  {} messages per size, {} worker(s) x concurrency {} (prefetch {}), provider kind 'log'",
        args.messages, args.workers, args.concurrency, args.prefetch
    );
    println!("  addresses     seconds    msgs/s   per claim   ms/claim   us/msg");
    for r in &runs {
        println!(
            "  {:>9} {:>11.2} {:>9.0} {:>11.1} {:>10.2} {:>8.1}",
            r.addresses,
            r.secs,
            r.per_sec,
            r.claim_batch,
            r.claim_ms,
            1e6 / r.per_sec
        );
    }
    let line: Vec<String> = runs
        .iter()
        .map(|r| format!("msgs_per_sec_{}={:.0}", r.addresses, r.per_sec))
        .collect();
    println!("{}", line.join(" "));
    Ok(())
}

async fn one_size(database_url: Option<String>, args: &BenchRouteArgs, addresses: u32) -> anyhow::Result<Run> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_route").await?;
    let pool = postrunner_schema::pool(&url, 4 + 4 * args.workers as u32, "postrunner-bench")?;
    sqlx::raw_sql(SETUP).execute(&pool).await?;
    sqlx::query(
        "INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 's' || i || '@c' || (1 + i % 3) || '.test', 'p' || (1 + (i / 3) % 4), 'c' || (1 + i % 3), 10000000
           FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(addresses as i32)
    .execute(&pool)
    .await
    .context("creating the sender addresses")?;
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'c' || (1 + i % 3), 'd' || (1 + (i / 3) % 2), 'r' || i || '@example.org', 'Hello', 'Hi there'
           FROM generate_series(1, $1) AS i",
    )
    .bind(args.messages as i32)
    .execute(&pool)
    .await
    .context("enqueueing")?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;

    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    let mut stats = Vec::new();
    let started = Instant::now();
    for _ in 0..args.workers {
        let registry = kinds::registry(pool.clone(), Arc::new(Directory::new(pool.clone())));
        let config = ExecutorConfig {
            concurrency: args.concurrency,
            prefetch: args.prefetch,
            ..ExecutorConfig::default()
        };
        let executor = Executor::new(pool.clone(), registry, config, Uuid::new_v4());
        stats.push(executor.stats());
        workers.push(tokio::spawn(executor.run(shutdown.clone())));
    }
    let total = |f: &dyn Fn(&postrunner_queue::executor::ExecutorStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    while total(&|s| s.completed.load(Ordering::Relaxed)) < u64::from(args.messages) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "not every message was sent within 30 minutes"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    for worker in workers {
        worker.await?;
    }
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        sent == i64::from(args.messages),
        "{sent} of {} messages are marked sent",
        args.messages
    );
    let claims = total(&|s| s.claims.load(Ordering::Relaxed)).max(1) as f64;
    Ok(Run {
        addresses,
        secs,
        per_sec: f64::from(args.messages) / secs,
        claim_batch: total(&|s| s.claimed.load(Ordering::Relaxed)) as f64 / claims,
        claim_ms: total(&|s| s.claim_us.load(Ordering::Relaxed)) as f64 / 1000.0 / claims,
    })
}
