//! Amazon SES events arrive through Amazon SNS: an HTTP POST whose JSON envelope is
//! signed by SNS with an RSA key whose certificate lives at `SigningCertURL`
//! (SignatureVersion 1: SHA-1, 2: SHA-256, PKCS#1 v1.5). A valid signature proves only
//! that the message came through SNS, not from the operator's topic, so the origin is
//! checked first (providers.md 3.4-3.6, operations.md 4.2):
//!
//! 1. `TopicArn` must be one of the provider row's `sns_topics`;
//! 2. `SigningCertURL` (and a confirmation's `SubscribeURL`) must be https on exactly
//!    `sns.<region>.amazonaws.com`, the region of the topic, with SNS's certificate path
//!    (or on a host the operator trusts explicitly: `web --sns-trusted-host`, for tests
//!    with a local CA); nothing is fetched before these checks pass;
//! 3. the signature over SNS's canonical string, with the certificate's key;
//! 4. the timestamp within an hour (SNS retries for up to an hour) plus the tolerance.
//!
//! The message id is honoured once. `SubscriptionConfirmation` is confirmed (a GET of
//! its checked `SubscribeURL`) only for an allowed topic. The SES event (`Message`,
//! both the `eventType` and `notificationType` dialects) becomes one event per
//! recipient; postrunner's id comes back in `mail.tags.postrunner_id` (EmailTags, with
//! configuration-set event publishing), else the message is matched by SES's id.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use super::{check_timestamp, iso_time, BounceClass, Event, EventKind, Nonce, Refusal, Verified, WebhookRequest};

/// What an SNS request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

/// An SNS envelope, parsed but not yet trusted.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub kind: EnvelopeType,
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    pub timestamp: String,
    pub signature_version: u8,
    pub signature: Vec<u8>,
    pub signing_cert_url: String,
    pub subscribe_url: Option<String>,
    token: Option<String>,
    subject: Option<String>,
}

