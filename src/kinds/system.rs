//! postrunner's own periodic tasks, run as ordinary jobs on the same queue.

use std::time::Duration;

use sqlx::PgPool;

use crate::queue::handler::{Handler, JobError};
use crate::queue::lease::rescue_expired;
use crate::queue::ClaimedJob;

pub const RESCUE: &str = "system.rescue_expired_leases";
pub const CLEANUP: &str = "system.cleanup";
pub const EVALUATE_ALERTS: &str = "system.evaluate_alerts";

const CLEANUP_SQL: &str = include_str!("../../sql/queue/cleanup.sql");
const EVALUATE_ALERTS_SQL: &str = include_str!("../../sql/alerts/evaluate.sql");

/// Returns the jobs of dead workers to the queue (every 5 s by default).
pub struct RescueExpiredLeases {
    pool: PgPool,
}

impl RescueExpiredLeases {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler for RescueExpiredLeases {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let rescued = rescue_expired(&self.pool, None)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if rescued.requeued + rescued.discarded > 0 {
            tracing::warn!(
                jobs.requeued = rescued.requeued,
                jobs.discarded = rescued.discarded,
                "rescued jobs of lost workers"
            );
        }
        Ok(None)
    }
}

/// Forgets old process rows, schedule history and finished failed jobs (hourly).
pub struct Cleanup {
    pool: PgPool,
}

impl Cleanup {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// How long discarded and cancelled jobs stay in `postrunner.jobs` for inspection.
const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

#[async_trait::async_trait]
impl Handler for Cleanup {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let (processes, runs, jobs): (i64, i64, i64) = sqlx::query_as(CLEANUP_SQL)
            .bind(RETENTION)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        tracing::info!(processes, schedule_runs = runs, jobs, "cleanup done");
        Ok(None)
    }
}

/// Fires and resolves alerts, e.g. a provider down for more than 5 minutes (every 15 s).
pub struct EvaluateAlerts {
    pool: PgPool,
}

impl EvaluateAlerts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler for EvaluateAlerts {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let (fired, resolved): (i32, i32) = sqlx::query_as(EVALUATE_ALERTS_SQL)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if fired > 0 {
            tracing::error!(alerts.fired = fired, "alerts fired (see postrunner.report_alerts)");
        }
        if resolved > 0 {
            tracing::warn!(alerts.resolved = resolved, "alerts resolved");
        }
        Ok(None)
    }
}
