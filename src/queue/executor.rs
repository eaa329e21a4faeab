//! The executor: claims batches of jobs, runs them concurrently, and records their
//! outcomes in batches. This is the whole of a worker's job loop.
//!
//! Four kinds of task cooperate:
//! - two *fetchers* (`Fetch::fetch_loop`): each claims, in one statement, as many jobs
//!   as the shared claim budget (`concurrency + prefetch`) allows, promotes due jobs now
//!   and then, and sleeps on LISTEN/NOTIFY or the poll interval when the queue is empty;
//!   two keep a claim in flight while the other's answer is being used;
//! - one tokio task per claimed job; at most `concurrency` run their handler at once,
//!   the prefetched rest wait for a slot. Budget is returned as soon as a handler
//!   returns, before its outcome is written;
//! - the *completer*, which writes every outcome that has piled up since its last write
//!   in one transaction ([`finish`]); claims and completions therefore pipeline;
//! - the *heartbeat*, which extends the leases of everything this process holds.
//!
//! No transaction or row lock is held while a handler runs: the claim commits first.
//! On shutdown the fetcher stops claiming, running jobs get `grace` to finish, and the
//! rest are released for another replica at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::claim::{claim, ClaimRequest, Cursor};
use super::finish::{finish, release, Finished, Outcome};
use super::handler::{Handler, JobError, Registry};
use super::lease::heartbeat;
use super::promote::promote_due;
use super::retry::{Backoff, Decision};
use super::wake::{listen, sleep_or_cancel};
use super::{ClaimedJob, JobId, QueueError};

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

/// Most outcomes written in one transaction.
const MAX_FINISH_BATCH: usize = 2000;

/// A job loop over one pool, for one process identity.
pub struct Executor {
    pool: PgPool,
    registry: Arc<Registry>,
    config: ExecutorConfig,
    id: Uuid,
    stats: Arc<ExecutorStats>,
}