impl Envelope {
    /// Parses the body and checks it against SNS's headers.
    ///
    /// # Errors
    /// [`Refusal::Unsigned`] when a field SNS always sends is missing or odd.
    pub fn parse(request: WebhookRequest<'_>) -> Result<Self, Refusal> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|_| Refusal::Unsigned("the body is not an SNS message".into()))?;
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let required = |name: &str| text(name).ok_or_else(|| Refusal::Unsigned(format!("{name} is missing")));
        let kind = match required("Type")?.as_str() {
            "Notification" => EnvelopeType::Notification,
            "SubscriptionConfirmation" => EnvelopeType::SubscriptionConfirmation,
            "UnsubscribeConfirmation" => EnvelopeType::UnsubscribeConfirmation,
            other => return Err(Refusal::Unsigned(format!("unknown SNS message type {other:?}"))),
        };
        let signature_version = match required("SignatureVersion")?.as_str() {
            "1" => 1,
            "2" => 2,
            _ => return Err(Refusal::Unsigned("SignatureVersion must be 1 or 2".into())),
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(required("Signature")?)
            .map_err(|_| Refusal::Unsigned("Signature is not base64".into()))?;
        let envelope = Self {
            kind,
            message_id: required("MessageId")?,
            topic_arn: required("TopicArn")?,
            message: required("Message")?,
            timestamp: required("Timestamp")?,
            signature_version,
            signature,
            signing_cert_url: required("SigningCertURL")?,
            subscribe_url: text("SubscribeURL"),
            token: text("Token"),
            subject: text("Subject"),
        };
        for (header, value) in [
            ("x-amz-sns-message-id", &envelope.message_id),
            ("x-amz-sns-topic-arn", &envelope.topic_arn),
        ] {
            if let Some(given) = request.headers.get(header) {
                if given.to_str().ok() != Some(value.as_str()) {
                    return Err(Refusal::Unsigned(format!("header {header} does not match the body")));
                }
            }
        }
        if envelope.message_id.is_empty() || envelope.message_id.len() > 200 {
            return Err(Refusal::Unsigned("MessageId has an odd length".into()));
        }
        Ok(envelope)
    }

    /// The region in the topic's ARN (`arn:aws:sns:<region>:<account>:<name>`).
    fn region(&self) -> Option<&str> {
        let mut parts = self.topic_arn.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("arn"), Some(_), Some("sns"), Some(region)) if is_region(region) => Some(region),
            _ => None,
        }
    }

    /// Steps 1 and 2: the topic is allowed and the certificate's URL is SNS's own.
    /// Returns the certificate URL to fetch.
    ///
    /// # Errors
    /// [`Refusal::WrongOrigin`].
    pub fn check_origin(&self, topics: &[String], trusted_hosts: &[String]) -> Result<reqwest::Url, Refusal> {
        if !topics.iter().any(|t| t == &self.topic_arn) {
            return Err(Refusal::WrongOrigin(
                "the topic is not one this provider allows (sns_topics)".into(),
            ));
        }
        let region = self
            .region()
            .ok_or_else(|| Refusal::WrongOrigin("TopicArn is not an SNS topic ARN".into()))?;
        sns_url(&self.signing_cert_url, region, trusted_hosts, true)
    }

    /// The URL that confirms a subscription, checked like the certificate's.
    ///
    /// # Errors
    /// [`Refusal::WrongOrigin`].
    pub fn confirmation_url(&self, trusted_hosts: &[String]) -> Result<reqwest::Url, Refusal> {
        let region = self
            .region()
            .ok_or_else(|| Refusal::WrongOrigin("TopicArn is not an SNS topic ARN".into()))?;
        let url = self
            .subscribe_url
            .as_deref()
            .ok_or_else(|| Refusal::Unsigned("SubscribeURL is missing".into()))?;
        sns_url(url, region, trusted_hosts, false)
    }

    /// Steps 3 and 4, with the certificate's RSA public key (PKCS#1 DER).
    ///
    /// # Errors
    /// [`Refusal::BadSignature`], [`Refusal::Stale`].
    pub fn check_signature(
        &self,
        rsa_public_key: &[u8],
        now: chrono::DateTime<chrono::Utc>,
        tolerance: Duration,
    ) -> Result<(), Refusal> {
        let mut signed = String::new();
        let mut field = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                signed.push_str(name);
                signed.push('\n');
                signed.push_str(value);
                signed.push('\n');
            }
        };
        field("Message", Some(&self.message));
        field("MessageId", Some(&self.message_id));
        if self.kind == EnvelopeType::Notification {
            field("Subject", self.subject.as_deref());
        } else {
            field("SubscribeURL", self.subscribe_url.as_deref());
        }
        field("Timestamp", Some(&self.timestamp));
        if self.kind != EnvelopeType::Notification {
            field("Token", self.token.as_deref());
        }
        field("TopicArn", Some(&self.topic_arn));
        field(
            "Type",
            Some(match self.kind {
                EnvelopeType::Notification => "Notification",
                EnvelopeType::SubscriptionConfirmation => "SubscriptionConfirmation",
                EnvelopeType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
            }),
        );
        let algorithm: &dyn ring::signature::VerificationAlgorithm = if self.signature_version == 1 {
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        } else {
            &ring::signature::RSA_PKCS1_2048_8192_SHA256
        };
        ring::signature::UnparsedPublicKey::new(algorithm, rsa_public_key)
            .verify(signed.as_bytes(), &self.signature)
            .map_err(|_| Refusal::BadSignature)?;
        let at = iso_time(&self.timestamp).ok_or_else(|| Refusal::Unsigned("Timestamp is not a time".into()))?;
        check_timestamp(at.timestamp(), now, tolerance + Duration::from_secs(3600))
    }

    /// A notification's SES events (none for SNS's own notices, such as the
    /// "Successfully validated SNS topic" one).
    ///
    /// # Errors
    /// [`Refusal::Malformed`] for an SES event that is not SES's format.
    pub fn events(&self) -> Result<Verified, Refusal> {
        let nonce = Some(Nonce {
            scope: "sns".to_owned(),
            value: self.message_id.clone(),
        });
        let Ok(message) = serde_json::from_str::<Value>(&self.message) else {
            return Ok(Verified { events: vec![], nonce });
        };
        Ok(Verified {
            events: ses_events(&self.message_id, &message)?,
            nonce,
        })
    }
}

