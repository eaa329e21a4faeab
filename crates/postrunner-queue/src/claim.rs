//! Claiming: take up to N runnable jobs at once, in priority order, without waiting for
//! other claimers (SKIP LOCKED), and commit before running them.
//!
//! Two statements, each its own transaction: postrunner's own jobs (the generic queue),
//! then email jobs, routed to a sender address as they are claimed
//! ([`crate::routing::claim_messages`]). They are separate so that an error in routing
//! (a broken configuration, a bug) can never stop lease rescue, probes or cleanup.
//!
//! Each statement leases its jobs under a token the worker chose beforehand. When the
//! connection fails during a claim, the claim may have committed without its reply
//! reaching the worker: [`LostClaims`] keeps that token, and the worker gives those
//! jobs back, unstarted, once the database answers again (tests/database_failover.rs).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{ClaimedJob, QueueError};

use postrunner_schema::statements;

/// Who claims, for how long, and how many.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest {
    pub worker: Uuid,
    pub limit: i64,
    pub lease: Duration,
    /// "Now" for tests; `None` means the database clock.
    pub now: Option<DateTime<Utc>>,
    /// Claim only jobs after this position in claim order; `None` claims from the start.
    pub after: Option<Cursor>,
    /// The claimer signs one-click unsubscribe links, so it may route a bulk client's
    /// messages (sql/definitions/320_routing_claim_messages.sql).
    pub signs_unsubscribe: bool,
}

impl ClaimRequest {
    /// A claim from the start of the queue.
    pub fn new(worker: Uuid, limit: i64, lease: Duration) -> Self {
        Self {
            worker,
            limit,
            lease,
            now: None,
            after: None,
            signs_unsubscribe: false,
        }
    }
}

/// A position in claim order: higher priority first, then earlier `run_at`, then id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The negated priority, so that the whole key sorts ascending like the index.
    neg_priority: i16,
    run_at: DateTime<Utc>,
    id: i64,
}

impl Cursor {
    const START: Cursor = Cursor {
        neg_priority: i16::MIN,
        run_at: DateTime::<Utc>::MIN_UTC,
        id: i64::MIN,
    };

    /// The position of `job`.
    pub fn of(job: &ClaimedJob) -> Self {
        Self {
            neg_priority: -job.priority,
            run_at: job.run_at,
            id: job.id,
        }
    }

    /// The last position among the generic (not routed) `jobs`: where a following
    /// claim of the generic queue may start. Routed jobs come from lanes, not from the
    /// generic queue's order.
    pub fn last_of(jobs: &[ClaimedJob]) -> Option<Self> {
        jobs.iter().filter(|job| !job.routed).map(Self::of).max()
    }
}

/// Claims up to `request.limit` jobs: postrunner's own first, then routed email jobs
/// with what is left of the limit. The jobs of each statement share a fresh lease token.
///
/// # Errors
/// [`QueueError`] when either statement fails (see [`claim_both`] for a claim that keeps
/// the generic jobs when routing fails).
pub async fn claim(pool: &PgPool, request: ClaimRequest) -> Result<Vec<ClaimedJob>, QueueError> {
    let both = claim_both(pool, request, Sources::BOTH, &LostClaims::default()).await?;
    both.routing.map(|()| both.jobs)
}

/// Which of the two claims to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sources {
    /// postrunner's own jobs (the generic queue).
    pub generic: bool,
    /// Email jobs, routed.
    pub routed: bool,
}

impl Sources {
    pub const BOTH: Sources = Sources {
        generic: true,
        routed: true,
    };
}

/// What [`claim_both`] took, and how the routed claim went.
#[derive(Debug)]
pub struct Claimed {
    /// In claim order: the generic jobs, then the routed ones.
    pub jobs: Vec<ClaimedJob>,
    /// The routed claim's failure, if it failed: the generic jobs are claimed anyway.
    pub routing: Result<(), QueueError>,
}

