//! `email.send`: send the outbox message a job carries, from the address routing chose.
//!
//! The claim (postrunner.claim_messages) already routed the message: it reserved an
//! address's capacity and put the message and its route in the job's args, so a send
//! that succeeds costs no query of its own. This handler hands the message to the
//! provider with no transaction open; `record` writes the provider's answer onto the
//! outbox row and the ledger in the transaction that completes the job. A failed send
//! closes its reservation at once, giving the capacity back when the provider surely
//! did not take the message. When it may have (a timeout, a dropped connection, a 502
//! or 504), the message is held as `uncertain` rather than sent again at once
//! (sql/definitions/340_outbox_uncertain.sql).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::unsubscribe::UnsubscribeLinks;
use postrunner_providers::{Directory, OutgoingMessage, SendError};
use postrunner_queue::handler::{Handler, JobError};
use postrunner_queue::{ClaimedJob, JobId};

pub const KIND: &str = "email.send";

/// What a body says where the message's own unsubscribe link goes.
pub const PLACEHOLDER: &str = "{{unsubscribe_url}}";

mod footer;

use postrunner_schema::statements;

/// How often a message goes back to be routed again without using an attempt because
/// its provider was unavailable; after that, provider trouble uses attempts like any
/// temporary failure, so a message cannot bounce between providers forever.
pub const MAX_REROUTES: i32 = 3;

pub struct SendEmail {
    pool: PgPool,
    providers: Arc<Directory>,
    unsubscribe: Option<UnsubscribeLinks>,
}

impl SendEmail {
    pub fn new(pool: PgPool, providers: Arc<Directory>) -> Self {
        Self {
            pool,
            providers,
            unsubscribe: None,
        }
    }

    /// Gives every message its signed RFC 8058 one-click unsubscribe link
    /// (src/unsubscribe.rs), in its headers and in place of `{{unsubscribe_url}}` in
    /// its bodies.
    pub fn with_unsubscribe(mut self, links: Option<UnsubscribeLinks>) -> Self {
        self.unsubscribe = links;
        self
    }
}

/// The args a routed claim gives an email job.
#[derive(Deserialize)]
pub(crate) struct Routed {
    attempt_id: i64,
    reroutes: i32,
    provider: String,
    from_address: String,
    from_name: Option<String>,
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    id: Uuid,
    client: String,
    direction: String,
    to: String,
    subject: String,
    text_body: Option<String>,
    html_body: Option<String>,
    headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// The client's unsubscribe mailbox (clients.unsubscribe_mailto).
    unsubscribe_mailto: Option<String>,
    /// The client's automatic footer (clients.unsubscribe_footer).
    unsubscribe_footer: Option<String>,
}

/// What `run` hands to `record`.
#[derive(Serialize, Deserialize)]
struct Sent {
    attempt_id: i64,
    provider: String,
    from_address: String,
    provider_message_id: String,
}

impl Routed {
    /// The message as its provider gets it: the same request for every attempt from
    /// the same address, and for a lookup that repeats it (Resend's idempotent replay).
    /// With unsubscribe links, `{{unsubscribe_url}}` in a body becomes the message's own
    /// link (HTML-escaped in the HTML body); a body without it gets the client's footer,
    /// when it has one; the client's mailbox, when it has one, is advertised beside the
    /// link with the same token.
    pub(crate) fn into_outgoing(self, unsubscribe: Option<&UnsubscribeLinks>) -> OutgoingMessage {
        let message = self.message;
        let headers = message
            .headers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_str()?.to_owned())))
            .collect();
        let unsubscribe_url = unsubscribe.map(|links| links.url(message.id, &message.client, &message.to));
        let unsubscribe_mailto = unsubscribe
            .zip(message.unsubscribe_mailto.as_deref())
            .map(|(links, mailbox)| links.mailto(mailbox, message.id, &message.client, &message.to));
        let (mut text_body, mut html_body) = (message.text_body, message.html_body);
        if let Some(url) = &unsubscribe_url {
            let footer = message.unsubscribe_footer.as_deref();
            text_body = text_body.map(|t| footer::text(t, url, footer));
            html_body = html_body.map(|h| footer::html(h, url, footer));
        }
        OutgoingMessage {
            id: message.id,
            from: self.from_address,
            from_name: self.from_name,
            to: message.to,
            subject: message.subject,
            text_body,
            html_body,
            headers,
            unsubscribe_url,
            unsubscribe_mailto,
            tag: Some(message.direction),
        }
    }
}

impl SendEmail {
    /// Closes the attempt's reservation after a failed send (see close_attempt.sql).
    async fn close_attempt(&self, attempt_id: i64, error: &SendError) {
        let release = !error.provider_may_have_taken();
        let closed = statements::outbox::close_attempt(attempt_id, release, &error.to_string(), error.fault())
            .execute(&self.pool)
            .await;
        if let Err(e) = closed {
            // The reservation stays counted: capacity lost for the day, never exceeded.
            tracing::warn!(error = %e, attempt.id = attempt_id, "could not close the failed attempt's reservation");
        }
    }
}

