//! The job queue: one engine for every kind of work (email sends and postrunner's own
//! periodic tasks), in one table, `postrunner.jobs`. It knows no kind by name: what a
//! kind needs from it, a [`handler::Handler`] declares.
//!
//! - [`claim`]: take a batch of runnable jobs with `FOR UPDATE SKIP LOCKED` and a lease.
//! - [`enqueue`]: insert jobs from Rust (applications use SQL).
//! - [`finish`]: complete, fail (retry or discard) and release batches, each guarded by
//!   the lease token of the claim.
//! - [`leases`]: a worker's own account of the leases it holds and their stage.
//! - [`heartbeat`]: heartbeats that extend leases, and rescue of expired ones.
//! - [`promote`]: move scheduled and retryable jobs whose time has come to `available`.
//! - [`handler`]: what a kind of job does, and the registry of kinds.
//! - [`retry`]: the backoff schedule and the give-up rule (pure).
//! - [`wake`]: LISTEN/NOTIFY wake-ups with a polling fallback.
//! - [`executor`]: the loop that ties these together for a worker process.
//! - [`routing`]: the routed claim of email jobs (the rules are SQL) and the wait for a
//!   gated lane.
//! - [`metrics`]: the queue's counters, added to a process's registry.
//! - [`noop`]: the `noop` kind, for benchmarks, tests and checking a deployment.
//! - `testing` (feature `testing`): helpers for the tests of anything that runs the queue.
//!
//! States and transitions are documented in `migrations/V2__queue.sql` (the schema crate)
//! and `docs/state_machine.md`. README.md is this crate's map; tests/maps.rs checks it.

pub mod claim;
pub mod enqueue;
pub mod executor;
pub mod finish;
pub mod handler;
pub mod heartbeat;
pub mod leases;
pub mod metrics;
pub mod noop;
pub mod promote;
pub mod retry;
pub mod routing;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wake;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Primary key of `postrunner.jobs`.
pub type JobId = i64;

/// A job's state, as stored in `postrunner.jobs.state` (`postrunner.job_state`, in the
/// same order: tests/queue.rs, job_state_mirrors_the_database_enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "postrunner.job_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Scheduled,
    Available,
    Running,
    Retryable,
    /// The attempt's outcome is uncertain (the provider may have taken the message):
    /// neither retried nor failed until evidence or a wait decides.
    Held,
    Discarded,
    Cancelled,
}

/// A job this worker holds a lease on.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: JobId,
    pub kind: String,
    pub args: serde_json::Value,
    /// This attempt's number, starting at 1.
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    /// Claimed through a lane (an email message, routed: its sender address and
    /// reservation are in `args`) rather than from the generic queue.
    #[sqlx(default)]
    pub routed: bool,
    /// Proof of this claim: completing, failing or releasing requires it.
    #[sqlx(skip)]
    pub lease_token: Uuid,
}

/// A database operation of the queue failed.
#[derive(Debug, thiserror::Error)]
#[error("queue: {doing} failed")]
pub struct QueueError {
    pub doing: &'static str,
    #[source]
    pub source: sqlx::Error,
}

impl QueueError {
    pub(crate) fn wrap(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self { doing, source }
    }

    /// True when the database was unreachable (retry later) rather than the statement wrong.
    pub fn is_connection_error(&self) -> bool {
        postrunner_schema::is_connection_error(&self.source)
    }
}
