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
use crate::claim::{claim_both, ClaimRequest, Claimed, Cursor, LostClaims, Sources};
use crate::finish::{Finished, Outcome};
use crate::handler::{Handler, JobError, Registry};
use crate::heartbeat::rescue_expired;
use crate::leases::{Leases, Stage};
use crate::promote::promote_due;
use crate::retry::{Backoff, Decision};
use crate::wake::sleep_or_cancel;
use crate::ClaimedJob;

/// What the fetch loops of one executor share.
pub(super) struct Fetch {
    pub(super) pool: PgPool,
    pub(super) registry: Arc<Registry>,
    pub(super) config: ExecutorConfig,
    pub(super) id: Uuid,
    pub(super) stats: Arc<ExecutorStats>,
    pub(super) outage: Arc<Outage>,
    /// Failures of the routed claim, logged apart from the database's: postrunner's own
    /// jobs keep being claimed while routing fails.
    pub(super) routing_outage: Outage,
    pub(super) wake: Arc<Notify>,
    /// Claim budget: jobs held (running or waiting to run) by this process.
    pub(super) budget: Arc<Semaphore>,
    /// Run slots: handlers running at once.
    pub(super) slots: Arc<Semaphore>,
    pub(super) leases: Arc<Leases>,
    pub(super) tasks: Mutex<JoinSet<()>>,
    /// The last started job's "I have my slot" signal: each job waits for the one
    /// claimed before it, so jobs take run slots in claim order (priority, then age),
    /// not in whatever order their tasks first run.
    pub(super) turn: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// When a fetcher last ran the upkeep (promotion, rescue).
    pub(super) last_upkeep: Mutex<Option<Instant>>,
    pub(super) lanes: Mutex<Lanes>,
    /// The generic queue had nothing runnable at the last claim from its start, and
    /// nothing woke the fetchers since (an insert's NOTIFY, a poll interval's upkeep).
    pub(super) generic_empty: std::sync::atomic::AtomicBool,
    /// Outcomes for the completer, each with the claim-budget permit of its job: the
    /// budget returns only once the outcome is written, so a completer that falls behind
    /// slows the claims down instead of letting claimed jobs pile up.
    pub(super) done: mpsc::UnboundedSender<(Finished, OwnedSemaphorePermit)>,
    /// Claims whose reply was lost with the connection: their jobs are given back before
    /// the next claim.
    pub(super) lost: Arc<LostClaims>,
}

