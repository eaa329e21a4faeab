//! SMTP through lettre: plain, STARTTLS or implicit TLS, with AUTH, and a pool of
//! connections per sender address that its successive sends reuse.
//!
//! The endpoint says how to connect: `smtp://[user@]host[:port][?tls=...&verify=...]`
//! (STARTTLS required by default, port 587; `tls=opportunistic` or `tls=none` relax it)
//! or `smtps://[user@]host[:port]` (implicit TLS, port 465). The password comes from the
//! environment variable the provider row names; `verify=false` accepts a self-signed
//! certificate (staging and tests only).
//!
//! Replies are classified by reply code and enhanced status code (RFC 3463): 5.1.x (and
//! a bare 550/551/553) refuse the recipient; other 5xx reject the message; 450-452
//! (mailbox busy, greylisting, storage) are temporary for this message; 421, 454,
//! authentication failures and connection problems are the provider's trouble.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::http::truncate;
use super::{Accepted, OutgoingMessage, Provider, SendError};
use crate::secret::Secret;

/// An SMTP endpoint that cannot be used as configured.
#[derive(Debug, thiserror::Error)]
#[error("SMTP endpoint: {0}")]
pub struct SmtpConfigError(String);

pub struct Smtp {
    name: String,
    /// A bound on a whole send: lettre's own timeout covers each read and write, not a
    /// server that accepts the connection and never greets.
    timeout: Duration,
    builder: AsyncSmtpTransportBuilder,
    /// One pool of connections per sender address, so successive sends from an
    /// address reuse its session (and one address's traffic never rides another's).
    transports: Mutex<HashMap<String, AsyncSmtpTransport<Tokio1Executor>>>,
    /// The provider row's `bounce_address`: each message's envelope sender is its VERP
    /// form ([`verp_address`]), so bounce mail names the message.
    bounce_address: Option<String>,
    dkim: super::dkim::DkimSigners,
}

/// The VERP envelope sender of message `id` for bounce address `local@domain`:
/// `local+<id, 32 hex>@domain` (postrunner_feedback::bounce_mail reads it back).
pub fn verp_address(bounce_address: &str, id: uuid::Uuid) -> Option<String> {
    let (local, domain) = bounce_address.rsplit_once('@')?;
    Some(format!("{local}+{}@{domain}", id.simple()))
}

impl Smtp {
    /// Sends with VERP envelope senders built from `bounce_address` (none: the sender
    /// address itself is the envelope sender).
    pub fn with_bounce_address(mut self, bounce_address: Option<String>) -> Self {
        self.bounce_address = bounce_address;
        self
    }

    /// Signs mail from the domains `dkim` has keys for (crates/postrunner-providers/src/dkim.rs).
    pub fn with_dkim(mut self, dkim: super::dkim::DkimSigners) -> Self {
        self.dkim = dkim;
        self
    }

