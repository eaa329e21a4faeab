//! postrunner's own periodic tasks, run as ordinary jobs on the same queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use postrunner_providers::{health, Directory};
use postrunner_queue::handler::{Handler, JobError};
use postrunner_queue::heartbeat::rescue_expired;
use postrunner_queue::ClaimedJob;

pub const RESCUE: &str = "system.rescue_expired_leases";
pub const CLEANUP: &str = "system.cleanup";
pub const EVALUATE_ALERTS: &str = "system.evaluate_alerts";
pub const PROBE_PROVIDERS: &str = "system.probe_providers";

use postrunner_schema::statements;

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
        if rescued.requeued + rescued.discarded + rescued.held > 0 {
            tracing::warn!(
                jobs.requeued = rescued.requeued,
                jobs.discarded = rescued.discarded,
                jobs.held = rescued.held,
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
        let (processes, runs, jobs, nonces, payloads): (i64, i64, i64, i64, i64) =
            statements::queue::cleanup(RETENTION)
                .rows()
                .fetch_one(&self.pool)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
        let (probes, history, alerts, bodies): (i64, i64, i64, i64) = statements::retention::prune()
            .rows()
            .fetch_one(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        tracing::info!(
            processes,
            schedule_runs = runs,
            jobs,
            webhook_nonces = nonces,
            event_payloads = payloads,
            provider_probes = probes,
            provider_health_history = history,
            alerts,
            message_bodies = bodies,
            "cleanup done"
        );
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
        let (fired, resolved): (i32, i32) = statements::alerts::evaluate()
            .rows()
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

/// Probes every enabled provider with a cheap authenticated call (every 30 s): the
/// latency and outcome are kept in `provider_probes`; a failure counts against the
/// provider's circuit breaker like a failed send, a success brings it back up.
pub struct ProbeProviders {
    pool: PgPool,
    providers: Arc<Directory>,
}

impl ProbeProviders {
    pub fn new(pool: PgPool, providers: Arc<Directory>) -> Self {
        Self { pool, providers }
    }

    async fn probe_one(&self, name: &str) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let outcome = match self.providers.get(name).await {
            Ok(adapter) => match tokio::time::timeout(PROBE_TIMEOUT, adapter.probe()).await {
                Ok(result) => result,
                Err(_) => Err(postrunner_providers::SendError::Unavailable {
                    provider: name.to_owned(),
                    detail: format!("probe timed out after {PROBE_TIMEOUT:?}"),
                    retry_after: None,
                    may_have_taken: false,
                }),
            },
            Err(e) => Err(e),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let error = outcome.as_ref().err().map(ToString::to_string);
        statements::providers::record_probe(name, latency_ms, error.is_none(), error.as_deref())
            .execute(&self.pool)
            .await?;
        match outcome {
            Ok(()) => {
                let mut conn = self.pool.acquire().await?;
                health::record_probe_successes(&mut conn, &[name.to_owned()]).await?;
            }
            Err(error) => {
                tracing::warn!(provider = name, error = %error, "health probe failed");
                health::record_failure(&self.pool, name, &error).await?;
            }
        }
        Ok(())
    }
}

/// How long a probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait::async_trait]
impl Handler for ProbeProviders {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let names: Vec<String> = statements::providers::probe_targets()
            .scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let probes = names.iter().map(|name| self.probe_one(name));
        for result in futures_util::future::join_all(probes).await {
            result.map_err(|e| JobError::Retry(e.to_string()))?;
        }
        Ok(None)
    }
}

/// Checks SPF, DKIM, DMARC and MX of every sender domain (daily; `report_domains`),
/// asking the nameserver in `POSTRUNNER_NAMESERVER` or the system's. A failing domain
/// raises an alert, and with `domain_check_policy = 'block'` its addresses are paused
/// until it passes (sql/definitions/400_compliance_domain_gate.sql).
pub struct CheckDomains {
    pool: PgPool,
}

pub const CHECK_DOMAINS: &str = "system.check_domains";

impl CheckDomains {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler for CheckDomains {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let nameserver = std::env::var("POSTRUNNER_NAMESERVER").ok().and_then(|v| v.parse().ok());
        let resolver = crate::compliance::domains::resolver(nameserver).map_err(JobError::Retry)?;
        let reports = crate::compliance::domains::check_all(&self.pool, &resolver)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        for report in reports.iter().filter(|r| !r.ok()) {
            tracing::warn!(domain = %report.domain, "sender domain fails its DNS checks (see postrunner.report_domains)");
        }
        let gate = crate::compliance::domains::apply_gate(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if gate != Default::default() {
            tracing::info!(%gate, "domain checks applied");
        }
        Ok(None)
    }
}

/// Looks up the MX of recipient domains that messages of clients with mailbox group
/// limits wait for, places them in their groups and moves the messages on (every 15 s;
/// src/compliance/recipient_domains.rs). Uses the nameserver in `POSTRUNNER_NAMESERVER`
/// or the system's.
pub struct ClassifyRecipientDomains {
    pool: PgPool,
}

pub const CLASSIFY_RECIPIENT_DOMAINS: &str = "system.classify_recipient_domains";

impl ClassifyRecipientDomains {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler for ClassifyRecipientDomains {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let nameserver = std::env::var("POSTRUNNER_NAMESERVER").ok().and_then(|v| v.parse().ok());
        let resolver = crate::compliance::domains::resolver(nameserver).map_err(JobError::Retry)?;
        let done = crate::compliance::recipient_domains::classify_pending(&self.pool, &resolver)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if done.looked_up > 0 || done.moved > 0 {
            tracing::info!(
                looked_up = done.looked_up,
                failed = done.failed,
                moved = done.moved,
                "recipient domains classified"
            );
        }
        Ok(None)
    }
}

/// Rolls the settled part of the ledger up into hourly and monthly counts, which the
/// metrics, the cost report and the status page read instead of the ledger (every
/// minute; sql/definitions/440_metrics_rollups.sql).
pub struct RollupSends {
    pool: PgPool,
}

pub const ROLLUP_SENDS: &str = "system.rollup_sends";

impl RollupSends {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler for RollupSends {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let rolled: i64 = statements::metrics::rollup_sends()
            .scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok((rolled > 0).then(|| serde_json::json!({ "rolled": rolled })))
    }
}
