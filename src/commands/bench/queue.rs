//! `postrunner bench queue --jobs N --concurrency C`: the real worker path over no-op
//! jobs in a fresh database `postrunner_bench`.
//!
//! 1. enqueue: N jobs with plain SQL `INSERT ... SELECT` in chunks of 10,000;
//! 2. drain: one [`Executor`] with C slots (the same code `postrunner worker` runs)
//!    until all N are completed;
//! 3. pickup: with the executor idle, insert one job at a time and measure how long it
//!    waited, from its insert (`created_at`) to its claim (`attempted_at`), both on the
//!    database clock;
//! 4. dead tuples left in `postrunner.jobs` after the drain (before autovacuum).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::percentile;
use crate::config::BenchQueueArgs;
use crate::queue::executor::{Executor, ExecutorConfig};
use crate::queue::handler::{Handler, JobError, Registry};
use crate::queue::ClaimedJob;

const CHUNK: u32 = 10_000;

/// A no-op handler that notes how long each job waited to be claimed.
struct PickupProbe {
    waits_ms: Arc<Mutex<Vec<f64>>>,
}

#[async_trait::async_trait]
impl Handler for PickupProbe {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        if let Some(at) = job.attempted_at {
            let ms = (at - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            self.waits_ms.lock().expect("probe lock").push(ms);
        }
        Ok(None)
    }
}

pub async fn run(database_url: Option<String>, args: BenchQueueArgs) -> anyhow::Result<()> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench").await?;
    let pool = crate::db::pool(&url, 10, "postrunner-bench")?;
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&pool)
        .await?;
    let (fsync, sync_commit): (String, String) =
        sqlx::query_as("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
            .fetch_one(&pool)
            .await?;

    if let Ok(sql) = std::env::var("BENCH_EXPERIMENT") {
        sqlx::raw_sql(&sql).execute(&pool).await?;
    }
    // 1. Enqueue.
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(CHUNK);
        sqlx::query("INSERT INTO postrunner.jobs (kind) SELECT 'noop' FROM generate_series(1, $1)")
            .bind(n as i32)
            .execute(&pool)
            .await
            .context("enqueueing")?;
        left -= n;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    let enqueue_per_sec = f64::from(args.jobs) / enqueue_secs;

    // 2. Drain with the real executor.
    let waits_ms = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register(
        "noop",
        PickupProbe {
            waits_ms: waits_ms.clone(),
        },
    );
    let config = ExecutorConfig {
        concurrency: args.concurrency,
        prefetch: args.prefetch,
        ..ExecutorConfig::default()
    };
    let executor = Executor::new(pool.clone(), registry, config, Uuid::new_v4());
    let stats = executor.stats();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(executor.run(shutdown.clone()));
    while stats.completed.load(Ordering::Relaxed) < u64::from(args.jobs) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "drain did not finish in 30 minutes"
        );
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let jobs_per_sec = f64::from(args.jobs) / drain_secs;
    let claim_batch = stats.claimed.load(Ordering::Relaxed) as f64 / stats.claims.load(Ordering::Relaxed).max(1) as f64;
    let finish_batch =
        stats.completed.load(Ordering::Relaxed) as f64 / stats.finishes.load(Ordering::Relaxed).max(1) as f64;

    // 4. Dead tuples (statistics are flushed about once a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (dead, live, bytes): (i64, i64, i64) = sqlx::query_as(
        "SELECT n_dead_tup, n_live_tup, pg_total_relation_size('postrunner.jobs') \
         FROM pg_stat_user_tables WHERE schemaname = 'postrunner' AND relname = 'jobs'",
    )
    .fetch_one(&pool)
    .await?;

    // 3. Pickup latency with idle workers: one job at a time.
    waits_ms.lock().expect("probe lock").clear();
    let before = stats.completed.load(Ordering::Relaxed);
    for i in 0..args.pickup_samples {
        sqlx::query("INSERT INTO postrunner.jobs (kind) VALUES ('noop')")
            .execute(&pool)
            .await?;
        let target = before + u64::from(i) + 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.completed.load(Ordering::Relaxed) < target {
            anyhow::ensure!(Instant::now() < deadline, "a pickup sample took over 10 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Let the worker settle back into its idle wait before the next sample.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut waits = waits_ms.lock().expect("probe lock").clone();
    waits.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&waits, 50.0), percentile(&waits, 99.0));

    shutdown.cancel();
    handle.await?;

    println!("postrunner bench queue");
    println!(
        "  machine          {} cores; PostgreSQL {version}, fsync={fsync}, synchronous_commit={sync_commit}",
        num_cpus()
    );
    println!("  jobs             {}", args.jobs);
    println!("  concurrency      {} (prefetch {})", args.concurrency, args.prefetch);
    println!("  enqueue          {enqueue_secs:>8.2} s   {enqueue_per_sec:>10.0} jobs/s  (SQL INSERT ... SELECT, {CHUNK} per statement)");
    println!(
        "  drain            {drain_secs:>8.2} s   {jobs_per_sec:>10.0} jobs/s  (claim -> run -> complete, batched)"
    );
    let per = |us: &std::sync::atomic::AtomicU64, n: &std::sync::atomic::AtomicU64| {
        us.load(Ordering::Relaxed) as f64 / 1000.0 / n.load(Ordering::Relaxed).max(1) as f64
    };
    println!(
        "  batches          {claim_batch:.1} jobs per claim ({:.2} ms each), {finish_batch:.1} per completion transaction ({:.2} ms each)",
        per(&stats.claim_us, &stats.claims),
        per(&stats.finish_us, &stats.finishes)
    );
    println!(
        "  pickup (idle)    p50 {p50:.2} ms   p99 {p99:.2} ms   ({} samples, insert -> claim)",
        waits.len()
    );
    println!("  jobs table after drain: {live} live, {dead} dead tuples, {} kB on disk (completed jobs are deleted; autovacuum reclaims)", bytes / 1024);
    println!(
        "jobs_per_sec={jobs_per_sec:.0} enqueue_per_sec={enqueue_per_sec:.0} p50_pickup_ms={p50:.2} p99_pickup_ms={p99:.2} dead_tuples={dead}"
    );
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