impl SendEmail {
    /// Counts a provider failure against its circuit breaker.
    async fn provider_failed(&self, provider: &str, error: &SendError) {
        match postrunner_providers::health::record_failure(&self.pool, provider, error).await {
            // Once per change of state, not once per failed send.
            Ok(change) if change.went_down() => tracing::warn!(error = %error, "provider is down"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not record the provider's failure"),
        }
    }

    /// A recipient refused for good is suppressed for the client (`hard_bounce`).
    async fn suppress(&self, client: &str, recipient: &str, error: &SendError) {
        let suppressed = statements::outbox::suppress_recipient(client, recipient, &error.to_string())
            .execute(&self.pool)
            .await;
        if let Err(e) = suppressed {
            tracing::warn!(error = %e, "could not suppress a refused recipient");
        }
    }
}

#[async_trait::async_trait]
impl Handler for SendEmail {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let routed: Routed = serde_json::from_value(job.args.clone()).map_err(|e| {
            JobError::Permanent(format!(
                "email.send jobs are created by INSERT INTO postrunner.outbox and claimed routed; this one's args do not say where to send from: {e}"
            ))
        })?;
        let span = tracing::Span::current();
        span.record("provider", routed.provider.as_str());
        span.record("address", routed.from_address.as_str());
        let (attempt_id, reroutes, provider, client) = (
            routed.attempt_id,
            routed.reroutes,
            routed.provider.clone(),
            routed.message.client.clone(),
        );
        let message = routed.into_outgoing(self.unsubscribe.as_ref());
        let started = std::time::Instant::now();
        let sent = match self.providers.get(&provider).await {
            Ok(provider) => provider.send(&message).await,
            Err(e) => Err(e),
        }
        // From here on the provider's words are logged and stored: without addresses.
        .map_err(|e| e.redacted(&message.to));
        crate::metrics::process::send_finished(&provider, sent.as_ref().map(|_| ()), started.elapsed());
        match sent {
            Ok(accepted) => {
                let sent = Sent {
                    attempt_id,
                    provider,
                    from_address: message.from,
                    provider_message_id: accepted.provider_message_id,
                };
                Ok(Some(serde_json::to_value(sent).expect("Sent serializes")))
            }
            Err(e) => {
                tracing::info!(error = %e, "send failed");
                self.close_attempt(attempt_id, &e).await;
                match e {
                    SendError::RecipientRefused { .. } => {
                        self.suppress(&client, &message.to, &e).await;
                        Err(JobError::Permanent(e.to_string()))
                    }
                    SendError::Rejected { .. } => Err(JobError::Permanent(e.to_string())),
                    SendError::Transient { .. } => Err(JobError::Retry(e.to_string())),
                    // The provider may have taken it: sending it elsewhere now could
                    // deliver it twice. Held until evidence or the wait decides
                    // (sql/definitions/340_outbox_uncertain.sql; tests/uncertain.rs).
                    SendError::Unavailable {
                        may_have_taken: true, ..
                    } => {
                        self.provider_failed(&provider, &e).await;
                        Err(JobError::Uncertain(e.to_string()))
                    }
                    SendError::Unavailable { .. } => {
                        self.provider_failed(&provider, &e).await;
                        if reroutes < MAX_REROUTES {
                            crate::metrics::process::rerouted(&provider);
                            Err(JobError::Reroute(e.to_string()))
                        } else {
                            Err(JobError::Retry(e.to_string()))
                        }
                    }
                }
            }
        }
    }

    /// A send cut off by the job's timeout may have reached its provider.
    fn interrupted_is_uncertain(&self) -> bool {
        true
    }

    fn completes_message(&self) -> bool {
        true
    }

    async fn record(&self, tx: &mut PgConnection, results: &[(JobId, serde_json::Value)]) -> Result<(), sqlx::Error> {
        let mut job_ids = Vec::with_capacity(results.len());
        let mut providers = Vec::with_capacity(results.len());
        let mut froms = Vec::with_capacity(results.len());
        let mut message_ids = Vec::with_capacity(results.len());
        let mut attempt_ids = Vec::with_capacity(results.len());
        for (id, value) in results {
            let sent: Sent = serde_json::from_value(value.clone()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            job_ids.push(*id);
            providers.push(sent.provider);
            froms.push(sent.from_address);
            message_ids.push(sent.provider_message_id);
            attempt_ids.push(sent.attempt_id);
        }
        statements::outbox::record_sent(&job_ids, &providers, &froms, &message_ids, &attempt_ids)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}
