//! The executor: claims batches of jobs, runs them concurrently, and records their
//! outcomes in batches. This is the whole of a worker's job loop.
//!
//! Several kinds of task cooperate:
//! - two *fetchers* ([`fetch`]): each claims, in one statement, as many jobs as the shared
//!   claim budget (`concurrency + prefetch`) allows; two keep a claim in flight while the
//!   other's answer is being used. Once per poll interval they promote due jobs and
//!   rescue expired leases; when the queue is empty they sleep on LISTEN/NOTIFY or the
//!   poll interval;
//! - one tokio task per claimed job; at most `concurrency` run their handler at once,
//!   the prefetched rest wait for a slot. A job's claim budget returns once its outcome
//!   is written, so claimed jobs never pile up behind a slow completer;
//! - the *completer* ([`complete`]), which writes every outcome that has piled up since
//!   its last write in one transaction; claims and completions therefore pipeline;
//! - the *heartbeat*, which extends the leases of exactly the jobs this process holds
//!   ([`Held`]).
//!
//! No transaction or row lock is held while a handler runs: the claim commits first.
//! On shutdown the fetchers stop claiming, prefetched jobs are released at once, running
//! ones get `grace` to finish, and those still running after it are released too.

mod complete;
mod fetch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::complete::Completer;
use self::fetch::{attempt, Fetch};
use super::claim::{claim_both, ClaimRequest, LostClaims, Sources};
use super::finish::{finish, release, Finished};
use super::handler::Registry;
use super::heartbeat::heartbeat;
use super::leases::{Lease, Leases, Stage};
use super::promote::promote_due;
use super::retry::Backoff;
use super::wake::{listen, sleep_or_cancel};
use super::QueueError;

/// How an executor runs. See `postrunner worker --help` for the meaning of each.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots, so that fast jobs never wait for a claim round
    /// trip; they wait locally (leased, heartbeated, released on shutdown).
    pub prefetch: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll_interval: Duration,
    pub grace: Duration,
    pub job_timeout: Duration,
    pub backoff: Backoff,
    /// The email handler signs one-click unsubscribe links (`worker --unsubscribe-url`),
    /// so this executor may route a bulk client's messages.
    pub signs_unsubscribe: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            prefetch: 64,
            lease: Duration::from_secs(20),
            heartbeat: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            job_timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            signs_unsubscribe: false,
        }
    }
}

/// Counters an executor keeps, for progress displays and benchmarks.
#[derive(Debug, Default)]
pub struct ExecutorStats {
    /// Claim statements that returned at least one job.
    pub claims: AtomicU64,
    /// Completion transactions written.
    pub finishes: AtomicU64,
    pub claimed: AtomicU64,
    /// Time spent in claim and completion statements, in microseconds.
    pub claim_us: AtomicU64,
    pub finish_us: AtomicU64,
    pub completed: AtomicU64,
    pub retried: AtomicU64,
    pub discarded: AtomicU64,
    pub lost: AtomicU64,
    pub released: AtomicU64,
}

/// Claim statements a worker keeps in flight.
const FETCHERS: usize = 2;

/// A job loop over one pool, for one process identity.
pub struct Executor {
    pool: PgPool,
    registry: Arc<Registry>,
    config: ExecutorConfig,
    id: Uuid,
    stats: Arc<ExecutorStats>,
    /// Claims whose reply was lost with the connection (see [`LostClaims`]).
    lost: Arc<LostClaims>,
    /// Where idle fetchers LISTEN to be woken (`None`: they only poll).
    listener: Option<PgPool>,
}

impl Executor {
    /// `id` is this process's row in `postrunner.processes` (its heartbeat refreshes it).
    pub fn new(pool: PgPool, registry: Registry, config: ExecutorConfig, id: Uuid) -> Self {
        Self {
            registry: Arc::new(registry),
            config,
            id,
            stats: Arc::default(),
            lost: Arc::default(),
            listener: Some(pool.clone()),
            pool,
        }
    }

    /// LISTENs on `listener` instead of the executor's pool, or not at all (`None`: a
    /// pool through PgBouncer in transaction mode cannot hold a LISTEN; idle fetchers
    /// then find new jobs by polling, within one poll interval).
    pub fn listen_on(mut self, listener: Option<PgPool>) -> Self {
        self.listener = listener;
        self
    }

