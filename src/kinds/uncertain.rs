//! `system.resolve_uncertain` (every 10 s): decides messages held because their send's
//! outcome was uncertain (sql/definitions/340_outbox_uncertain.sql).
//!
//! One pass asks the providers that can be asked (Postmark's outbound search, Mailgun's
//! event log, Resend's idempotent replay) about held messages not asked lately, records
//! the ones they have as sent, then lets SQL settle the rest: messages an event already
//! proved sent, and those whose wait is over (resent or failed by the client's
//! duplicate policy). No transaction is open while a provider is asked.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use postrunner_schema::statements;
use sqlx::PgPool;
use uuid::Uuid;

use crate::kinds::email::Routed;
use crate::unsubscribe::UnsubscribeLinks;
use postrunner_providers::{Directory, Lookup};
use postrunner_queue::handler::{Handler, JobError};
use postrunner_queue::ClaimedJob;

pub const KIND: &str = "system.resolve_uncertain";

const LOOKUP_BATCH: i32 = 100;

pub struct ResolveUncertain {
    pool: PgPool,
    providers: Arc<Directory>,
    unsubscribe: Option<UnsubscribeLinks>,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Held messages a provider lookup found, now sent.
    pub looked_up: i32,
    /// Held messages an event had already shown sent.
    pub confirmed: i32,
    /// Held messages sent again after the wait (`resend`).
    pub resent: i32,
    /// Held messages failed after the wait (`never-duplicate`, or no attempt left).
    pub given_up: i32,
}

impl ResolveUncertain {
    /// `unsubscribe` must be the workers' own (`--unsubscribe-url` and its key): Resend's
    /// replay has to be the very request the worker sent.
    pub fn new(pool: PgPool, providers: Arc<Directory>, unsubscribe: Option<UnsubscribeLinks>) -> Self {
        Self {
            pool,
            providers,
            unsubscribe,
        }
    }

    /// One pass at `now` (`None`: the database clock): lookups, then the SQL settle.
    ///
    /// # Errors
    /// A database error; a provider that cannot be asked is only logged.
    pub async fn pass(&self, now: Option<DateTime<Utc>>) -> Result<Settled, sqlx::Error> {
        let looked_up = self.look_up(now).await?;
        let (confirmed, resent, given_up): (i32, i32, i32) = statements::outbox::settle_uncertain(now)
            .rows()
            .fetch_one(&self.pool)
            .await?;
        Ok(Settled {
            looked_up,
            confirmed,
            resent,
            given_up,
        })
    }

    /// Asks the providers with a lookup about held messages; returns how many were
    /// found and recorded as sent.
    async fn look_up(&self, now: Option<DateTime<Utc>>) -> Result<i32, sqlx::Error> {
        let names: Vec<String> = statements::outbox::uncertain_providers()
            .scalar()
            .fetch_all(&self.pool)
            .await?;
        let mut askable = Vec::new();
        for name in names {
            if let Ok(adapter) = self.providers.get(&name).await {
                if adapter.can_look_up() {
                    askable.push(name);
                }
            }
        }
        if askable.is_empty() {
            return Ok(0);
        }
        let due: Vec<(Uuid, String, DateTime<Utc>, serde_json::Value)> =
            statements::outbox::uncertain_lookups(&askable, LOOKUP_BATCH, now)
                .rows()
                .fetch_all(&self.pool)
                .await?;
        let asks = due.into_iter().map(|(id, provider, attempted_at, args)| async move {
            let found = self.ask(&provider, args, attempted_at).await;
            (id, provider, found)
        });
        let answers = futures_util::future::join_all(asks).await;
        let mut resolved = 0;
        let mut by_provider: std::collections::BTreeMap<String, (Vec<Uuid>, Vec<Option<String>>)> = Default::default();
        for (id, provider, found) in answers {
            if let Some(provider_message_id) = found {
                let entry = by_provider.entry(provider).or_default();
                entry.0.push(id);
                entry.1.push(provider_message_id);
            }
        }
        for (provider, (ids, provider_ids)) in by_provider {
            let n: i32 = statements::outbox::resolve_by_lookup(&provider, &ids, &provider_ids)
                .scalar()
                .fetch_one(&self.pool)
                .await?;
            resolved += n;
        }
        Ok(resolved)
    }

    /// One lookup: `Some(provider's id)` when the provider has the message.
    async fn ask(
        &self,
        provider: &str,
        args: serde_json::Value,
        attempted_at: DateTime<Utc>,
    ) -> Option<Option<String>> {
        let routed: Routed = serde_json::from_value(args).ok()?;
        let message = routed.into_outgoing(self.unsubscribe.as_ref());
        let adapter = self.providers.get(provider).await.ok()?;
        match adapter.lookup(&message, attempted_at).await {
            Ok(Lookup::Taken { provider_message_id }) => Some(provider_message_id),
            Ok(Lookup::Unknown) => None,
            Err(e) => {
                tracing::debug!(provider, error = %e.redacted(&message.to), "lookup of an uncertain send failed");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl Handler for ResolveUncertain {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let settled = self.pass(None).await.map_err(|e| JobError::Retry(e.to_string()))?;
        if settled != Settled::default() {
            tracing::info!(
                uncertain.looked_up = settled.looked_up,
                uncertain.confirmed = settled.confirmed,
                uncertain.resent = settled.resent,
                uncertain.given_up = settled.given_up,
                "uncertain sends resolved"
            );
        }
        Ok(None)
    }
}