    /// An adapter for `endpoint` (see the module docs), authenticating with `password`
    /// when the endpoint names a user.
    ///
    /// # Errors
    /// [`SmtpConfigError`] for an endpoint that is not an smtp:// or smtps:// URL, an
    /// unknown `tls` mode, or a user without a password.
    pub fn new(
        name: &str,
        endpoint: &str,
        password: Option<Secret<String>>,
        timeout: Duration,
    ) -> Result<Self, SmtpConfigError> {
        let url = reqwest::Url::parse(endpoint).map_err(|e| SmtpConfigError(format!("{endpoint:?}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| SmtpConfigError("no host".to_owned()))?
            .to_owned();
        let query = |key: &str| url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned());
        let verify = query("verify").as_deref() != Some("false");
        let tls_parameters = || {
            TlsParameters::builder(host.clone())
                .dangerous_accept_invalid_certs(!verify)
                .build()
                .map_err(|e| SmtpConfigError(format!("TLS: {e}")))
        };
        let (tls, default_port) = match (url.scheme(), query("tls").as_deref()) {
            ("smtps", _) => (Tls::Wrapper(tls_parameters()?), 465),
            ("smtp", None | Some("required")) => (Tls::Required(tls_parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(tls_parameters()?), 587),
            ("smtp", Some("none")) => (Tls::None, 25),
            (scheme, tls) => {
                return Err(SmtpConfigError(format!(
                    "scheme {scheme:?} with tls={tls:?}: use smtp:// (tls=required|opportunistic|none) or smtps://"
                )))
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(4).idle_timeout(Duration::from_secs(60)));
        if !url.username().is_empty() {
            let user = percent_encoding::percent_decode_str(url.username())
                .decode_utf8_lossy()
                .into_owned();
            let password =
                password.ok_or_else(|| SmtpConfigError(format!("user {user:?} needs a password (secret_env)")))?;
            builder = builder.credentials(Credentials::new(user, password.expose().clone()));
        }
        Ok(Self {
            name: name.to_owned(),
            timeout,
            builder,
            transports: Mutex::default(),
            bounce_address: None,
            dkim: super::dkim::DkimSigners::default(),
        })
    }

    /// The pooled transport of sender `from`, created on its first send.
    fn transport_for(&self, from: &str) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut transports = self.transports.lock().expect("smtp transports lock");
        transports
            .entry(from.to_lowercase())
            .or_insert_with(|| self.builder.clone().build())
            .clone()
    }

    /// The MIME message: text and/or HTML (multipart/alternative when both), Date,
    /// Message-ID on the sender's domain, and the headers of
    /// [`OutgoingMessage::headers_to_send`].
    ///
    /// # Errors
    /// [`SendError::Rejected`] when an address or header cannot be encoded.
    pub fn build(&self, message: &OutgoingMessage) -> Result<Message, SendError> {
        let rejected = |detail: String| SendError::Rejected {
            provider: self.name.clone(),
            detail,
        };
        let from: Mailbox = message
            .from_header()
            .parse()
            .map_err(|e| rejected(format!("from address: {e}")))?;
        let to: Mailbox = message.to.parse().map_err(|e| rejected(format!("to address: {e}")))?;
        let mut builder = Message::builder();
        if let Some(verp) = self.bounce_address.as_deref().and_then(|b| verp_address(b, message.id)) {
            let sender = verp.parse().map_err(|e| rejected(format!("bounce address: {e}")))?;
            let envelope = lettre::address::Envelope::new(Some(sender), vec![to.email.clone()])
                .map_err(|e| rejected(format!("envelope: {e}")))?;
            builder = builder.envelope(envelope);
        }
        let mut builder = builder
            .from(from)
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(message.message_id()))
            .date_now();
        for (name, value) in message.headers_to_send() {
            if name.eq_ignore_ascii_case("Message-ID") {
                continue;
            }
            let name = HeaderName::new_from_ascii(name).map_err(|e| rejected(format!("header name: {e}")))?;
            builder = builder.raw_header(HeaderValue::new(name, value));
        }
        let built = match (&message.text_body, &message.html_body) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
            }
            (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
            (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
            (None, None) => return Err(rejected("no body".to_owned())),
        };
        let mut built = built.map_err(|e| rejected(format!("building the message: {e}")))?;
        self.dkim.sign(
            &mut built,
            super::http::domain_of(&message.from),
            message.unsubscribe_url.is_some(),
        );
        Ok(built)
    }

    fn classify(&self, error: &lettre::transport::smtp::Error) -> SendError {
        let provider = self.name.clone();
        let detail = truncate(&error.to_string(), 300);
        let unavailable = |may_have_taken: bool| SendError::Unavailable {
            provider: self.name.clone(),
            detail: detail.clone(),
            retry_after: None,
            may_have_taken,
        };
        let Some(code) = error.status() else {
            // No reply: a connection, TLS or timeout problem. A refused connection never
            // reached the server; otherwise the message may have been taken.
            return unavailable(!connection_refused(error));
        };
        let code = code.to_string();
        let enhanced = enhanced_status(&detail);
        match (code.as_str(), enhanced.as_deref()) {
            ("421" | "454" | "530" | "534" | "535" | "538", _) => unavailable(false),
            (_, Some(e)) if e.starts_with("5.1.") || e == "5.2.1" => SendError::RecipientRefused { provider, detail },
            ("550" | "551" | "553", None) => SendError::RecipientRefused { provider, detail },
            (c, _) if c.starts_with('4') => SendError::Transient { provider, detail },
            _ => SendError::Rejected { provider, detail },
        }
    }
}

#[async_trait]
impl Provider for Smtp {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        let email = self.build(message)?;
        let transport = self.transport_for(&message.from);
        let response = tokio::time::timeout(self.timeout * 2, transport.send(email))
            .await
            .map_err(|_| SendError::Unavailable {
                provider: self.name.clone(),
                detail: format!("no answer within {:?}", self.timeout * 2),
                retry_after: None,
                may_have_taken: true,
            })?
            .map_err(|e| self.classify(&e))?;
        // The server's queue id, when its reply names one ("250 2.0.0 Ok: queued as 4F...").
        let reply = response.message().collect::<Vec<_>>().join(" ");
        Ok(Accepted {
            provider_message_id: reply
                .rsplit_once("queued as ")
                .map_or_else(|| message.message_id(), |(_, id)| id.trim().to_owned()),
        })
    }

    /// Connect, EHLO (with STARTTLS and AUTH as configured) and NOOP.
    async fn probe(&self) -> Result<(), SendError> {
        // A connection of its own, closed after: a probe must not take a sender's slot.
        let transport: AsyncSmtpTransport<Tokio1Executor> =
            self.builder.clone().pool_config(PoolConfig::new().max_size(1)).build();
        match transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SendError::Unavailable {
                provider: self.name.clone(),
                detail: "NOOP was not answered with 250".to_owned(),
                retry_after: None,
                may_have_taken: false,
            }),
            // Whatever the reply, a failed probe is the provider's trouble.
            Err(e) => Err(SendError::Unavailable {
                provider: self.name.clone(),
                detail: truncate(&e.to_string(), 300),
                retry_after: None,
                may_have_taken: false,
            }),
        }
    }
}

/// The first enhanced status code (class.subject.detail, RFC 3463) in a reply text.
fn enhanced_status(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

fn connection_refused(error: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes_are_found_in_reply_text() {
        assert_eq!(
            enhanced_status("permanent error (550): 5.1.1 <x@y>: Recipient address rejected").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status("transient error (451): 4.7.1 Greylisted").as_deref(),
            Some("4.7.1")
        );
        assert_eq!(enhanced_status("permanent error (550): Mailbox unavailable"), None);
        assert_eq!(enhanced_status("version 1.2.3a"), None);
    }
}
