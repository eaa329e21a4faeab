//! Leases: a claimed job belongs to its worker until `lease_expires_at`. The worker's
//! heartbeat pushes that forward for all its running jobs in one statement; when a worker
//! dies (SIGKILL, lost host, lost network) its heartbeats stop, the leases run out, and
//! the periodic rescue task returns the jobs to the queue within about one lease length.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::leases::Lease;
use super::QueueError;

use postrunner_schema::statements;

/// Refreshes worker `worker`'s process row and extends the leases of the jobs it still
/// `holds` to now + `lease`. Returns how many leases were extended.
///
/// # Errors
/// [`QueueError`] when the database cannot be reached.
pub async fn heartbeat(pool: &PgPool, worker: Uuid, lease: Duration, holds: &[Lease]) -> Result<u64, QueueError> {
    let (ids, tokens): (Vec<i64>, Vec<Uuid>) = holds.iter().copied().unzip();
    let result = statements::queue::heartbeat(worker, lease, &ids, &tokens)
        .execute(pool)
        .await
        .map_err(QueueError::wrap("heartbeat"))?;
    Ok(result.rows_affected())
}

/// What a rescue pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Rescued {
    /// Jobs made available to run again.
    pub requeued: i64,
    /// Jobs whose lost attempt was their last.
    pub discarded: i64,
    /// Email jobs whose send may have reached the provider: held until evidence or
    /// the uncertain wait decides (sql/definitions/340_outbox_uncertain.sql).
    pub held: i64,
}

/// Returns jobs with expired leases to the queue (`now`: `None` is the database clock).
///
/// # Errors
/// [`QueueError`] when the database cannot be reached.
pub async fn rescue_expired(pool: &PgPool, now: Option<DateTime<Utc>>) -> Result<Rescued, QueueError> {
    let (requeued, discarded, held, _notified): (i64, i64, i64, Option<bool>) =
        statements::queue::rescue_expired_leases(now)
            .rows()
            .fetch_one(pool)
            .await
            .map_err(QueueError::wrap("rescue expired leases"))?;
    Ok(Rescued {
        requeued,
        discarded,
        held,
    })
}
