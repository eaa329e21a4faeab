//! What a kind of job does: the [`Handler`] trait and the [`Registry`] of kinds.
//!
//! A handler runs a job (outside any transaction: it may call a provider for seconds)
//! and says how it went with a [`JobError`] class; retrying is decided by the queue,
//! uniformly for every kind. Its optional `record` writes the job's result in the same
//! transaction that completes the job, so a result is recorded exactly when the job's
//! completion is.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::PgConnection;

use super::{ClaimedJob, JobId};

/// How a job's attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// May succeed later: retried on the backoff schedule until attempts run out.
    #[error("{0}")]
    Retry(String),
    /// Can never succeed: the job is discarded at once, keeping this error.
    #[error("{0}")]
    Permanent(String),
    /// The attempt could not really start (for a send: its provider was unavailable):
    /// the job goes back to the queue at once without using an attempt, to be routed
    /// again. The handler bounds how often (see `email.send`).
    #[error("{0}")]
    Reroute(String),
    /// The attempt may have done its work without saying so (for a send: the provider
    /// may have taken the message before the connection dropped): the job is held,
    /// neither retried nor failed, until evidence or a wait decides
    /// (sql/definitions/340_outbox_uncertain.sql). Only `email.send` has such attempts.
    #[error("{0}")]
    Uncertain(String),
}

/// One kind of job.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt. `Ok(Some(value))` is passed to [`Handler::record`].
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError>;

    /// Whether an attempt cut off midway (its time ran out) may still have done its
    /// work: such a job is held like a [`JobError::Uncertain`] one instead of retried.
    fn interrupted_is_uncertain(&self) -> bool {
        false
    }

    /// Whether completing a job of this kind also writes its outbox message, a row
    /// applications may lock: such completions take that row without waiting and leave
    /// a busy one for a later batch (sql/statements/queue/complete_email.sql). Only
    /// `email.send` says yes; the queue knows no kind by name.
    fn completes_message(&self) -> bool {
        false
    }

    /// Records the results of completed jobs of this kind, inside the completing
    /// transaction (only jobs whose completion really happened are passed).
    async fn record(&self, _tx: &mut PgConnection, _results: &[(JobId, serde_json::Value)]) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// The kinds a process can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler for `kind`.
    pub fn register(&mut self, kind: impl Into<String>, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}
