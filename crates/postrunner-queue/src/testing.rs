//! Helpers for tests of anything that runs the queue (feature `testing`, off in the
//! binary's build): executors with short leases, a handler that records its runs, a
//! registry of one kind. The binary's tests use these too (tests/support/run.rs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::executor::{Executor, ExecutorConfig, ExecutorStats};
use crate::handler::{Handler, JobError, Registry};
use crate::{ClaimedJob, JobId};

/// Short leases and intervals, so tests of rescue and polling take seconds.
pub fn fast_config() -> ExecutorConfig {
    ExecutorConfig {
        concurrency: 8,
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(300),
        poll_interval: Duration::from_millis(200),
        grace: Duration::from_secs(2),
        ..ExecutorConfig::default()
    }
}

/// An executor whose `tick`/`drain` a test calls directly.
pub fn executor(pool: &PgPool, registry: Registry, config: ExecutorConfig) -> Executor {
    Executor::new(pool.clone(), registry, config, Uuid::new_v4())
}

/// An executor running in the background.
pub struct Running {
    pub stats: Arc<ExecutorStats>,
    pub id: Uuid,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// Starts an executor in the background.
pub fn spawn(pool: &PgPool, registry: Registry, config: ExecutorConfig) -> Running {
    let id = Uuid::new_v4();
    let executor = Executor::new(pool.clone(), registry, config, id);
    let stats = executor.stats();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(executor.run(shutdown.clone()));
    Running {
        stats,
        id,
        shutdown,
        handle,
    }
}

impl Running {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

/// A handler that records every run (job id, attempt) and optionally sleeps.
#[derive(Clone, Default)]
pub struct Recorder {
    pub runs: Arc<Mutex<Vec<(JobId, i32)>>>,
    pub sleep: Duration,
}

impl Recorder {
    pub fn sleeping(sleep: Duration) -> Self {
        Self {
            sleep,
            ..Self::default()
        }
    }

    pub fn runs(&self) -> Vec<(JobId, i32)> {
        self.runs.lock().unwrap().clone()
    }

    /// Waits until `n` runs were recorded; panics after `timeout`.
    pub async fn wait_for_runs(&self, n: usize, timeout: Duration) {
        postrunner_test_db::eventually(timeout, &format!("{n} job runs"), || async { self.runs().len() == n }).await;
    }

    /// How many times each job ran.
    pub fn counts(&self) -> HashMap<JobId, usize> {
        let mut counts = HashMap::new();
        for (id, _) in self.runs() {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        self.runs.lock().unwrap().push((job.id, job.attempts));
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
        Ok(None)
    }
}

/// A registry with only `kind`, handled by `handler`.
pub fn only(kind: &str, handler: impl Handler) -> Registry {
    let mut registry = Registry::new();
    registry.register(kind, handler);
    registry
}

/// Inserts `n` jobs of `kind` with `args`, as an application would; their ids.
pub async fn jobs(pool: &PgPool, kind: &str, n: i32, args: serde_json::Value) -> Vec<JobId> {
    sqlx::query_scalar(
        "INSERT INTO postrunner.jobs (kind, args) SELECT $1, $2 FROM generate_series(1, $3) RETURNING id",
    )
    .bind(kind)
    .bind(args)
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A job's state and attempts, or None once it completed (completed jobs are deleted).
pub async fn job(pool: &PgPool, id: JobId) -> Option<(crate::JobState, i32)> {
    sqlx::query_as("SELECT state, attempts FROM postrunner.jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Number of jobs in `postrunner.jobs`, whatever their state.
pub async fn job_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM postrunner.jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}
