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
}

/// Claims up to `request.limit` jobs. All jobs of one claim share a fresh lease token.
///
/// # Errors
/// [`QueueError`] when the statement fails (typically: the database is unreachable).
#[tracing::instrument(name = "queue.claim", skip_all, fields(limit = request.limit))]
pub async fn claim(pool: &PgPool, request: ClaimRequest) -> Result<Vec<ClaimedJob>, QueueError> {
    let token = Uuid::new_v4();
    let mut jobs: Vec<ClaimedJob> = sqlx::query_as(CLAIM)
        .bind(request.limit)
        .bind(request.worker)
        .bind(token)
        .bind(request.lease)
        .bind(request.now)
        .fetch_all(pool)
        .await
        .map_err(QueueError::wrap("claim"))?;
    for job in &mut jobs {
        job.lease_token = token;
    }
    Ok(jobs)
}
