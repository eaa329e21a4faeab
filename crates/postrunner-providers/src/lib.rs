//! Provider adapters: one module per wire format.
//!
//! An adapter turns a message into one provider request and the reply into an
//! [`Accepted`] or a classified [`SendError`]. Retrying, failover and quotas are not
//! decided here: the adapter only says what kind of failure it saw, so the queue can
//! decide the same way for every provider. The [`Directory`] finds the adapter for a
//! provider row by name. The `log` adapter records and accepts; the HTTP and SMTP
//! adapters follow the same trait.
//!
//! - [`directory`]: the providers table's rows, each with its adapter and health.
//! - [`http`], [`log`], [`smtp`], [`sendgrid`], [`mailgun`], [`postmark`], [`resend`],
//!   [`ses`]: the adapters, one per wire format.
//! - [`dkim`]: signing SMTP mail with the sender domain's key.
//! - [`health`]: provider failures and probe successes recorded for the breaker.
//! - [`redact`]: recipient addresses kept out of logs and error texts.
//! - [`secret`]: secrets from environment variables that never print.
//!
//! README.md is this crate's map; tests/maps.rs checks it. The simulators of these wire
//! formats are a crate of their own (postrunner-sim): nothing here serves a test.

pub mod directory;
pub mod dkim;
pub mod health;
pub mod http;
pub mod log;
pub mod mailgun;
pub mod postmark;
pub mod redact;
pub mod resend;
pub mod secret;
pub mod sendgrid;
pub mod ses;
pub mod smtp;

use std::time::Duration;

use chrono::{DateTime, Utc};
pub use directory::Directory;

use uuid::Uuid;

/// A message ready to hand to a provider.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// postrunner's id for the message (`outbox.id`), sent along so events can be matched.
    pub id: Uuid,
    /// The sender address routing chose, and its display name.
    pub from: String,
    pub from_name: Option<String>,
    pub to: String,
    pub subject: String,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    /// Extra headers given at enqueue time (already validated by the outbox trigger).
    pub headers: Vec<(String, String)>,
    /// One-click unsubscribe URL (RFC 8058) when unsubscribe pages are configured.
    pub unsubscribe_url: Option<String>,
    /// A `mailto:` URI advertised beside it (the client's unsubscribe mailbox).
    pub unsubscribe_mailto: Option<String>,
    /// A tag for the provider's reports (the direction).
    pub tag: Option<String>,
}

impl OutgoingMessage {
    /// `Message-ID`: postrunner's id on the sender's domain, the same for every attempt.
    pub fn message_id(&self) -> String {
        format!("<{}@{}>", self.id, http::domain_of(&self.from))
    }

    /// `From` as `"Name" <address>` (or the bare address).
    pub fn from_header(&self) -> String {
        match &self.from_name {
            Some(name) if !name.is_empty() => {
                format!(
                    "\"{}\" <{}>",
                    name.replace('\\', "\\\\").replace('"', "\\\""),
                    self.from
                )
            }
            _ => self.from.clone(),
        }
    }

    /// The headers to send besides From, To and Subject: the ones postrunner sets
    /// (Message-ID, X-Postrunner-Id, and with an unsubscribe URL RFC 8058's
    /// List-Unsubscribe, with the mailto URI after the HTTPS one when there is one, and
    /// List-Unsubscribe-Post), then the application's.
    pub fn headers_to_send(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("Message-ID".to_owned(), self.message_id()),
            ("X-Postrunner-Id".to_owned(), self.id.to_string()),
        ];
        if let Some(url) = &self.unsubscribe_url {
            let value = match &self.unsubscribe_mailto {
                Some(mailto) => format!("<{url}>, <{mailto}>"),
                None => format!("<{url}>"),
            };
            headers.push(("List-Unsubscribe".to_owned(), value));
            headers.push((
                "List-Unsubscribe-Post".to_owned(),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
        }
        headers.extend(self.headers.iter().cloned());
        headers
    }
}

/// The provider took the message.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub provider_message_id: String,
}

