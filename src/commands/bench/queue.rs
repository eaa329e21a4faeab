//! `postrunner bench queue --jobs 10000,50000,200000,1000000 --concurrency C`: the real
//! worker path over no-op jobs in a fresh database `postrunner_bench`.
//!
//! An [`Executor`] with C slots (the same code `postrunner worker` runs) does:
//! 1. pickup: with the executor idle, insert one job at a time and measure how long it
//!    waited, from its insert (`created_at`) to its claim (`attempted_at`), both on the
//!    database clock;
//! 2. for each backlog N: empty the queue, enqueue N jobs with plain SQL `INSERT ...
//!    SELECT` in chunks of 10,000 with no worker running, ANALYZE the table (as
//!    autovacuum would once the queue has filled: the plans then see a full queue's
//!    statistics), CHECKPOINT, start a worker and time it until all N are completed
//!    (the rate is taken from 10% to 90% done);
//! 3. dead tuples left in `postrunner.jobs` after the last drain (before autovacuum);
//! 4. pickup again on the drained table.
//!
//! No backlog should drain much slower than the best one: a claim whose plan depends on
//! the statistics (a hash join over the whole table at one size) shows up as a slow row.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::percentile;
use crate::config::BenchQueueArgs;
use postrunner_queue::executor::{Executor, ExecutorConfig, ExecutorStats};
use postrunner_queue::handler::{Handler, JobError, Registry};
use postrunner_queue::ClaimedJob;

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
    let pool = postrunner_schema::pool(&url, 10, "postrunner-bench")?;
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

    // 2. Each backlog: enqueue with plain SQL, no worker running; ANALYZE; drain.
    let mut drains = Vec::new();
    let mut enqueue_per_sec = 0.0;
    let mut last_stats = None;
    let mut last_worker: Option<Bench> = None;
    let runs: Vec<u32> = args
        .jobs
        .iter()
        .flat_map(|&jobs| std::iter::repeat_n(jobs, args.repeat.max(1)))
        .collect();
    for (i, &jobs) in runs.iter().enumerate() {
        if let Some(worker) = last_worker.take() {
            worker.stop().await?;
        }
        let rate = enqueue_backlog(&pool, jobs).await?;
        if i == 0 || jobs >= 200_000 {
            enqueue_per_sec = rate;
        }

        let started = Instant::now();
        let worker = Bench::start(&pool, &args, &waits_ms);
        let stats = worker.stats.clone();
        drains.push(drain(&stats, jobs, started).await?);
        last_stats = Some(stats);
        last_worker = Some(worker);
    }
    let stats = last_stats.context("at least one backlog (--jobs)")?;
    let worker = last_worker.context("at least one backlog (--jobs)")?;

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

    Report {
        args: &args,
        server: format!("PostgreSQL {version}, fsync={fsync}, synchronous_commit={sync_commit}"),
        enqueue_per_sec,
        drains: &drains,
        pickup,
        pickup_after,
        table: (live, dead, bytes),
    }
    .print();
    Ok(())
}

/// One backlog's drain.
#[derive(Clone)]
struct Drain {
    jobs: u32,
    secs: f64,
    per_sec: f64,
    claim_batch: f64,
    claim_ms: f64,
    finish_batch: f64,
    finish_ms: f64,
}

/// Empties the queue, enqueues `jobs` no-op jobs with plain SQL (no worker running),
/// ANALYZEs and checkpoints; the enqueue rate, jobs/s.
async fn enqueue_backlog(pool: &sqlx::PgPool, jobs: u32) -> anyhow::Result<f64> {
    sqlx::query("TRUNCATE postrunner.jobs").execute(pool).await?;
    let started = Instant::now();
    let mut left = jobs;
    while left > 0 {
        let n = left.min(CHUNK);
        sqlx::query("INSERT INTO postrunner.jobs (kind) SELECT 'noop' FROM generate_series(1, $1)")
            .bind(n as i32)
            .execute(pool)
            .await
            .context("enqueueing")?;
        left -= n;
    }
    let rate = f64::from(jobs) / started.elapsed().as_secs_f64();
    sqlx::query("ANALYZE postrunner.jobs").execute(pool).await?;
    // Each drain starts with nothing left to write from the previous one (a checkpoint
    // running during a drain would be charged to that backlog). Needs a superuser or
    // pg_checkpoint; without either, the drains share checkpoints.
    let _ = sqlx::query("CHECKPOINT").execute(pool).await;
    Ok(rate)
}

