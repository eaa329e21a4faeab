//! Provider adapters: one module per wire format.
//!
//! An adapter turns a message into one provider request and the reply into an
//! [`Accepted`] or a classified [`SendError`]. Retrying, failover and quotas are not
//! decided here: the adapter only says what kind of failure it saw, so the queue can
//! decide the same way for every provider. The [`Directory`] finds the adapter for a
//! provider row by name. The `log` adapter records and accepts; the HTTP and SMTP
//! adapters follow the same trait.

pub mod directory;
pub mod log;

use std::time::Duration;

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
}

/// The provider took the message.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub provider_message_id: String,
}

/// Why a send did not succeed; decides retry versus give up.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{provider} is rate limiting (retry after {retry_after:?})")]
    RateLimited {
        provider: String,
        retry_after: Option<Duration>,
    },
    #[error("temporary failure at {provider}: {detail}")]
    Transient { provider: String, detail: String },
    #[error("{provider} refused the message: {detail}")]
    Permanent { provider: String, detail: String },
    /// The outcome is unknown: the provider may have taken the message (a timeout after
    /// the request was sent, a connection dropped before the reply). Retried like a
    /// transient failure, but its capacity stays used.
    #[error("no answer from {provider}: {detail}")]
    Ambiguous { provider: String, detail: String },
}

impl SendError {
    /// Whether the provider may have taken the message. When it surely did not, the
    /// attempt's reservation (address day count, provider rate and budget) is given back.
    pub fn provider_may_have_taken(&self) -> bool {
        matches!(self, SendError::Ambiguous { .. })
    }
}

/// Something that can send mail.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's name as in `postrunner.providers.name` (recorded on the message).
    fn name(&self) -> &str;

    /// Sends one message. Must not hold any database transaction or lock.
    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError>;
}
