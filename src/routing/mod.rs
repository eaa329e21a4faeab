//! Routing: which sender address and provider each message goes out from, and when.
//!
//! The rules live in PostgreSQL, where they hold across every worker replica at once:
//! `migrations/V7__routing.sql` (lanes, usage counters, the ledger, warm-up and window
//! helpers) and `migrations/V8__route.sql` (the routed claim, `postrunner.route_lane`,
//! and `postrunner.close_attempt`). The claim (sql/queue/claim.sql) routes email jobs
//! as it takes them, so Rust only:
//! - sleeps until a gated lane may send again ([`next_ready`]), instead of polling;
//! - reports on routing (`report_*` views, `sql/reports.sql`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

const NEXT_READY: &str = include_str!("../../sql/routing/next_ready.sql");

/// When a claim could next route a message: `None` when no message is waiting in any
/// lane, a past instant when one is waiting in an open lane (busy in another claim).
///
/// # Errors
/// The database could not be reached.
pub async fn next_ready(pool: &PgPool, now: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(NEXT_READY).bind(now).fetch_one(pool).await
}