/// Waits until a worker started at `started` has completed `jobs`; the drain's figures.
async fn drain(stats: &ExecutorStats, jobs: u32, started: Instant) -> anyhow::Result<Drain> {
    // The rate is taken between 10% and 90% completed: a worker's start and the
    // drain's last batches weigh on a short drain, and this compares backlogs, not
    // start-up costs.
    let (mut at_10, mut at_90) = (None, None);
    loop {
        let done = stats.completed.load(Ordering::Relaxed);
        if at_10.is_none() && done * 10 >= u64::from(jobs) {
            at_10 = Some((Instant::now(), done));
        }
        if at_90.is_none() && done * 10 >= u64::from(jobs) * 9 {
            at_90 = Some((Instant::now(), done));
        }
        if done >= u64::from(jobs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "drain did not finish in 30 minutes"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let steady = match (at_10, at_90) {
        (Some((t10, n10)), Some((t90, n90))) if t90 > t10 => (n90 - n10) as f64 / (t90 - t10).as_secs_f64(),
        _ => f64::from(jobs) / secs,
    };
    let per = |us: &std::sync::atomic::AtomicU64, n: &std::sync::atomic::AtomicU64| {
        us.load(Ordering::Relaxed) as f64 / 1000.0 / n.load(Ordering::Relaxed).max(1) as f64
    };
    Ok(Drain {
        jobs,
        secs,
        per_sec: steady,
        claim_batch: stats.claimed.load(Ordering::Relaxed) as f64 / stats.claims.load(Ordering::Relaxed).max(1) as f64,
        claim_ms: per(&stats.claim_us, &stats.claims),
        finish_batch: stats.completed.load(Ordering::Relaxed) as f64
            / stats.finishes.load(Ordering::Relaxed).max(1) as f64,
        finish_ms: per(&stats.finish_us, &stats.finishes),
    })
}

/// What `bench queue` prints: a table, then one line of `key=value` figures.
struct Report<'a> {
    args: &'a BenchQueueArgs,
    server: String,
    enqueue_per_sec: f64,
    drains: &'a [Drain],
    pickup: (f64, f64),
    pickup_after: (f64, f64),
    /// The jobs table after the last drain: live and dead tuples, bytes.
    table: (i64, i64, i64),
}

impl Report<'_> {
    fn print(&self) {
        // Per backlog, the median run (and the spread of all its runs).
        let mut medians: Vec<(Drain, f64, f64)> = Vec::new();
        for &jobs in &self.args.jobs {
            let mut of_size: Vec<Drain> = self.drains.iter().filter(|d| d.jobs == jobs).cloned().collect();
            of_size.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
            let (low, high) = (of_size[0].per_sec, of_size[of_size.len() - 1].per_sec);
            medians.push((of_size[of_size.len() / 2].clone(), low, high));
        }
        let drains: Vec<Drain> = medians.iter().map(|(d, _, _)| d.clone()).collect();
        let best = drains.iter().map(|d| d.per_sec).fold(0.0, f64::max);
        let worst = drains.iter().map(|d| d.per_sec).fold(f64::INFINITY, f64::min);
        println!("postrunner bench queue");
        println!("  machine          {} cores; {}", num_cpus(), self.server);
        println!(
            "  concurrency      {} (prefetch {})",
            self.args.concurrency, self.args.prefetch
        );
        println!(
            "  enqueue          {:>10.0} jobs/s  (SQL INSERT ... SELECT, {CHUNK} per statement)",
            self.enqueue_per_sec
        );
        println!(
            "  drain, each backlog ANALYZEd first (claim -> run -> complete, batched; jobs/s from 10% to 90% done,"
        );
        println!("  the median of {} drains, and their range):", self.args.repeat.max(1));
        println!(
            "      backlog   seconds     jobs/s          range   per claim  ms/claim   per completion  ms/completion"
        );
        for (d, low, high) in &medians {
            println!(
                "  {:>11} {:>9.2} {:>10.0} {:>7.0}-{:<7.0} {:>11.1} {:>9.2} {:>16.1} {:>14.2}",
                d.jobs, d.secs, d.per_sec, low, high, d.claim_batch, d.claim_ms, d.finish_batch, d.finish_ms
            );
        }
        println!("  slowest backlog drains at {:.2}x the fastest", worst / best);
        println!(
            "  pickup, idle     p50 {:.2} ms   p99 {:.2} ms   ({} samples, insert -> claim, fresh queue)",
            self.pickup.0, self.pickup.1, self.args.pickup_samples
        );
        println!(
            "  pickup, drained  p50 {:.2} ms   p99 {:.2} ms   (right after the last drain, before autovacuum)",
            self.pickup_after.0, self.pickup_after.1
        );
        let (live, dead, bytes) = self.table;
        println!("  jobs table after the last drain: {live} live, {dead} dead tuples, {} kB (completed jobs are deleted; autovacuum reclaims)", bytes / 1024);
        let figures: Vec<String> = drains
            .iter()
            .map(|d| format!("jobs_per_sec_{}={:.0}", d.jobs, d.per_sec))
            .collect();
        println!(
            "{} worst_vs_best={:.2} enqueue_per_sec={:.0} p50_pickup_ms={:.2} p99_pickup_ms={:.2} dead_tuples={dead}",
            figures.join(" "),
            worst / best,
            self.enqueue_per_sec,
            self.pickup.0,
            self.pickup.1
        );
    }
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
