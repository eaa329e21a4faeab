//! The one event model every provider's payload is turned into (table
//! `postrunner.events`, sql/definitions/330_feedback_record_events.sql).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// What happened to a message after the provider accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Delivered,
    /// The receiver answered "later"; the provider keeps trying.
    Deferred,
    Bounced,
    Complained,
    Unsubscribed,
    /// The provider did not attempt delivery (its own suppression, content, policy).
    Rejected,
    Opened,
    Clicked,
}

/// A bounce's class: hard (the address does not exist or refuses for good: suppress)
/// or soft (full mailbox, blocked, temporary: quarantine after repeats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceClass {
    Hard,
    Soft,
}

/// One provider event, normalised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// The provider's identity of this event: a retry of it carries the same key.
    pub dedupe_key: String,
    pub kind: EventKind,
    /// Set for bounces only.
    pub bounce_class: Option<BounceClass>,
    /// The receiving server's or provider's words, recipient addresses redacted.
    pub diagnostic: Option<String>,
    pub recipient: Option<String>,
    /// postrunner's message id, echoed by the provider from the send's metadata.
    pub our_id: Option<Uuid>,
    /// The provider's id of the message, as the send's answer gave it.
    pub provider_message_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// This event's part of the provider's payload, kept for a while (setting
    /// event_payload_days).
    pub payload: serde_json::Value,
}

impl Event {
    /// An event with no bounce class, diagnostic or ids yet.
    /// A key longer than the table keeps (300) is replaced by its SHA-256, which keeps
    /// retries of the event equal.
    pub fn new(dedupe_key: String, kind: EventKind, occurred_at: DateTime<Utc>, payload: serde_json::Value) -> Self {
        let dedupe_key = if dedupe_key.len() > 300 {
            super::sha256_hex(dedupe_key.as_bytes())
        } else {
            dedupe_key
        };
        Self {
            dedupe_key,
            kind,
            bounce_class: None,
            diagnostic: None,
            recipient: None,
            our_id: None,
            provider_message_id: None,
            occurred_at,
            payload,
        }
    }

    pub fn bounce(mut self, class: BounceClass) -> Self {
        self.kind = EventKind::Bounced;
        self.bounce_class = Some(class);
        self
    }

    /// Sets the diagnostic, with every address in it redacted (the recipient's as
    /// `<recipient>`).
    pub fn diagnostic(mut self, text: Option<&str>) -> Self {
        self.diagnostic = text.filter(|t| !t.trim().is_empty()).map(|t| {
            let redacted = postrunner_providers::redact::addresses(t, self.recipient.as_deref().unwrap_or(""));
            redacted.chars().take(1000).collect()
        });
        self
    }

    pub fn recipient(mut self, address: Option<&str>) -> Self {
        self.recipient = address.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
        self
    }

    /// postrunner's id, when the echoed value is one (anything else is ignored: the
    /// event is then matched by the provider's id, or kept as unknown).
    pub fn our_id(mut self, id: Option<&str>) -> Self {
        self.our_id = id.and_then(|id| Uuid::parse_str(id.trim()).ok());
        self
    }

    pub fn provider_message_id(mut self, id: Option<&str>) -> Self {
        self.provider_message_id = id
            .map(|id| id.trim().trim_matches(|c| c == '<' || c == '>').to_owned())
            .filter(|id| !id.is_empty());
        self
    }
}