impl Executor {
    /// `id` is this process's row in `postrunner.processes` (its heartbeat refreshes it).
    pub fn new(pool: PgPool, registry: Registry, config: ExecutorConfig, id: Uuid) -> Self {
        Self {
            pool,
            registry: Arc::new(registry),
            config,
            id,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ExecutorStats> {
        self.stats.clone()
    }

    /// One synchronous round at `now` (`None`: the database clock): promote due jobs,
    /// claim up to `concurrency`, run them, record the outcomes. Returns how many ran.
    /// Tests drive time with it, and it is the same claim/attempt/finish code as [`run`](Self::run).
    ///
    /// # Errors
    /// [`QueueError`] when a statement fails.
    pub async fn tick(&self, now: Option<chrono::DateTime<chrono::Utc>>) -> Result<usize, QueueError> {
        promote_due(&self.pool, 10_000, now).await?;
        let request = ClaimRequest {
            worker: self.id,
            limit: self.config.concurrency as i64,
            lease: self.config.lease,
            now,
            after: None,
        };
        let jobs = claim(&self.pool, request).await?;
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
        let report = finish(&self.pool, &self.registry, &batch, now).await?;
        self.stats
            .completed
            .fetch_add(report.completed as u64, Ordering::Relaxed);
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
        let background = CancellationToken::new();
        let listener = tokio::spawn(listen(self.pool.clone(), wake.clone(), background.clone()));
        let heartbeats = tokio::spawn(heartbeat_loop(
            self.pool.clone(),
            self.id,
            self.config.clone(),
            outage.clone(),
            background.clone(),
        ));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let completer = tokio::spawn(complete_loop(
            self.pool.clone(),
            self.registry.clone(),
            done_rx,
            self.stats.clone(),
            outage.clone(),
        ));

        let fetch = Fetch {
            pool: self.pool.clone(),
            registry: self.registry.clone(),
            config: self.config.clone(),
            id: self.id,
            stats: self.stats.clone(),
            outage: outage.clone(),
            wake,
            held: Arc::new(Semaphore::new(self.config.concurrency + self.config.prefetch)),
            running: Arc::new(Semaphore::new(self.config.concurrency)),
            inflight: Arc::default(),
            tasks: Mutex::default(),
            done: done_tx,
        };
        futures_util::future::join_all((0..FETCHERS).map(|_| fetch.fetch_loop(&shutdown))).await;
        let mut tasks = std::mem::take(&mut *fetch.tasks.lock().expect("tasks lock"));

        // Shutdown: no more claims. Give running jobs their grace period.
        while tasks.try_join_next().is_some() {}
        let running = tasks.len();
        if running > 0 {
            tracing::info!(
                jobs.running = running,
                grace_ms = self.config.grace.as_millis() as u64,
                "waiting for running jobs"
            );
        }
        let drained =
            tokio::time::timeout(self.config.grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // Whatever did not finish goes back to the queue for another replica.
        let leftovers: Vec<(JobId, Uuid)> = fetch.inflight.lock().expect("inflight lock").drain().collect();
        if !leftovers.is_empty() {
            for attempt in 0..5 {
                match release(&self.pool, &leftovers).await {
                    Ok(n) => {
                        self.stats.released.fetch_add(n as u64, Ordering::Relaxed);
                        tracing::info!(jobs.released = n, "released unfinished jobs");
                        break;
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
        // The last sender of outcomes goes with `fetch`: the completer drains and ends.
        drop(fetch);
        if let Err(error) = completer.await {
            tracing::error!(%error, "completer task failed");
        }
        background.cancel();
        let _ = listener.await;
        let _ = heartbeats.await;
    }
}

/// Claim statements a worker keeps in flight: while one waits for PostgreSQL, the other
/// is being answered, so a fast queue is not limited by one claim's round trip.
const FETCHERS: usize = 2;

/// What the fetch loops of one executor share.
struct Fetch {
    pool: PgPool,
    registry: Arc<Registry>,
    config: ExecutorConfig,
    id: Uuid,
    stats: Arc<ExecutorStats>,
    outage: Arc<Outage>,
    wake: Arc<Notify>,
    /// Claim budget: jobs held (running or waiting to run) by this process.
    held: Arc<Semaphore>,
    /// Run budget: handlers running at once.
    running: Arc<Semaphore>,
    /// Claimed jobs whose outcome has not been handed to the completer.
    inflight: Arc<Mutex<HashMap<JobId, Uuid>>>,
    tasks: Mutex<JoinSet<()>>,
    done: mpsc::UnboundedSender<Finished>,
}

impl Fetch {
    /// Claims and starts jobs until `shutdown`. Each loop keeps its own cursor.
    async fn fetch_loop(&self, shutdown: &CancellationToken) {
        let mut last_promote = Instant::now() - self.config.poll_interval;
        let mut error_delay = Duration::from_millis(50);
        let mut cursor: Option<Cursor> = None;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                permit = self.held.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let mut permits = vec![first];
            while let Ok(p) = self.held.clone().try_acquire_owned() {
                permits.push(p);
            }

            let mut idle_until = None;
            if last_promote.elapsed() >= self.config.poll_interval {
                last_promote = Instant::now();
                match promote_due(&self.pool, 10_000, None).await {
                    Ok(p) => {
                        self.outage.ok();
                        idle_until = p.next_due;
                        // Promoted jobs may sort before the cursor.
                        cursor = None;
                    }
                    Err(e) => self.outage.failed(&e),
                }
            }

            // New jobs arrived (they may sort before the cursor): claim from the start.
            if self.wake.notified().now_or_never().is_some() {
                cursor = None;
            }
            let limit = permits.len();
            let request = ClaimRequest {
                worker: self.id,
                limit: limit as i64,
                lease: self.config.lease,
                now: None,
                after: cursor,
            };
            let claim_started = Instant::now();
            let claimed_jobs = claim(&self.pool, request).await;
            self.stats
                .claim_us
                .fetch_add(claim_started.elapsed().as_micros() as u64, Ordering::Relaxed);
            let jobs = match claimed_jobs {
                Ok(jobs) => {
                    self.outage.ok();
                    error_delay = Duration::from_millis(50);
                    jobs
                }
                Err(e) => {
                    self.outage.failed(&e);
                    cursor = None;
                    drop(permits);
                    if sleep_or_cancel(error_delay, shutdown).await {
                        return;
                    }
                    error_delay = (error_delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let claimed = jobs.len();
            // A full batch: carry on from its last job. A short one: the queue past the
            // cursor is exhausted (or contended), so the next claim starts from the top,
            // at once if this one had a cursor.
            let had_cursor = cursor.is_some();
            cursor = if claimed == limit { Cursor::last_of(&jobs) } else { None };
            self.stats.claimed.fetch_add(claimed as u64, Ordering::Relaxed);
            self.stats.claims.fetch_add(u64::from(claimed > 0), Ordering::Relaxed);
            self.start(jobs, &mut permits, shutdown);
            drop(permits);
            if claimed > 0 || had_cursor {
                continue;
            }

            // Nothing to run: sleep until notified, the poll interval, or the next due job.
            let mut nap = self.config.poll_interval;
            if let Some(due) = idle_until {
                let until_due = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                nap = nap.min(until_due.max(Duration::from_millis(5)));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// Starts one task per claimed job, each holding one claim permit until its handler returns.
    fn start(&self, jobs: Vec<ClaimedJob>, permits: &mut Vec<OwnedSemaphorePermit>, shutdown: &CancellationToken) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        while tasks.try_join_next().is_some() {}
        for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
            self.inflight
                .lock()
                .expect("inflight lock")
                .insert(job.id, job.lease_token);
            let runner = JobRun {
                handler: self.registry.get(&job.kind).cloned(),
                timeout: self.config.job_timeout,
                backoff: self.config.backoff.clone(),
                done: self.done.clone(),
                inflight: self.inflight.clone(),
            };
            let span = tracing::info_span!("job", job.id = job.id, job.kind = %job.kind, job.attempt = job.attempts);
            let (running, shutdown) = (self.running.clone(), shutdown.clone());
            tasks.spawn(
                async move {
                    let _slot = running.acquire_owned().await.expect("semaphore is never closed");
                    // A prefetched job that had to wait past a shutdown does not start:
                    // it stays in `inflight` and is released.
                    if !shutdown.is_cancelled() {
                        runner.run(job).await;
                    }
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}

/// Everything one job's task needs.
struct JobRun {
    handler: Option<Arc<dyn Handler>>,
    timeout: Duration,
    backoff: Backoff,
    done: mpsc::UnboundedSender<Finished>,
    inflight: Arc<Mutex<HashMap<JobId, Uuid>>>,
}

impl JobRun {
    async fn run(self, job: ClaimedJob) {
        let outcome = attempt(self.handler.as_deref(), &job, self.timeout, &self.backoff).await;
        let finished = Finished {
            id: job.id,
            lease_token: job.lease_token,
            kind: job.kind,
            outcome,
        };
        // Hand-over and removal happen together, with no await in between, so a
        // shutdown that aborts this task either sees the job in `inflight` (and releases
        // it) or not (and the completer records it): never both, never neither.
        let mut inflight = self.inflight.lock().expect("inflight lock");
        let id = finished.id;
        if self.done.send(finished).is_ok() {
            inflight.remove(&id);
        }
    }
}

/// Runs one attempt of `job` and classifies how it ended: handler errors, panics and
/// timeouts all become failures with a retry decision, so no job is ever left behind.
async fn attempt(handler: Option<&dyn Handler>, job: &ClaimedJob, timeout: Duration, backoff: &Backoff) -> Outcome {
    let retry = |error: String| Outcome::Failed {
        error,
        decision: backoff.decide(job.attempts, job.max_attempts, false),
    };
    let outcome = match handler {
        // A newer replica may know this kind: retry rather than discard.
        None => retry(format!(
            "no handler for kind {:?} in this worker (version {})",
            job.kind,
            crate::VERSION
        )),
        Some(handler) => {
            let run = std::panic::AssertUnwindSafe(handler.run(job)).catch_unwind();
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(Ok(result))) => Outcome::Completed(result),
                Ok(Ok(Err(JobError::Retry(error)))) => retry(error),
                Ok(Ok(Err(JobError::Permanent(error)))) => Outcome::Failed {
                    error,
                    decision: Decision::Discard,
                },
                Ok(Err(_panic)) => retry("the job's handler panicked".to_owned()),
                Err(_elapsed) => retry(format!("timed out after {timeout:?}")),
            }
        }
    };
    if let Outcome::Failed { error, decision } = &outcome {
        tracing::warn!(error = %error, ?decision, "job attempt failed");
    }
    outcome
}

async fn complete_loop(
    pool: PgPool,
    registry: Arc<Registry>,
    mut done: mpsc::UnboundedReceiver<Finished>,
    stats: Arc<ExecutorStats>,
    outage: Arc<Outage>,
) {
    let mut batch = Vec::new();
    while let Some(first) = done.recv().await {
        batch.push(first);
        while batch.len() < MAX_FINISH_BATCH {
            match done.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        write_outcomes(&pool, &registry, &batch, &stats, &outage).await;
        batch.clear();
    }
}

/// Writes a batch, retrying through database outages. A batch that fails for another
/// reason is written job by job, so that one bad result cannot hold the others back.
async fn write_outcomes(
    pool: &PgPool,
    registry: &Registry,
    batch: &[Finished],
    stats: &ExecutorStats,
    outage: &Outage,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        let started = Instant::now();
        let written = finish(pool, registry, batch, None).await;
        stats
            .finish_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match written {
            Ok(report) => {
                outage.ok();
                stats.finishes.fetch_add(1, Ordering::Relaxed);
                stats.completed.fetch_add(report.completed as u64, Ordering::Relaxed);
                stats.retried.fetch_add(report.retried as u64, Ordering::Relaxed);
                stats.discarded.fetch_add(report.discarded as u64, Ordering::Relaxed);
                stats.lost.fetch_add(report.lost as u64, Ordering::Relaxed);
                if report.lost > 0 {
                    tracing::warn!(
                        jobs.lost = report.lost,
                        "outcomes not recorded: these jobs' leases had been rescued"
                    );
                }
                return;
            }
            Err(e) if e.is_connection_error() => {
                outage.failed(&e);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) if batch.len() > 1 => {
                tracing::error!(error = %e, source = %e.source, "recording a batch failed; recording its jobs one by one");
                for one in batch {
                    Box::pin(write_outcomes(pool, registry, std::slice::from_ref(one), stats, outage)).await;
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, source = %e.source, job.id = batch[0].id, "recording a job's outcome failed; it will run again after its lease expires");
                return;
            }
        }
    }
}

async fn heartbeat_loop(pool: PgPool, id: Uuid, config: ExecutorConfig, outage: Arc<Outage>, stop: CancellationToken) {
    loop {
        if sleep_or_cancel(config.heartbeat, &stop).await {
            return;
        }
        match heartbeat(&pool, id, config.lease).await {
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
