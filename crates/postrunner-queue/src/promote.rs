//! Promotion: scheduled and retryable jobs whose `run_at` has come become `available`.
//! Idle workers run it on each poll, so delayed jobs and retries need no other process.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::QueueError;

use postrunner_schema::statements;

/// What one promotion pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promoted {
    pub promoted: i64,
    /// When the next waiting job is due, if any.
    pub next_due: Option<DateTime<Utc>>,
}

/// Promotes up to `limit` due jobs.
///
/// # Errors
/// [`QueueError`] when the database cannot be reached.
pub async fn promote_due(pool: &PgPool, limit: i64, now: Option<DateTime<Utc>>) -> Result<Promoted, QueueError> {
    let (promoted, next_due): (i64, Option<DateTime<Utc>>) = statements::queue::promote(limit, now)
        .rows()
        .fetch_one(pool)
        .await
        .map_err(QueueError::wrap("promote due jobs"))?;
    Ok(Promoted { promoted, next_due })
}
