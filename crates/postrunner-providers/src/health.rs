//! Feeding the circuit breaker (sql/definitions/220_providers_breaker.sql): failed and successful sends
//! and probes. One place for both the send path and the probes.

use sqlx::{PgConnection, PgPool};

use super::SendError;

use postrunner_schema::statements;

/// A provider's health after a failure was counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    /// `up`, `degraded` or `down`.
    pub state: Option<String>,
    pub previous: Option<String>,
}

impl HealthChange {
    /// The failure took the provider down (it was not down before).
    pub fn went_down(&self) -> bool {
        self.state.as_deref() == Some("down") && self.previous.as_deref() != Some("down")
    }
}

/// Counts a provider failure (with the provider's retry hint, if any) and returns the
/// provider's new state and the one before.
///
/// # Errors
/// The database could not be reached.
pub async fn record_failure(pool: &PgPool, provider: &str, error: &SendError) -> Result<HealthChange, sqlx::Error> {
    let retry_after = match error {
        SendError::Unavailable { retry_after, .. } => retry_after.map(|d| d.as_secs_f64()),
        _ => None,
    };
    let (state, previous) = statements::providers::record_failure(provider, &error.to_string(), retry_after)
        .rows()
        .fetch_one(pool)
        .await?;
    Ok(HealthChange { state, previous })
}

/// Probes of `providers` succeeded (a down provider on trial counts one trial success).
///
/// # Errors
/// The statement failed.
pub async fn record_probe_successes(conn: &mut PgConnection, providers: &[String]) -> Result<(), sqlx::Error> {
    statements::providers::record_successes(providers).execute(conn).await?;
    Ok(())
}
