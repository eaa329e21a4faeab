//! The fetch loop and the job tasks it starts.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{ExecutorConfig, ExecutorStats, Outage};
use crate::queue::claim::{claim, ClaimRequest, Cursor};
use crate::queue::finish::{Finished, Outcome};
use crate::queue::handler::{Handler, JobError, Registry};
use crate::queue::held::{Held, Stage};
use crate::queue::lease::rescue_expired;
use crate::queue::promote::promote_due;
use crate::queue::retry::{Backoff, Decision};
use crate::queue::wake::sleep_or_cancel;
use crate::queue::ClaimedJob;

/// What the fetch loops of one executor share.
pub(super) struct Fetch {
    pub(super) pool: PgPool,
    pub(super) registry: Arc<Registry>,
    pub(super) config: ExecutorConfig,
    pub(super) id: Uuid,
    pub(super) stats: Arc<ExecutorStats>,
    pub(super) outage: Arc<Outage>,
    pub(super) wake: Arc<Notify>,
    /// Claim budget: jobs held (running or waiting to run) by this process.
    pub(super) budget: Arc<Semaphore>,
    /// Run slots: handlers running at once.
    pub(super) slots: Arc<Semaphore>,
    pub(super) held: Arc<Held>,
    pub(super) tasks: Mutex<JoinSet<()>>,
    /// Outcomes for the completer, each with the claim-budget permit of its job: the
    /// budget returns only once the outcome is written, so a completer that falls behind
    /// slows the claims down instead of letting claimed jobs pile up.
    pub(super) done: mpsc::UnboundedSender<(Finished, OwnedSemaphorePermit)>,
}

