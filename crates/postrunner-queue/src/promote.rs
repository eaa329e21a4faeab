//! Promotion: scheduled and retryable jobs whose `run_at` has come become `available`.
//! Idle workers run it on each poll, so delayed jobs and retries need no other process.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::QueueError;

use postrunner_schema::statements;

/// What one promotion pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promoted {
    pub promoted: i64,
    /// How long until the next waiting job is due, if any, by the database's clock.
    pub next_due_in: Option<Duration>,
}

/// Promotes up to `limit` due jobs.
///
/// # Errors
/// [`QueueError`] when the database cannot be reached.
pub async fn promote_due(pool: &PgPool, limit: i64, now: Option<DateTime<Utc>>) -> Result<Promoted, QueueError> {
    let (promoted, next_due_in): (i64, Option<f64>) = statements::queue::promote(limit, now)
        .rows()
        .fetch_one(pool)
        .await
        .map_err(QueueError::wrap("promote due jobs"))?;
    Ok(Promoted {
        promoted,
        next_due_in: next_due_in.map(crate::routing::wait),
    })
}