/// Why a send did not succeed, in the classes the queue acts on the same way for every
/// provider (mapped from status codes, error bodies and SMTP enhanced codes).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The recipient is refused for good (no such mailbox, inactive recipient): the
    /// message fails and the recipient is suppressed for the client.
    #[error("{provider} refused the recipient: {detail}")]
    RecipientRefused { provider: String, detail: String },
    /// This message can never be sent as it is (a malformed request): it fails.
    #[error("{provider} rejected the message: {detail}")]
    Rejected { provider: String, detail: String },
    /// Temporary for this message: retried on the backoff schedule.
    #[error("temporary failure at {provider}: {detail}")]
    Transient { provider: String, detail: String },
    /// The provider is in trouble (5xx, 429, timeouts, refused or reset connections,
    /// authentication, quota): it counts against the provider's health, and another
    /// provider may take the message. `retry_after` is the provider's own hint;
    /// `may_have_taken` is true when the request may have reached it (a timeout or a
    /// connection dropped after sending), so the attempt's capacity stays used.
    #[error("{provider} is unavailable: {detail}")]
    Unavailable {
        provider: String,
        detail: String,
        retry_after: Option<Duration>,
        may_have_taken: bool,
    },
}

impl SendError {
    /// The failure's class as the ledger records it (`send_attempts.fault`): only
    /// `provider` counts against the provider's circuit breaker.
    pub fn fault(&self) -> &'static str {
        match self {
            SendError::RecipientRefused { .. } => "recipient",
            SendError::Rejected { .. } => "message",
            SendError::Transient { .. } => "transient",
            SendError::Unavailable { .. } => "provider",
        }
    }

    /// The same error with every email address in the provider's text replaced: the
    /// recipient by `<recipient>`, any other by `<address>`. Provider replies quote
    /// addresses ("550 5.1.1 <jane@example.org>: Recipient address rejected"), and
    /// these texts end up in logs, `last_error` and the breaker's history, which must
    /// never hold a recipient's address (tests/redaction.rs).
    pub fn redacted(self, recipient: &str) -> Self {
        let clean = |detail: String| redact::addresses(&detail, recipient);
        match self {
            SendError::RecipientRefused { provider, detail } => SendError::RecipientRefused {
                provider,
                detail: clean(detail),
            },
            SendError::Rejected { provider, detail } => SendError::Rejected {
                provider,
                detail: clean(detail),
            },
            SendError::Transient { provider, detail } => SendError::Transient {
                provider,
                detail: clean(detail),
            },
            SendError::Unavailable {
                provider,
                detail,
                retry_after,
                may_have_taken,
            } => SendError::Unavailable {
                provider,
                detail: clean(detail),
                retry_after,
                may_have_taken,
            },
        }
    }

    /// Whether the provider may have taken the message. When it surely did not, the
    /// attempt's reservation (address day count, provider rate and budget) is given back.
    pub fn provider_may_have_taken(&self) -> bool {
        matches!(
            self,
            SendError::Unavailable {
                may_have_taken: true,
                ..
            }
        )
    }
}

/// What a provider's own records say about a message whose send was uncertain
/// (sql/definitions/340_outbox_uncertain.sql).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It has the message: the send went through (with the provider's id for it,
    /// when the answer carries one).
    Taken { provider_message_id: Option<String> },
    /// It does not know the message, or not yet (a provider's search can lag behind
    /// its sends by minutes): no evidence either way.
    Unknown,
}

/// A recipient on a provider's own suppression list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppressed {
    pub address: String,
    /// `hard_bounce`, `complaint` or `unsubscribe` (postrunner.suppression_reason).
    pub reason: &'static str,
}

/// Something that can send mail.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's name as in `postrunner.providers.name` (recorded on the message).
    fn name(&self) -> &str;

    /// Sends one message. Must not hold any database transaction or lock.
    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError>;

    /// A cheap authenticated call that proves the provider answers and accepts our
    /// credentials (the scheduler's health probe), sending nothing.
    async fn probe(&self) -> Result<(), SendError> {
        Ok(())
    }

    /// Whether [`Provider::lookup`] can find a message; the uncertain-send resolver
    /// asks only the providers that can.
    fn can_look_up(&self) -> bool {
        false
    }

    /// Asks the provider whether it has `message`, whose send at `attempted_at` ended
    /// without an answer. Sends nothing new, except where the provider's own
    /// idempotency makes a repeat of the very same request safe (Resend).
    async fn lookup(&self, _message: &OutgoingMessage, _attempted_at: DateTime<Utc>) -> Result<Lookup, SendError> {
        Ok(Lookup::Unknown)
    }

    /// The account's own suppression lists (bounces, complaints, unsubscribes), for the
    /// sending `domains` where the provider keeps them per domain; `None` when the
    /// provider has no such list to read (SMTP, `log`, Resend).
    /// crates/postrunner-feedback/src/provider_suppressions.rs applies them after a restore.
    async fn suppressed(&self, _domains: &[String]) -> Result<Option<Vec<Suppressed>>, SendError> {
        Ok(None)
    }
}
