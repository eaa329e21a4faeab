//! Claiming: take up to N runnable jobs at once, in priority order, without waiting for
//! other claimers (SKIP LOCKED), and commit before running them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{ClaimedJob, QueueError};

const CLAIM: &str = include_str!("../../sql/queue/claim.sql");

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

/// Claims up to `request.limit` jobs. All jobs of one claim share a fresh lease token.
///
/// # Errors
/// [`QueueError`] when the statement fails (typically: the database is unreachable).
#[tracing::instrument(name = "queue.claim", skip_all, fields(limit = request.limit))]
pub async fn claim(pool: &PgPool, request: ClaimRequest) -> Result<Vec<ClaimedJob>, QueueError> {
    let token = Uuid::new_v4();
    let after = request.after.unwrap_or(Cursor::START);
    // '-infinity' rather than chrono's minimum, which PostgreSQL cannot represent.
    let after_run_at = (after != Cursor::START).then_some(after.run_at);
    let mut jobs: Vec<ClaimedJob> = sqlx::query_as(CLAIM)
        .bind(request.limit)
        .bind(request.worker)
        .bind(token)
        .bind(request.lease)
        .bind(request.now)
        .bind(after.neg_priority)
        .bind(after_run_at)
        .bind(after.id)
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
