//! Routing: which sender address and provider each message goes out from, and when.
//!
//! The rules live in PostgreSQL, where they hold across every worker replica at once:
//! the schema in `migrations/` (lanes, usage counters, the ledger), the functions in
//! `sql/definitions/*_routing_*.sql` (`claim_messages.sql` and `route_lane.sql` with its steps, the limits,
//! the calendar, reservations). The routed claim routes email jobs as it takes them,
//! so Rust only:
//! - claims ([`claim_messages`]) and sleeps until a gated lane may send again
//!   ([`next_ready`]), instead of polling;
//! - reports on routing (`report_*` views, `sql/reports.sql`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::claim::ClaimRequest;
use crate::{ClaimedJob, QueueError};

use postrunner_schema::statements;

/// The routed claim: up to `limit` email jobs for `request.worker` under `token`, each
/// with its sender address and reservation in `args`.
///
/// # Errors
/// [`QueueError`] when the statement fails.
pub async fn claim_messages(
    pool: &PgPool,
    request: &ClaimRequest,
    limit: i64,
    token: Uuid,
) -> Result<Vec<ClaimedJob>, QueueError> {
    let mut jobs: Vec<ClaimedJob> = statements::routing::claim(
        limit,
        request.worker,
        token,
        request.lease,
        request.now,
        request.signs_unsubscribe,
    )
    .rows()
    .fetch_all(pool)
    .await
    .map_err(QueueError::wrap("routed claim"))?;
    for job in &mut jobs {
        job.lease_token = token;
        job.routed = true;
    }
    Ok(jobs)
}

/// How long until a claim could next route a message, by the database's clock (the
/// worker's own may be off): `None` when no message is waiting in any lane this claimer
/// may serve (`signs_unsubscribe`: see [`ClaimRequest`]), zero when one is waiting in an
/// open lane (busy in another claim).
///
/// # Errors
/// The database could not be reached.
pub async fn next_ready(
    pool: &PgPool,
    now: Option<DateTime<Utc>>,
    signs_unsubscribe: bool,
) -> Result<Option<Duration>, sqlx::Error> {
    let seconds: Option<f64> = statements::routing::next_ready(now, signs_unsubscribe)
        .scalar()
        .fetch_one(pool)
        .await?;
    Ok(seconds.map(wait))
}

/// A wait in seconds as the database reported it: zero when it is already past.
pub(crate) fn wait(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}