/// Claims postrunner's own jobs, then routed email jobs with what is left of the limit
/// (each only when `sources` says so). A failure of the routed claim is returned beside
/// the jobs the generic claim took, which the caller runs regardless. A claim cut off
/// by a lost connection leaves its token in `lost`.
///
/// # Errors
/// [`QueueError`] when the generic claim fails.
#[tracing::instrument(name = "queue.claim", skip_all, fields(limit = request.limit))]
pub async fn claim_both(
    pool: &PgPool,
    request: ClaimRequest,
    sources: Sources,
    lost: &LostClaims,
) -> Result<Claimed, QueueError> {
    use crate::metrics::claimed;
    let mut jobs = if sources.generic {
        let started = std::time::Instant::now();
        let token = Uuid::new_v4();
        let jobs = claim_jobs(pool, &request, token)
            .await
            .inspect_err(|e| lost.note(token, e))?;
        claimed("generic", jobs.len(), started.elapsed());
        jobs
    } else {
        Vec::new()
    };
    let left = request.limit - jobs.len() as i64;
    let mut routing = Ok(());
    if sources.routed && left > 0 {
        let started = std::time::Instant::now();
        // Its own token: were its reply lost, the generic jobs above still run.
        let token = Uuid::new_v4();
        match crate::routing::claim_messages(pool, &request, left, token).await {
            Ok(routed) => {
                claimed("routed", routed.len(), started.elapsed());
                jobs.extend(routed);
            }
            Err(e) => {
                lost.note(token, &e);
                routing = Err(e);
            }
        }
    }
    Ok(Claimed { jobs, routing })
}

/// The lease tokens of claims that may have committed although their reply was lost
/// (the connection failed during the claim). Their jobs, if any, are leased to this
/// worker, which never saw them: left alone they would wait out their lease and, being
/// email, be held as uncertain although nothing was sent.
#[derive(Debug, Default)]
pub struct LostClaims(Mutex<Vec<Uuid>>);

impl LostClaims {
    /// Keeps `token` when `error` left the claim's outcome unknown. Any other error
    /// rolled the claim back.
    fn note(&self, token: Uuid, error: &QueueError) {
        if error.is_connection_error() {
            self.tokens().push(token);
        }
    }

    /// Gives back the jobs of every lost claim, unstarted (the attempt not counted, the
    /// reservation's capacity returned). Returns how many there were. While the database
    /// is still unreachable the tokens are kept for the next call.
    ///
    /// # Errors
    /// [`QueueError`] when the statement fails.
    pub async fn release(&self, pool: &PgPool) -> Result<i64, QueueError> {
        let tokens = std::mem::take(&mut *self.tokens());
        if tokens.is_empty() {
            return Ok(0);
        }
        match statements::queue::release_lost_claims(&tokens)
            .scalar()
            .fetch_one(pool)
            .await
        {
            Ok(released) => {
                if released > 0 {
                    tracing::warn!(
                        jobs.released = released,
                        "gave back jobs of a claim whose reply was lost with the connection; none had started"
                    );
                }
                Ok(released)
            }
            Err(source) => {
                self.tokens().extend(tokens);
                Err(QueueError {
                    doing: "give back the jobs of lost claims",
                    source,
                })
            }
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Vec<Uuid>> {
        self.0.lock().expect("lost claims lock")
    }
}

/// The generic claim (sql/statements/queue/claim.sql), in claim order.
async fn claim_jobs(pool: &PgPool, request: &ClaimRequest, token: Uuid) -> Result<Vec<ClaimedJob>, QueueError> {
    let after = request.after.unwrap_or(Cursor::START);
    // '-infinity' rather than chrono's minimum, which PostgreSQL cannot represent.
    let after_run_at = (after != Cursor::START).then_some(after.run_at);
    let mut jobs: Vec<ClaimedJob> = statements::queue::claim(
        request.limit,
        request.worker,
        token,
        request.lease,
        request.now,
        after.neg_priority,
        after_run_at,
        after.id,
    )
    .rows()
    .fetch_all(pool)
    .await
    .map_err(QueueError::wrap("claim"))?;
    for job in &mut jobs {
        job.lease_token = token;
    }
    // RETURNING has no order: start the batch in claim order.
    jobs.sort_by_key(Cursor::of);
    Ok(jobs)
}
