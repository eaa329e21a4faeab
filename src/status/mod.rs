//! The operator's summary: queue, providers, capacity left today, open alerts, sends
//! per hour, live processes and the last backup, read in one statement
//! (`postrunner.status_summary()`, sql/definitions/460_metrics_status.sql) and shown in the terminal
//! (`postrunner status`, [`text`]) or as the web role's `/status` page ([`page`]).

pub mod page;
pub mod text;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use postrunner_schema::statements;

/// What `status_summary()` returns.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Summary {
    pub generated_at: DateTime<Utc>,
    pub queue: Queue,
    pub providers: Vec<ProviderStatus>,
    pub capacity: Vec<Capacity>,
    pub alerts: Vec<OpenAlert>,
    pub sends_per_hour: Vec<HourSends>,
    /// Live processes per role (worker, scheduler, web).
    pub workers: BTreeMap<String, f64>,
    pub last_backup: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Queue {
    /// Jobs of every kind per state.
    pub by_state: BTreeMap<String, f64>,
    /// Messages waiting to be sent (available or scheduled `email.send` jobs).
    pub email_waiting: f64,
    pub oldest_waiting_seconds: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ProviderStatus {
    pub name: String,
    pub enabled: bool,
    /// up, degraded or down.
    pub state: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub latency_ms: Option<f64>,
    pub sends_today: f64,
    pub month_spend: Option<f64>,
    pub month_budget: Option<f64>,
    pub month_forecast: Option<f64>,
    pub bounce_rate_24h: Option<f64>,
    pub complaint_rate_24h: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Capacity {
    pub client: String,
    pub capacity_today: f64,
    pub left_today: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OpenAlert {
    pub kind: String,
    pub subject: String,
    pub detail: Option<String>,
    pub fired_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct HourSends {
    pub hour: DateTime<Utc>,
    pub provider: String,
    pub sent: i64,
}

/// Reads the summary as the document `status_summary()` returns (for `--json`).
///
/// # Errors
/// The statement failed.
pub async fn read_json(pool: &PgPool) -> Result<serde_json::Value, sqlx::Error> {
    statements::status::summary().scalar().fetch_one(pool).await
}

/// Reads the summary.
///
/// # Errors
/// The statement failed, or returned a document of another shape (a database migrated
/// by another version).
pub async fn read(pool: &PgPool) -> Result<Summary, sqlx::Error> {
    let document = read_json(pool).await?;
    serde_json::from_value(document).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