    pub fn stats(&self) -> Arc<ExecutorStats> {
        self.stats.clone()
    }

    /// One synchronous round at `now` (`None`: the database clock): promote due jobs,
    /// claim up to `concurrency`, run them, record the outcomes. Returns how many ran.
    /// Tests drive time with it; it is the same claim/attempt/finish code as [`run`](Self::run).
    /// A failing routed claim is logged and the generic jobs still run, as in `run`.
    ///
    /// # Errors
    /// [`QueueError`] when a statement fails.
    pub async fn tick(&self, now: Option<chrono::DateTime<chrono::Utc>>) -> Result<usize, QueueError> {
        promote_due(&self.pool, 10_000, now).await?;
        self.lost.release(&self.pool).await?;
        let request = ClaimRequest {
            worker: self.id,
            limit: self.config.concurrency as i64,
            lease: self.config.lease,
            now,
            after: None,
            signs_unsubscribe: self.config.signs_unsubscribe,
        };
        let claimed = claim_both(&self.pool, request, Sources::BOTH, &self.lost).await?;
        if let Err(e) = &claimed.routing {
            tracing::error!(error = %e, source = %e.source, "the routed claim failed; postrunner's own jobs still run");
        }
        let jobs = claimed.jobs;
        let attempts = jobs.iter().map(|job| {
            let handler = self.registry.get(&job.kind).map(|h| h.as_ref());
            attempt(handler, job, self.config.job_timeout, &self.config.backoff)
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let batch: Vec<Finished> = jobs
            .into_iter()
            .zip(outcomes)
            .map(|(job, outcome)| Finished {
                id: job.id,
                lease_token: job.lease_token,
                kind: job.kind,
                outcome,
            })
            .collect();
        let mut unwritten = batch.clone();
        while !unwritten.is_empty() {
            let report = finish(&self.pool, &self.registry, &unwritten, now).await?;
            self.stats
                .completed
                .fetch_add(report.completed as u64, Ordering::Relaxed);
            // Rows another transaction holds: write those outcomes once it lets go.
            unwritten.retain(|f| report.busy.contains(&f.id));
            if !unwritten.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(batch.len())
    }

    /// Runs [`tick`](Self::tick) until a round finds nothing to do; returns how many ran.
    ///
    /// # Errors
    /// [`QueueError`] when a statement fails.
    pub async fn drain(&self, now: Option<chrono::DateTime<chrono::Utc>>) -> Result<usize, QueueError> {
        let mut total = 0;
        loop {
            match self.tick(now).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Runs until `shutdown` is cancelled, then winds down (see the module docs).
    ///
    /// Database errors never end the loop: they are logged once per outage and retried
    /// with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let outage = Arc::new(Outage::default());
        let wake = Arc::new(Notify::new());
        let leases = Arc::new(Leases::default());
        let background = CancellationToken::new();
        let listener = match self.listener.clone() {
            Some(pool) => tokio::spawn(listen(pool, wake.clone(), background.clone())),
            None => {
                tracing::info!(poll = ?self.config.poll_interval, "no LISTEN connection: idle, this worker polls");
                tokio::spawn(async {})
            }
        };
        let heartbeats = tokio::spawn(heartbeat_loop(
            self.pool.clone(),
            self.id,
            self.config.clone(),
            leases.clone(),
            outage.clone(),
            background.clone(),
        ));
        // Cancelled a grace period after shutdown: from then on the completer stops
        // retrying outcomes it cannot write (the database is gone); those jobs are
        // rescued once their leases expire.
        let give_up = CancellationToken::new();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let completer = Completer {
            pool: self.pool.clone(),
            registry: self.registry.clone(),
            stats: self.stats.clone(),
            outage: outage.clone(),
            leases: leases.clone(),
            give_up: give_up.clone(),
        };
        let completer = tokio::spawn(completer.run(done_rx));

        let fetch = Fetch {
            pool: self.pool.clone(),
            registry: self.registry.clone(),
            config: self.config.clone(),
            id: self.id,
            stats: self.stats.clone(),
            outage: outage.clone(),
            routing_outage: Outage::default(),
            wake,
            budget: Arc::new(Semaphore::new(self.config.concurrency + self.config.prefetch)),
            slots: Arc::new(Semaphore::new(self.config.concurrency)),
            leases: leases.clone(),
            tasks: Mutex::default(),
            last_upkeep: Mutex::default(),
            turn: Mutex::default(),
            lanes: Mutex::default(),
            generic_empty: Default::default(),
            done: done_tx,
            lost: self.lost.clone(),
        };
        futures_util::future::join_all((0..FETCHERS).map(|_| fetch.fetch_loop(&shutdown))).await;
        let tasks = std::mem::take(&mut *fetch.tasks.lock().expect("tasks lock"));
        self.wind_down(tasks, &leases, &outage).await;

        // The last sender of outcomes goes with `fetch`: the completer drains and ends.
        drop(fetch);
        let deadline = {
            let (give_up, grace) = (give_up.clone(), self.config.grace);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                give_up.cancel();
            })
        };
        if let Err(error) = completer.await {
            tracing::error!(%error, "completer task failed");
        }
        deadline.abort();
        background.cancel();
        let _ = listener.await;
        let _ = heartbeats.await;
    }

    /// No more claims. Prefetched jobs that had not started go back at once (their
    /// tasks saw the shutdown and return without running); running ones get the grace,
    /// then are cut off and released with their attempt counted.
    async fn wind_down(&self, mut tasks: JoinSet<()>, leases: &Leases, outage: &Outage) {
        tokio::task::yield_now().await;
        while tasks.try_join_next().is_some() {}
        self.release(&leases.take(Stage::Waiting), false, outage).await;
        if !tasks.is_empty() {
            let grace_ms = self.config.grace.as_millis() as u64;
            tracing::info!(jobs.running = tasks.len(), grace_ms, "waiting for running jobs");
        }
        let drained =
            tokio::time::timeout(self.config.grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // Interrupted mid-run: the attempt counts.
        self.release(&leases.take(Stage::Running), true, outage).await;
        self.release(&leases.take(Stage::Waiting), false, outage).await;
        if let Err(e) = self.lost.release(&self.pool).await {
            outage.failed(&e);
        }
    }

    /// Releases `jobs` at shutdown, retrying briefly through connection errors.
    async fn release(&self, jobs: &[Lease], started: bool, outage: &Outage) {
        if jobs.is_empty() {
            return;
        }
        for attempt in 0..5 {
            match release(&self.pool, jobs, started).await {
                Ok(n) => {
                    self.stats.released.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::info!(jobs.released = n, jobs.started = started, "released unfinished jobs");
                    return;
                }
                Err(e) if attempt < 4 => {
                    outage.failed(&e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not release jobs; they are rescued when their lease expires")
                }
            }
        }
    }
}

async fn heartbeat_loop(
    pool: PgPool,
    id: Uuid,
    config: ExecutorConfig,
    leases: Arc<Leases>,
    outage: Arc<Outage>,
    stop: CancellationToken,
) {
    loop {
        if sleep_or_cancel(config.heartbeat, &stop).await {
            return;
        }
        match heartbeat(&pool, id, config.lease, &leases.leases()).await {
            Ok(_) => outage.ok(),
            Err(e) => outage.failed(&e),
        }
    }
}

/// Logs a database outage once when it starts and once when it ends, however many
/// statements fail in between.
#[derive(Default)]
pub(crate) struct Outage {
    since: Mutex<Option<Instant>>,
}

impl Outage {
    pub(crate) fn failed(&self, error: &QueueError) {
        crate::metrics::database_error(error.doing);
        let mut since = self.since.lock().expect("outage lock");
        if since.is_none() {
            *since = Some(Instant::now());
            if error.is_connection_error() {
                tracing::warn!(error = %error.source, doing = error.doing, "database unreachable; backing off and retrying");
            } else {
                tracing::error!(error = %error.source, doing = error.doing, "database error; backing off and retrying");
            }
        }
    }

    pub(crate) fn ok(&self) {
        let mut since = self.since.lock().expect("outage lock");
        if let Some(start) = since.take() {
            tracing::info!(
                outage_ms = start.elapsed().as_millis() as u64,
                "database reachable again"
            );
        }
    }
}
