//! The database's metrics (docs/metrics.md, section 2), read by one SQL function
//! (sql/definitions/450_metrics_snapshot.sql) and served as OpenMetrics text.
//!
//! The text is cached for a short time (10 s by default) and built single-flight: a
//! scrape that finds it stale rebuilds it while the others wait for that one read, so
//! any number of scrapes and replicas cost at most one read per period, and a slow
//! database is never asked twice at once.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::sync::Mutex;

use postrunner_schema::statements;

/// Each metric the snapshot returns, and its help text (a metric missing here is a
/// defect the tests catch: `every_database_metric_is_documented`).
pub const HELP: &[(&str, &str)] = &[
    ("queue_jobs", "Jobs by kind and state"),
    (
        "queue_oldest_waiting_seconds",
        "Age of the oldest job that could run now and is not claimed",
    ),
    (
        "address_sends_today",
        "Reservations of each sender address on its client's current day",
    ),
    (
        "provider_sends_today",
        "Reservations on the clients' current day, per provider",
    ),
    ("client_sends_today", "Reservations on the client's current day"),
    (
        "capacity_left_today",
        "Messages the active addresses may still send today (warm-up applied)",
    ),
    ("capacity_today", "The active addresses' effective limits today"),
    ("provider_health", "One series per provider with its current state"),
    ("provider_up", "1 up, 0.5 degraded, 0 down"),
    (
        "provider_latency_seconds",
        "Latency of the provider's last health probe",
    ),
    ("bounce_rate", "Hard bounces per accepted send over the window"),
    ("complaint_rate", "Complaints per accepted send over the window"),
    (
        "month_spend_dollars",
        "This UTC month's spend: fixed fee plus price per 1,000 messages",
    ),
    ("month_budget_dollars", "The provider's hard monthly budget"),
    ("month_forecast_dollars", "Month-end spend at the current rate"),
    ("alerts_firing", "postrunner's own alerts firing, by kind"),
    ("workers_live", "Processes with a fresh heartbeat, by role"),
    (
        "backup_last_success_timestamp_seconds",
        "End of the last backup whose restore check passed (0: none)",
    ),
];

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The cached snapshot.
pub struct DatabaseMetrics {
    pool: PgPool,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<String>)>>,
    /// The bearer token a scrape must give (`POSTRUNNER_METRICS_TOKEN`): the text names
    /// every client's sender addresses (docs/operations.md).
    token: Option<postrunner_providers::secret::Secret<String>>,
}

impl std::fmt::Debug for DatabaseMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseMetrics")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl DatabaseMetrics {
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            cached: Mutex::new(None),
            token: None,
        }
    }

    /// Asks every scrape for `token` (`Authorization: Bearer`), when there is one.
    #[must_use]
    pub fn with_token(mut self, token: Option<postrunner_providers::secret::Secret<String>>) -> Self {
        self.token = token;
        self
    }

    /// Whether a request with `headers` may read the text.
    pub fn allows(&self, headers: &axum::http::HeaderMap) -> bool {
        self.token
            .as_ref()
            .is_none_or(|token| postrunner_providers::secret::bearer(headers).is_some_and(|given| token.matches(given)))
    }

    /// The metrics text, from the cache or, when it is older than the ttl, read now.
    ///
    /// # Errors
    /// The snapshot could not be read.
    pub async fn text(&self) -> Result<Arc<String>, sqlx::Error> {
        // Held across the read: the single flight.
        let mut cached = self.cached.lock().await;
        if let Some((at, text)) = cached.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(text.clone());
            }
        }
        let text = Arc::new(self.read().await?);
        *cached = Some((Instant::now(), text.clone()));
        Ok(text)
    }

    async fn read(&self) -> Result<String, sqlx::Error> {
        let started = Instant::now();
        let mut tx = postrunner_schema::begin(&self.pool).await?;
        // A scrape gives up rather than pile up behind a slow database.
        statements::metrics::scrape_timeout().execute(&mut *tx).await?;
        let rows: Vec<(String, serde_json::Value, Option<f64>)> =
            statements::metrics::snapshot().rows().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut families: BTreeMap<&str, Family<Labels, FloatGauge>> = BTreeMap::new();
        for (metric, labels, value) in rows {
            let Some((name, _)) = HELP.iter().find(|(name, _)| *name == metric) else {
                tracing::warn!(metric, "the database snapshot returned a metric without help text");
                continue;
            };
            let labels: Labels = labels
                .as_object()
                .map(|object| {
                    object
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                        .collect()
                })
                .unwrap_or_default();
            families
                .entry(name)
                .or_default()
                .get_or_create(&labels)
                .set(value.unwrap_or(0.0));
        }
        let mut registry = Registry::with_prefix("postrunner");
        for (name, help) in HELP {
            if let Some(family) = families.remove(name) {
                registry.register(*name, *help, family);
            }
        }
        let duration = FloatGauge::default();
        duration.set(started.elapsed().as_secs_f64());
        registry.register(
            "database_metrics_scrape_duration_seconds",
            "How long this snapshot took to read",
            duration,
        );
        let mut text = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        Ok(text)
    }
}