fn is_region(text: &str) -> bool {
    static REGION: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z]{2}(-gov)?-[a-z]+-\d+$").expect("a valid pattern"));
    REGION.is_match(text)
}

/// An SNS URL: https, no credentials, query (certificates) or fragment, on exactly
/// `sns.<region>.amazonaws.com` (or a trusted `host:port`); a certificate's path is
/// SNS's `/SimpleNotificationService-<hex>.pem`.
fn sns_url(text: &str, region: &str, trusted_hosts: &[String], certificate: bool) -> Result<reqwest::Url, Refusal> {
    let refuse = |why: &str| {
        Refusal::WrongOrigin(format!(
            "{} {why}",
            if certificate { "SigningCertURL" } else { "SubscribeURL" }
        ))
    };
    let url = reqwest::Url::parse(text).map_err(|_| refuse("is not a URL"))?;
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(refuse("must be plain https"));
    }
    let host = url.host_str().unwrap_or("");
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let trusted = trusted_hosts.iter().any(|t| t == &authority);
    if !trusted && (url.port().is_some() || host != format!("sns.{region}.amazonaws.com")) {
        return Err(refuse("is not on the topic's SNS host"));
    }
    if certificate {
        static PATH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"^/SimpleNotificationService-[0-9a-f]+\.pem$").expect("a valid pattern")
        });
        if url.query().is_some() || !PATH.is_match(url.path()) {
            return Err(refuse("is not an SNS certificate path"));
        }
    }
    Ok(url)
}

/// The RSA public key (PKCS#1 DER) of a PEM certificate.
///
/// # Errors
/// The text is not a PEM X.509 certificate with an RSA key.
pub fn rsa_key_of_certificate(pem: &str) -> Result<Vec<u8>, String> {
    use x509_cert::der::DecodePem as _;
    let certificate =
        x509_cert::Certificate::from_pem(pem.trim().as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let info = &certificate.tbs_certificate.subject_public_key_info;
    const RSA_ENCRYPTION: x509_cert::spki::ObjectIdentifier =
        x509_cert::spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err("the certificate's key is not RSA".into());
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "the certificate's key is malformed".into())
}

/// One event per recipient of an SES event (either dialect).
pub(crate) fn ses_events(sns_id: &str, message: &Value) -> Result<Vec<Event>, Refusal> {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(kind) = text(message, "eventType").or_else(|| text(message, "notificationType")) else {
        return Err(Refusal::Malformed(
            "an SES event has neither eventType nor notificationType".into(),
        ));
    };
    let mail = message.get("mail").unwrap_or(&Value::Null);
    let our_id = mail.pointer("/tags/postrunner_id/0").and_then(Value::as_str);
    let ses_id = mail.get("messageId").and_then(Value::as_str);
    let Some(Happened {
        kind: event_kind,
        class,
        detail,
        recipients,
        diagnostics,
    }) = what_happened(&kind, message, mail)
    else {
        return Ok(vec![]);
    };
    let at = detail
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(iso_time)
        .or_else(|| mail.get("timestamp").and_then(Value::as_str).and_then(iso_time))
        .ok_or_else(|| Refusal::Malformed(format!("an SES {kind} event has no time")))?;
    Ok(recipients
        .iter()
        .enumerate()
        .map(|(i, recipient)| {
            let mut event = Event::new(
                format!("{sns_id}:{}", recipient.to_lowercase()),
                event_kind,
                at,
                message.clone(),
            )
            .recipient(Some(recipient))
            .our_id(our_id)
            .provider_message_id(ses_id);
            if let Some(class) = class {
                event = event.bounce(class);
            }
            let diagnostic = diagnostics.get(i).cloned().flatten();
            event.diagnostic(diagnostic.as_deref())
        })
        .collect())
}