impl Fetch {
    /// Claims and starts jobs until `shutdown`. Each loop keeps its own cursor.
    pub(super) async fn fetch_loop(&self, shutdown: &CancellationToken) {
        let mut last_upkeep = Instant::now() - self.config.poll_interval;
        let mut error_delay = Duration::from_millis(50);
        let mut cursor: Option<Cursor> = None;
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                permit = self.budget.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let mut permits = vec![first];
            while let Ok(p) = self.budget.clone().try_acquire_owned() {
                permits.push(p);
            }

            let mut next_due = None;
            if last_upkeep.elapsed() >= self.config.poll_interval {
                last_upkeep = Instant::now();
                next_due = self.upkeep().await;
                // Promoted and rescued jobs may sort before the cursor.
                cursor = None;
            }
            // New jobs arrived (they may sort before the cursor): claim from the start.
            if self.wake.notified().now_or_never().is_some() {
                cursor = None;
            }
            if shutdown.is_cancelled() {
                return;
            }

            let limit = permits.len();
            let request = ClaimRequest {
                worker: self.id,
                limit: limit as i64,
                lease: self.config.lease,
                now: None,
                after: cursor,
            };
            let started = Instant::now();
            let claimed = claim(&self.pool, request).await;
            self.stats
                .claim_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            let jobs = match claimed {
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
            let generic = jobs.iter().filter(|job| !job.routed).count();
            cursor = if generic == limit { Cursor::last_of(&jobs) } else { None };
            self.stats.claimed.fetch_add(claimed as u64, Ordering::Relaxed);
            self.stats.claims.fetch_add(u64::from(claimed > 0), Ordering::Relaxed);
            self.start(jobs, &mut permits, shutdown);
            drop(permits);
            if claimed > 0 || had_cursor {
                continue;
            }

            // Nothing to run: sleep until notified, the poll interval, the next due job,
            // or the moment a gated lane may send again. A lane with messages that is
            // open now was busy in another claim: try again shortly.
            let mut nap = self.config.poll_interval;
            if let Some(due) = next_due {
                let until_due = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                nap = nap.min(until_due.max(Duration::from_millis(5)));
            }
            match crate::routing::next_ready(&self.pool, None).await {
                Ok(Some(ready)) => {
                    let until_ready = (ready - chrono::Utc::now()).to_std().unwrap_or_default();
                    nap = nap.min(until_ready.max(Duration::from_millis(10)));
                }
                Ok(None) => {}
                Err(source) => self.outage.failed(&crate::queue::QueueError {
                    doing: "read when lanes may send",
                    source,
                }),
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// Once per poll interval: promote due scheduled and retryable jobs, and rescue
    /// expired leases. Rescue also runs as a periodic task; doing it here too means a
    /// dead worker's jobs (even a stuck rescue job) come back as long as any worker
    /// lives. Returns when the next waiting job is due.
    async fn upkeep(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let mut next_due = None;
        match promote_due(&self.pool, 10_000, None).await {
            Ok(p) => {
                self.outage.ok();
                next_due = p.next_due;
            }
            Err(e) => self.outage.failed(&e),
        }
        match rescue_expired(&self.pool, None).await {
            Ok(r) if r.requeued + r.discarded > 0 => {
                tracing::warn!(
                    jobs.requeued = r.requeued,
                    jobs.discarded = r.discarded,
                    "rescued jobs of lost workers"
                );
            }
            Ok(_) => {}
            Err(e) => self.outage.failed(&e),
        }
        next_due
    }

    /// Starts one task per claimed job, each holding one claim permit until its handler
    /// returns.
    fn start(&self, jobs: Vec<ClaimedJob>, permits: &mut Vec<OwnedSemaphorePermit>, shutdown: &CancellationToken) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        while tasks.try_join_next().is_some() {}
        for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
            let lease = (job.id, job.lease_token);
            self.held.insert(lease);
            let runner = JobRun {
                handler: self.registry.get(&job.kind).cloned(),
                timeout: self.config.job_timeout,
                backoff: self.config.backoff.clone(),
                done: self.done.clone(),
                held: self.held.clone(),
            };
            // A handler fills in `provider` and `address` (email sends) once it knows them.
            let span = tracing::info_span!(
                "job",
                job.id = job.id,
                job.kind = %job.kind,
                job.attempt = job.attempts,
                provider = tracing::field::Empty,
                address = tracing::field::Empty,
            );
            let (slots, shutdown) = (self.slots.clone(), shutdown.clone());
            tasks.spawn(
                async move {
                    // A prefetched job still waiting for a slot at shutdown does not
                    // start: it stays `Waiting` and is released at once.
                    let slot = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => None,
                        slot = slots.acquire_owned() => Some(slot.expect("semaphore is never closed")),
                    };
                    if slot.is_some() && !shutdown.is_cancelled() {
                        runner.held.set(lease, Stage::Running);
                        runner.run(job, permit).await;
                    }
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
    done: mpsc::UnboundedSender<(Finished, OwnedSemaphorePermit)>,
    held: Arc<Held>,
}

impl JobRun {
    async fn run(self, job: ClaimedJob, permit: OwnedSemaphorePermit) {
        let outcome = attempt(self.handler.as_deref(), &job, self.timeout, &self.backoff).await;
        let lease = (job.id, job.lease_token);
        let finished = Finished {
            id: job.id,
            lease_token: job.lease_token,
            kind: job.kind,
            outcome,
        };
        // Hand-over and the stage change happen together, with no await in between, so
        // a shutdown that aborts this task either finds the job `Running` (and releases
        // it) or `Finishing` (and leaves it to the completer): never both, never neither.
        self.held
            .finish_with(lease, || self.done.send((finished, permit)).is_ok());
    }
}

/// Runs one attempt of `job` and classifies how it ended: handler errors, panics and
/// timeouts all become failures with a retry decision, so no job is ever left behind.
pub(super) async fn attempt(
    handler: Option<&dyn Handler>,
    job: &ClaimedJob,
    timeout: Duration,
    backoff: &Backoff,
) -> Outcome {
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
                Ok(Ok(Err(JobError::Reroute(error)))) => Outcome::Failed {
                    error,
                    decision: Decision::Reroute,
                },
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
