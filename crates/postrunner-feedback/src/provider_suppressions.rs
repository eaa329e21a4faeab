//! Reading the providers' own suppression lists into `postrunner.suppressions`: what
//! SendGrid, Mailgun, Postmark and SES know of bounces, complaints and unsubscribes
//! (`Provider::suppressed`), applied per client by
//! `postrunner.apply_provider_suppressions` (sql/definitions/380_feedback_provider_suppressions.sql).
//! Run by `postrunner backup restore` (a backup is up to a day old) and by
//! `postrunner pull-suppressions`. Providers without such a list (SMTP, Resend, `log`)
//! are reported as such.

use postrunner_schema::statements;
use serde_json::json;
use sqlx::PgPool;

use postrunner_providers::Directory;

/// What one provider's lists gave.
#[derive(Debug)]
pub struct Pulled {
    pub provider: String,
    pub outcome: PullOutcome,
}

#[derive(Debug)]
pub enum PullOutcome {
    /// Addresses on its lists, and suppressions added for its clients.
    Applied { listed: usize, added: i32 },
    /// The provider keeps no list postrunner can read.
    NoList,
    /// Reading the list failed (credentials, network, the provider's answer).
    Failed(String),
}

/// How many providers' lists could not be read.
pub fn failures(pulled: &[Pulled]) -> usize {
    pulled
        .iter()
        .filter(|p| matches!(p.outcome, PullOutcome::Failed(_)))
        .count()
}

impl std::fmt::Display for Pulled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            PullOutcome::Applied { listed, added } => {
                write!(
                    f,
                    "{}: {listed} on its lists, {added} suppressions added",
                    self.provider
                )
            }
            PullOutcome::NoList => write!(f, "{}: no suppression list to read", self.provider),
            PullOutcome::Failed(error) => write!(f, "{}: FAILED: {error}", self.provider),
        }
    }
}

/// Reads every enabled provider's lists and applies them; one [`Pulled`] per provider.
///
/// # Errors
/// The database failed (a provider's failure is in its [`Pulled`]).
pub async fn pull(pool: &PgPool, providers: &Directory) -> Result<Vec<Pulled>, sqlx::Error> {
    let names: Vec<String> = statements::providers::enabled().scalar().fetch_all(pool).await?;
    let mut pulled = Vec::with_capacity(names.len());
    for provider in names {
        let domains: Vec<String> = statements::providers::sender_domains_of(&provider)
            .scalar()
            .fetch_all(pool)
            .await?;
        let listed = match providers.get(&provider).await {
            Ok(adapter) => adapter.suppressed(&domains).await,
            Err(error) => Err(error),
        };
        let outcome = match listed {
            Ok(None) => PullOutcome::NoList,
            Err(error) => PullOutcome::Failed(error.to_string()),
            Ok(Some(list)) => {
                let items: Vec<_> = list
                    .iter()
                    .map(|s| json!({ "address": s.address, "reason": s.reason }))
                    .collect();
                let added: i32 =
                    statements::feedback::apply_provider_suppressions(&provider, serde_json::Value::Array(items))
                        .scalar()
                        .fetch_one(pool)
                        .await?;
                PullOutcome::Applied {
                    listed: list.len(),
                    added,
                }
            }
        };
        pulled.push(Pulled { provider, outcome });
    }
    Ok(pulled)
}
