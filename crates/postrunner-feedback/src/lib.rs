//! The feedback loop: what providers say about a message after accepting it
//! (delivered, bounced, complained, unsubscribed, ...), verified and turned into one
//! event model, then stored once and applied by SQL (sql/definitions/*_feedback_*.sql).
//!
//! Each provider signs its webhooks its own way; each module here checks that
//! signature over the raw request and parses the payload into [`Event`]s. Nothing here
//! touches the database except [`store`] and [`provider_suppressions`].
//!
//! - [`sendgrid`], [`mailgun`], [`postmark`], [`resend`], [`ses`]: each provider's
//!   webhook signature and payload.
//! - [`event`]: the one event model they all become.
//! - [`store`]: events stored once, under the request's nonce.
//! - [`bounce_mail`]: bounce and complaint mail (DSN, ARF) read as events.
//! - [`imap`]: bounce mailboxes read over IMAP.
//! - [`provider_suppressions`]: the providers' own suppression lists, pulled.
//!
//! README.md is this crate's map; tests/maps.rs checks it.

pub mod bounce_mail;
pub mod event;
pub mod imap;
pub mod mailgun;
pub mod postmark;
pub mod provider_suppressions;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod store;

use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

pub use event::{BounceClass, Event, EventKind};

use postrunner_providers::secret::Secret;

/// A webhook request as it arrived: the raw bytes are what signatures cover.
#[derive(Clone, Copy, Debug)]
pub struct WebhookRequest<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

/// How a provider's webhooks are checked: its secret (from the variable the provider
/// row names) and how far a signed timestamp may be from now.
#[derive(Clone, Debug)]
pub struct Verifier {
    pub secret: Secret<String>,
    pub tolerance: Duration,
}

/// A request that passed its provider's checks.
#[derive(Debug, Default)]
pub struct Verified {
    pub events: Vec<Event>,
    /// A value the provider's signature covers that must be honoured once (Mailgun's
    /// token, Svix's message id, SNS's message id): stored with the events, a second use
    /// is refused.
    pub nonce: Option<Nonce>,
}

/// A value honoured once within its scope: the signing key that covers it. Several
/// provider rows may share a key (Mailgun signs with one key per account, and an
/// account has a row per sending domain), and a request signed once must not be
/// spent once per row (tests/webhooks.rs,
/// a_mailgun_token_is_honoured_once_per_signing_key_not_per_provider_row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonce {
    /// `key:<digest of the signing key>` (never the key), or where there is no shared
    /// secret, the issuer's name (`sns`: its message ids are unique across SNS).
    pub scope: String,
    pub value: String,
}

impl Nonce {
    /// A nonce under the signing key `secret`.
    pub fn under_key(secret: &Secret<String>, value: impl Into<String>) -> Self {
        Self {
            scope: format!("key:{}", &sha256_hex(secret.expose().as_bytes())[..32]),
            value: value.into(),
        }
    }
}

/// Why a webhook request is refused. Nothing is stored for a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The signature or credentials are missing or not in the provider's format.
    #[error("not signed: {0}")]
    Unsigned(String),
    /// The signature or credentials do not match.
    #[error("the signature does not match")]
    BadSignature,
    /// The signed timestamp is outside the tolerance (stale, or from the future).
    #[error("the signed timestamp is outside the accepted window")]
    Stale,
    /// A nonce honoured before (a replay of a captured request).
    #[error("this request was already received")]
    Replayed,
    /// The request comes from somewhere the provider row does not allow (an SNS topic
    /// not in `sns_topics`, a certificate URL off SNS's host).
    #[error("wrong origin: {0}")]
    WrongOrigin(String),
    /// The signature is good but the body is not the provider's event format.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The operator's configuration cannot check this provider's requests.
    #[error("webhooks are not configured: {0}")]
    NotConfigured(String),
}

/// The signed timestamp `at` (unix seconds) is within `tolerance` of `now`.
pub(crate) fn check_timestamp(at: i64, now: DateTime<Utc>, tolerance: Duration) -> Result<(), Refusal> {
    let skew = (now.timestamp() - at).unsigned_abs();
    if skew > tolerance.as_secs() {
        return Err(Refusal::Stale);
    }
    Ok(())
}

/// A unix timestamp in seconds (integer or fractional) as a time.
pub(crate) fn unix_time(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    DateTime::from_timestamp_millis((seconds * 1000.0) as i64).filter(plausible)
}

/// An RFC 3339 time (providers' ISO-8601 stamps).
pub(crate) fn iso_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(plausible)
}

/// The SHA-256 of `bytes` in hex: a stable key for what has no short identity of its own
/// (an over-long provider event id, a bounce mail without a Message-ID).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An event time PostgreSQL can store and a provider could mean (anything else is a
/// malformed payload, not a database error).
fn plausible(at: &DateTime<Utc>) -> bool {
    (2000..=2200).contains(&chrono::Datelike::year(at))
}

#[cfg(test)]
mod fuzz {
    //! Every payload parser, on random JSON shaped like the providers' (their field
    //! names, random types and values): an event or a refusal, never a panic.
    use rand::{Rng as _, SeedableRng as _};
    use serde_json::{json, Map, Value};

    const NAMES: &[&str] = &[
        "event",
        "type",
        "email",
        "timestamp",
        "sg_event_id",
        "sg_message_id",
        "postrunner_id",
        "reason",
        "status",
        "severity",
        "recipient",
        "id",
        "message",
        "headers",
        "message-id",
        "delivery-status",
        "user-variables",
        "RecordType",
        "Type",
        "ID",
        "MessageID",
        "Email",
        "BouncedAt",
        "DeliveredAt",
        "Metadata",
        "Details",
        "SuppressSending",
        "SuppressionReason",
        "created_at",
        "data",
        "to",
        "tags",
        "bounce",
        "email_id",
    ];
    const WORDS: &[&str] = &[
        "delivered",
        "bounce",
        "blocked",
        "dropped",
        "Bounced Address",
        "failed",
        "permanent",
        "HardBounce",
        "Bounce",
        "SubscriptionChange",
        "email.bounced",
        "Permanent",
        "2026-12-01T12:00:00Z",
        "not a time",
        "jane@example.org",
        "4f1c0a52-3b5e-4c6e-9a55-8d0e6c1e2f11",
        "",
        "\u{0}",
        "<x@y>",
    ];

    fn value(rng: &mut rand::rngs::StdRng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(rng.gen::<bool>()),
            2 => json!(rng.gen_range(-1e12..1e12_f64)),
            3 => json!(rng.gen::<i64>()),
            4 => json!(WORDS[rng.gen_range(0..WORDS.len())]),
            5 => Value::Array((0..rng.gen_range(0..4)).map(|_| value(rng, depth + 1)).collect()),
            _ => {
                let mut map = Map::new();
                for _ in 0..rng.gen_range(0..10) {
                    map.insert(NAMES[rng.gen_range(0..NAMES.len())].to_owned(), value(rng, depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    #[test]
    fn no_parser_panics_on_random_payloads() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let v = value(&mut rng, 0);
            let _ = super::sendgrid::event(v.clone());
            let _ = super::mailgun::event(&v);
            let _ = super::postmark::event(&v);
            let _ = super::resend::event("msg_1", &v);
            let _ = super::ses::ses_events("sns-1", &v);
        }
    }
}