impl Fetch {
    /// Claims and starts jobs until `shutdown`. Each loop keeps its own cursor, and its
    /// own idea of when a routed claim can next route anything.
    pub(super) async fn fetch_loop(&self, shutdown: &CancellationToken) {
        let mut error_delay = Duration::from_millis(50);
        let mut cursor: Option<Cursor> = None;
        loop {
            let Some(mut permits) = self.free_slots(shutdown).await else {
                return;
            };

            let mut next_due = None;
            if self.upkeep_due() {
                next_due = self.upkeep().await;
                // Promoted and rescued jobs may sort before the cursor, and the poll
                // interval also covers a missed notification that a lane opened.
                cursor = None;
                self.something_may_have_arrived();
            }
            // New jobs arrived (they may sort before the cursor): claim from the start.
            if self.wake.notified().now_or_never().is_some() {
                cursor = None;
                self.something_may_have_arrived();
            }
            if shutdown.is_cancelled() {
                return;
            }

            // Before claiming more: what a claim cut off by the connection may have leased.
            if let Err(e) = self.lost.release(&self.pool).await {
                self.outage.failed(&e);
            }

            let limit = permits.len();
            let routing = self.lanes().may_route();
            // The generic queue was found empty (from its start) and nothing has been
            // inserted, promoted or rescued since: no need to ask again until then.
            let generic = cursor.is_some() || !self.generic_empty.load(Ordering::Relaxed);
            let sources = Sources {
                generic,
                routed: routing,
            };
            let jobs = match self.claim(limit, cursor, sources).await {
                Ok(claimed) => {
                    error_delay = Duration::from_millis(50);
                    self.routing_went(&claimed.routing);
                    claimed.jobs
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
            let had_cursor = cursor.is_some();
            cursor = self.after_claim(&jobs, limit, generic, had_cursor);
            self.start(jobs, &mut permits, shutdown);
            drop(permits);
            if claimed > 0 {
                self.lanes().claimed();
                continue;
            }
            if had_cursor {
                continue;
            }

            let nap = self.nap(next_due, routing).await;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => self.something_may_have_arrived(),
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// One claim of up to `limit` jobs from `sources`, after `after`; its time goes to
    /// the stats.
    async fn claim(&self, limit: usize, after: Option<Cursor>, sources: Sources) -> Result<Claimed, crate::QueueError> {
        let request = ClaimRequest {
            worker: self.id,
            limit: limit as i64,
            lease: self.config.lease,
            now: None,
            after,
            signs_unsubscribe: self.config.signs_unsubscribe,
        };
        let started = Instant::now();
        let claimed = claim_both(&self.pool, request, sources, &self.lost).await;
        self.stats
            .claim_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        claimed
    }

    /// Records a claim (the stats, whether the generic queue was found empty) and says
    /// where the next one starts. A full batch: carry on from its last job. A short one:
    /// the queue past the cursor is exhausted (or contended), so the next claim starts
    /// from the top, at once if this one had a cursor.
    fn after_claim(&self, jobs: &[ClaimedJob], limit: usize, generic: bool, had_cursor: bool) -> Option<Cursor> {
        let own = jobs.iter().filter(|job| !job.routed).count();
        if generic && !had_cursor && own == 0 {
            self.generic_empty.store(true, Ordering::Relaxed);
        }
        self.stats.claimed.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        self.stats
            .claims
            .fetch_add(u64::from(!jobs.is_empty()), Ordering::Relaxed);
        if own == limit {
            Cursor::last_of(jobs)
        } else {
            None
        }
    }

    /// Waits for one free run slot, then takes every other free one; None on shutdown.
    async fn free_slots(&self, shutdown: &CancellationToken) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            permit = self.budget.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let mut permits = vec![first];
        while let Ok(p) = self.budget.clone().try_acquire_owned() {
            permits.push(p);
        }
        Some(permits)
    }

    /// Jobs may have been inserted, promoted or rescued, or a lane opened: the next
    /// claim asks both queues again.
    fn something_may_have_arrived(&self) {
        self.lanes().maybe_ready();
        self.generic_empty.store(false, Ordering::Relaxed);
    }

    /// How the routed half of a claim went, for the outage logs and the lanes' pace.
    fn routing_went(&self, routing: &Result<(), crate::QueueError>) {
        match routing {
            Ok(()) => {
                self.outage.ok();
                self.routing_outage.ok();
            }
            // The database went away (or is not back yet): one outage, not two.
            Err(e) if e.is_connection_error() => self.outage.failed(e),
            Err(e) => {
                // postrunner's own jobs go on; routing is tried again later.
                self.outage.ok();
                self.routing_outage.failed(e);
                self.lanes().not_before(Instant::now() + self.config.poll_interval);
            }
        }
    }

    /// How long to sleep with nothing to run: until notified, the poll interval, the
    /// next due job, or the moment a gated lane may send again.
    async fn nap(&self, next_due_in: Option<Duration>, routing: bool) -> Duration {
        let mut nap = self.config.poll_interval;
        if let Some(until_due) = next_due_in {
            nap = nap.min(until_due.max(Duration::from_millis(5)));
        }
        if !routing {
            // Lanes are known to be gated until then (or to have nothing waiting).
            nap = nap.min(self.lanes().until_ready());
        } else {
            match crate::routing::next_ready(&self.pool, None, self.config.signs_unsubscribe).await {
                Ok(ready) => nap = nap.min(self.lanes().sleep_until(ready, self.config.poll_interval)),
                Err(source) => self.outage.failed(&crate::QueueError {
                    doing: "read when lanes may send",
                    source,
                }),
            }
        }
        nap
    }

    /// What the fetchers know about when a routed claim can next route anything
    /// (shared: a notification either of them receives counts for both).
    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().expect("lanes lock")
    }

    /// Whether this fetcher should run the upkeep now: once per poll interval for the
    /// whole process, whichever fetcher comes first.
    fn upkeep_due(&self) -> bool {
        let mut last = self.last_upkeep.lock().expect("upkeep lock");
        match *last {
            Some(at) if at.elapsed() < self.config.poll_interval => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// Once per poll interval: promote due scheduled and retryable jobs, and rescue
    /// expired leases. Rescue also runs as a periodic task; doing it here too means a
    /// dead worker's jobs (even a stuck rescue job) come back as long as any worker
    /// lives. Returns how long until the next waiting job is due.
    async fn upkeep(&self) -> Option<Duration> {
        let mut next_due = None;
        match promote_due(&self.pool, 10_000, None).await {
            Ok(p) => {
                self.outage.ok();
                next_due = p.next_due_in;
            }
            Err(e) => self.outage.failed(&e),
        }
        match rescue_expired(&self.pool, None).await {
            Ok(r) if r.requeued + r.discarded + r.held > 0 => {
                tracing::warn!(
                    jobs.requeued = r.requeued,
                    jobs.discarded = r.discarded,
                    jobs.held = r.held,
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
        let mut turn = self.turn.lock().expect("turn lock");
        while tasks.try_join_next().is_some() {}
        for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
            let (my_turn_done, next_turn) = tokio::sync::oneshot::channel::<()>();
            let previous = turn.replace(next_turn);
            let lease = (job.id, job.lease_token);
            self.leases.insert(lease);
            let runner = JobRun {
                handler: self.registry.get(&job.kind).cloned(),
                timeout: self.config.job_timeout,
                backoff: self.config.backoff.clone(),
                done: self.done.clone(),
                leases: self.leases.clone(),
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
                    // After the job claimed before this one has its slot (or gave up:
                    // its sender is dropped either way); the semaphore then hands slots
                    // out in the order they were asked for (tests/resilience.rs).
                    if let Some(previous) = previous {
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => {}
                            _ = previous => {}
                        }
                    }
                    let slot = tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => None,
                        slot = slots.acquire_owned() => Some(slot.expect("semaphore is never closed")),
                    };
                    drop(my_turn_done);
                    if slot.is_some() && !shutdown.is_cancelled() {
                        runner.leases.set(lease, Stage::Running);
                        runner.run(job, permit).await;
                    }
                }
                .instrument(span),
            );
        }
    }
}

/// The fetch loops' idea of when a routed claim can next route anything, so that they
/// neither run a routed claim while every lane's gate is closed nor spin on a lane that
/// is open but has nothing they can route right now.
#[derive(Debug, Default)]
pub(super) struct Lanes {
    /// No routed claim before this (None: try now).
    not_before: Option<Instant>,
    /// How long to wait next when an open lane gave nothing: grows from 10 ms to the
    /// poll interval while it keeps giving nothing.
    idle: Option<Duration>,
}

impl Lanes {
    const FIRST_RETRY: Duration = Duration::from_millis(10);

    fn may_route(&self) -> bool {
        self.not_before.is_none_or(|t| Instant::now() >= t)
    }

    /// Something may have changed (a notification, a poll interval): try again.
    fn maybe_ready(&mut self) {
        self.not_before = None;
    }

    fn not_before(&mut self, at: Instant) {
        self.not_before = Some(at);
    }

    /// How long until a routed claim may route something, as last learned.
    fn until_ready(&self) -> Duration {
        self.not_before
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(Instant::now()))
    }

    fn claimed(&mut self) {
        self.idle = None;
    }

    /// How long to sleep given how long until lanes may next send (`next_ready`, by the
    /// database's clock): until the earliest gate; when a lane is open already but gave
    /// nothing (busy in another claim, or its messages held), a short retry that doubles
    /// while it keeps giving nothing, up to `poll`. No lane with messages: until notified
    /// or `poll`.
    fn sleep_until(&mut self, ready_in: Option<Duration>, poll: Duration) -> Duration {
        let Some(wait) = ready_in else {
            self.not_before = Some(Instant::now() + poll);
            return poll;
        };
        if wait.is_zero() {
            let retry = self.idle.map_or(Self::FIRST_RETRY, |d| (d * 2).min(poll)).min(poll);
            self.idle = Some(retry);
            self.not_before = None;
            retry
        } else {
            self.idle = None;
            self.not_before = Some(Instant::now() + wait);
            wait
        }
    }
}

/// Everything one job's task needs.
struct JobRun {
    handler: Option<Arc<dyn Handler>>,
    timeout: Duration,
    backoff: Backoff,
    done: mpsc::UnboundedSender<(Finished, OwnedSemaphorePermit)>,
    leases: Arc<Leases>,
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
        self.leases
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
            env!("CARGO_PKG_VERSION")
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
                Ok(Ok(Err(JobError::Uncertain(error)))) => Outcome::Failed {
                    error,
                    decision: Decision::Hold,
                },
                Ok(Err(_panic)) => retry("the job's handler panicked".to_owned()),
                // Cut off mid-attempt: a send may already have reached its provider.
                Err(_elapsed) if handler.interrupted_is_uncertain() => Outcome::Failed {
                    error: format!("timed out after {timeout:?}: the outcome is uncertain"),
                    decision: Decision::Hold,
                },
                Err(_elapsed) => retry(format!("timed out after {timeout:?}")),
            }
        }
    };
    use crate::metrics::{attempt_ended, AttemptEnd};
    match &outcome {
        Outcome::Completed(_) => attempt_ended(&job.kind, AttemptEnd::Completed),
        Outcome::Failed { error, decision } => {
            tracing::warn!(error = %error, ?decision, "job attempt failed");
            attempt_ended(
                &job.kind,
                match decision {
                    Decision::RetryIn(_) => AttemptEnd::Retried,
                    Decision::Discard => AttemptEnd::Failed,
                    Decision::Reroute => AttemptEnd::Rerouted,
                    Decision::Hold => AttemptEnd::Held,
                },
            );
        }
    }
    outcome
}
