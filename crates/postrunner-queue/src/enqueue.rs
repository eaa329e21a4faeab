//! Enqueueing jobs from Rust (applications enqueue mail through `postrunner.outbox`).

use chrono::{DateTime, Utc};

use super::{JobId, QueueError};

use postrunner_schema::statements;

/// A job to insert. `Default` gives priority 0, run now, no unique key, 4 attempts.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    pub kind: String,
    pub args: serde_json::Value,
    pub priority: i16,
    pub run_at: Option<DateTime<Utc>>,
    pub unique_key: Option<String>,
    pub max_attempts: Option<i32>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, args: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            args,
            ..Self::default()
        }
    }
}

/// Inserts `job`; returns its id, or `None` when a live job with the same unique key
/// already exists.
///
/// # Errors
/// [`QueueError`] when the insert fails (for example a kind that breaks the naming CHECK).
pub async fn enqueue<'c>(
    db: impl sqlx::Acquire<'c, Database = sqlx::Postgres> + Send,
    job: &NewJob,
) -> Result<Option<JobId>, QueueError> {
    let args = if job.args.is_null() {
        serde_json::json!({})
    } else {
        job.args.clone()
    };
    statements::queue::enqueue(
        &job.kind,
        args,
        job.priority,
        job.run_at,
        job.unique_key.as_deref(),
        job.max_attempts,
    )
    .scalar()
    .fetch_optional(db)
    .await
    .map_err(QueueError::wrap("enqueue"))
}
