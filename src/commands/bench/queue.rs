//! `postrunner bench queue --jobs N --concurrency C`: the real worker path over no-op
//! jobs in a fresh database `postrunner_bench`.
//!
//! One [`Executor`] with C slots (the same code `postrunner worker` runs) is started, then:
//! 1. pickup: with the executor idle, insert one job at a time and measure how long it
//!    waited, from its insert (`created_at`) to its claim (`attempted_at`), both on the
//!    database clock;
//! 2. enqueue: N jobs with plain SQL `INSERT ... SELECT` in chunks of 10,000 (scheduled an
//!    hour ahead, so the idle executor does not start on them while they are inserted);
//! 3. drain: one UPDATE makes all N runnable and a NOTIFY wakes the executor; timed until
//!    all N are completed;
//! 4. dead tuples left in `postrunner.jobs` after the drain (before autovacuum);
//! 5. pickup again on the drained table.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::percentile;
use crate::config::BenchQueueArgs;
use crate::queue::executor::{Executor, ExecutorConfig, ExecutorStats};
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
    if let Ok(sql) = std::env::var("BENCH_EXPERIMENT") {
        // For trying a schema change in place (an index, a setting) before writing a migration.
        sqlx::raw_sql(&sql).execute(&pool).await?;
    }
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&pool)
        .await?;
    let (fsync, sync_commit): (String, String) =
        sqlx::query_as("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
            .fetch_one(&pool)
            .await?;

    // 1. Pickup with idle workers, on a fresh queue.
    let waits_ms = Arc::new(Mutex::new(Vec::new()));
    let idle = Bench::start(&pool, &args, &waits_ms);
    let pickup = measure_pickup(&pool, &idle.stats, &waits_ms, args.pickup_samples).await?;
    idle.stop().await?;

    // 2. Enqueue with plain SQL, no worker running.
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

    // 3. Drain: start a worker on the backlog and time it until every job is completed.
    let started = Instant::now();
    let worker = Bench::start(&pool, &args, &waits_ms);
    let stats = worker.stats.clone();
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
    let per = |us: &std::sync::atomic::AtomicU64, n: &std::sync::atomic::AtomicU64| {
        us.load(Ordering::Relaxed) as f64 / 1000.0 / n.load(Ordering::Relaxed).max(1) as f64
    };
    let (claim_ms, finish_ms) = (
        per(&stats.claim_us, &stats.claims),
        per(&stats.finish_us, &stats.finishes),
    );

    // 4. Dead tuples left by the drain (statistics are flushed about once a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (dead, live, bytes): (i64, i64, i64) = sqlx::query_as(
        "SELECT n_dead_tup, n_live_tup, pg_total_relation_size('postrunner.jobs') \
         FROM pg_stat_user_tables WHERE schemaname = 'postrunner' AND relname = 'jobs'",
    )
    .fetch_one(&pool)
    .await?;

    // 5. Pickup again, right after the drain, before autovacuum has cleaned up.
    let pickup_after = measure_pickup(&pool, &stats, &waits_ms, args.pickup_samples).await?;
    worker.stop().await?;

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
    println!(
        "  batches          {claim_batch:.1} jobs per claim ({:.2} ms each), {finish_batch:.1} per completion ({:.2} ms each)",
        claim_ms, finish_ms
    );
    println!(
        "  pickup, idle     p50 {:.2} ms   p99 {:.2} ms   ({} samples, insert -> claim, fresh queue)",
        pickup.0, pickup.1, args.pickup_samples
    );
    println!(
        "  pickup, drained  p50 {:.2} ms   p99 {:.2} ms   (right after the drain, before autovacuum)",
        pickup_after.0, pickup_after.1
    );
    println!("  jobs table after drain: {live} live, {dead} dead tuples, {} kB (completed jobs are deleted; autovacuum reclaims)", bytes / 1024);
    println!(
        "jobs_per_sec={jobs_per_sec:.0} enqueue_per_sec={enqueue_per_sec:.0} p50_pickup_ms={:.2} p99_pickup_ms={:.2} dead_tuples={dead}",
        pickup.0, pickup.1
    );
    Ok(())
}

/// A running executor with the pickup probe as its only kind.
struct Bench {
    stats: Arc<ExecutorStats>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Bench {
    fn start(pool: &sqlx::PgPool, args: &BenchQueueArgs, waits_ms: &Arc<Mutex<Vec<f64>>>) -> Self {
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
        let handle = tokio::spawn(executor.run(shutdown.clone()));
        Self {
            stats,
            shutdown,
            handle,
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        Ok(self.handle.await?)
    }
}

/// Inserts one job at a time while the executor is idle and returns the p50 and p99 of
/// how long each waited (insert -> claim, on the database clock).
async fn measure_pickup(
    pool: &sqlx::PgPool,
    stats: &ExecutorStats,
    waits_ms: &Mutex<Vec<f64>>,
    samples: u32,
) -> anyhow::Result<(f64, f64)> {
    waits_ms.lock().expect("probe lock").clear();
    // Let the executor settle into its idle wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..samples {
        let before = stats.completed.load(Ordering::Relaxed);
        sqlx::query("INSERT INTO postrunner.jobs (kind) VALUES ('noop')")
            .execute(pool)
            .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.completed.load(Ordering::Relaxed) == before {
            anyhow::ensure!(Instant::now() < deadline, "a pickup sample took over 10 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut waits = waits_ms.lock().expect("probe lock").clone();
    waits.sort_by(f64::total_cmp);
    Ok((percentile(&waits, 50.0), percentile(&waits, 99.0)))
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