/// A bounce: hard when SES says Permanent, each bounced recipient with its diagnostic.
fn bounced(message: &Value) -> Happened<'_> {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let bounce = message.get("bounce").unwrap_or(&Value::Null);
    let class = if bounce.get("bounceType").and_then(Value::as_str) == Some("Permanent") {
        BounceClass::Hard
    } else {
        BounceClass::Soft
    };
    let list = bounce
        .get("bouncedRecipients")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let recipients = list.iter().filter_map(|r| text(r, "emailAddress")).collect();
    let diagnostics = list
        .iter()
        .filter(|r| r.get("emailAddress").and_then(Value::as_str).is_some())
        .map(|r| text(r, "diagnosticCode").or_else(|| text(r, "status")))
        .collect();
    Happened {
        kind: EventKind::Bounced,
        class: Some(class),
        detail: bounce,
        recipients,
        diagnostics,
    }
}

/// What one SES notification says happened, to whom.
struct Happened<'a> {
    kind: EventKind,
    class: Option<BounceClass>,
    /// The notification's own object (`bounce`, `delivery`, ...), for its timestamp.
    detail: &'a Value,
    recipients: Vec<String>,
    /// Per recipient, the bounce's diagnostic (bounces only).
    diagnostics: Vec<Option<String>>,
}

/// The event an SES notification of type `kind` reports, or None for one postrunner
/// does not record (an unknown type, a complaint marked not-spam).
fn what_happened<'a>(kind: &str, message: &'a Value, mail: &'a Value) -> Option<Happened<'a>> {
    let addresses = |list: Option<&Value>, field: Option<&str>| -> Vec<String> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| match field {
                        Some(field) => item.get(field).and_then(Value::as_str),
                        None => item.as_str(),
                    })
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let destination = || addresses(mail.get("destination"), None);
    let (kind, class, detail, recipients, diagnostics) = match kind {
        "Bounce" => return Some(bounced(message)),
        "Complaint" => {
            let complaint = message.get("complaint").unwrap_or(&Value::Null);
            if complaint.get("complaintFeedbackType").and_then(Value::as_str) == Some("not-spam") {
                return None;
            }
            let recipients = addresses(complaint.get("complainedRecipients"), Some("emailAddress"));
            (EventKind::Complained, None, complaint, recipients, vec![])
        }
        "Delivery" => {
            let delivery = message.get("delivery").unwrap_or(&Value::Null);
            let recipients = addresses(delivery.get("recipients"), None);
            (EventKind::Delivered, None, delivery, recipients, vec![])
        }
        "DeliveryDelay" => {
            let delay = message.get("deliveryDelay").unwrap_or(&Value::Null);
            let recipients = addresses(delay.get("delayedRecipients"), Some("emailAddress"));
            (EventKind::Deferred, None, delay, recipients, vec![])
        }
        "Reject" => (
            EventKind::Rejected,
            None,
            message.get("reject").unwrap_or(&Value::Null),
            destination(),
            vec![],
        ),
        "Open" => (
            EventKind::Opened,
            None,
            message.get("open").unwrap_or(&Value::Null),
            destination(),
            vec![],
        ),
        "Click" => (
            EventKind::Clicked,
            None,
            message.get("click").unwrap_or(&Value::Null),
            destination(),
            vec![],
        ),
        _ => return None,
    };
    Some(Happened {
        kind,
        class,
        detail,
        recipients,
        diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::sns_url;

    #[test]
    fn only_the_topics_own_sns_host_serves_certificates() {
        let ok = |url: &str| sns_url(url, "us-east-1", &[], true).is_ok();
        assert!(ok(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
        ));
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5.pem",
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-7ff5.pem",
            "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-7ff5.pem",
            "https://sns.s3-us-east-1.amazonaws.com/SimpleNotificationService-7ff5.pem",
            "https://s3.amazonaws.com/sns/SimpleNotificationService-7ff5.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-7ff5.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/other/SimpleNotificationService-7ff5.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5.pem#f",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(sns_url(
            "https://127.0.0.1:4443/SimpleNotificationService-01.pem",
            "us-east-1",
            &["127.0.0.1:4443".into()],
            true
        )
        .is_ok());
        assert!(sns_url(
            "https://127.0.0.1:4444/SimpleNotificationService-01.pem",
            "us-east-1",
            &["127.0.0.1:4443".into()],
            true
        )
        .is_err());
    }
}
