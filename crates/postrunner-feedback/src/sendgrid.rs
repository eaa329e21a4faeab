//! SendGrid's signed Event Webhook: ECDSA P-256 with SHA-256 over the signed timestamp
//! followed by the raw body; the verification key is the base64 DER
//! SubjectPublicKeyInfo the SendGrid console shows, held in the provider's
//! `webhook_secret_env` variable. The body is a JSON array of events; each carries
//! postrunner's id as the custom arg `postrunner_id`.

use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde_json::Value;

use super::{check_timestamp, unix_time, BounceClass, Event, EventKind, Refusal, Verified, Verifier, WebhookRequest};

const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

/// Checks the signature and parses the events.
///
/// # Errors
/// [`Refusal`]: unsigned, bad signature, stale timestamp, malformed body or key.
pub fn verify(verifier: &Verifier, request: WebhookRequest<'_>) -> Result<Verified, Refusal> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Refusal::Unsigned(format!("header {name} is missing")))
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(header(SIGNATURE_HEADER)?.trim())
        .map_err(|_| Refusal::Unsigned("the signature is not base64".into()))?;
    let timestamp = header(TIMESTAMP)?.trim();
    let at: i64 = timestamp
        .parse()
        .map_err(|_| Refusal::Unsigned("the timestamp is not a number".into()))?;

    let key = public_key(verifier.secret.expose())?;
    let mut signed = Vec::with_capacity(timestamp.len() + request.body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(request.body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
        .verify(&signed, &signature)
        .map_err(|_| Refusal::BadSignature)?;
    check_timestamp(at, request.now, verifier.tolerance)?;

    let batch: Vec<Value> = serde_json::from_slice(request.body)
        .map_err(|e| Refusal::Malformed(format!("not a JSON array of events: {e}")))?;
    let events = batch.into_iter().filter_map(event).collect::<Result<_, _>>()?;
    Ok(Verified { events, nonce: None })
}

/// The EC point of the verification key, from base64 DER SubjectPublicKeyInfo (the
/// form SendGrid shows; PEM armour is accepted too).
fn public_key(text: &str) -> Result<Vec<u8>, Refusal> {
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| Refusal::NotConfigured("the SendGrid verification key is not base64 DER".into()))?;
    let info = spki::SubjectPublicKeyInfoRef::try_from(der.as_slice())
        .map_err(|_| Refusal::NotConfigured("the SendGrid verification key is not a public key".into()))?;
    const EC_PUBLIC_KEY: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    if info.algorithm.oid != EC_PUBLIC_KEY {
        return Err(Refusal::NotConfigured(
            "the SendGrid verification key is not an EC key".into(),
        ));
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Refusal::NotConfigured("the SendGrid verification key is malformed".into()))
}

/// One element of the batch; `None` for the kinds postrunner does not record
/// (processed, resubscribes).
pub(crate) fn event(value: Value) -> Option<Result<Event, Refusal>> {
    let text = |name: &str| value.get(name).and_then(Value::as_str);
    let Some(name) = text("event") else {
        return Some(Err(Refusal::Malformed("an event has no \"event\"".into())));
    };
    let reason = text("reason").or(text("response"));
    let (kind, class) = match name {
        "delivered" => (EventKind::Delivered, None),
        "deferred" => (EventKind::Deferred, None),
        "bounce" if text("type") == Some("blocked") => (EventKind::Bounced, Some(BounceClass::Soft)),
        "bounce" => (EventKind::Bounced, Some(BounceClass::Hard)),
        "dropped" => match reason.unwrap_or("") {
            "Bounced Address" | "Invalid" => (EventKind::Bounced, Some(BounceClass::Hard)),
            "Spam Reporting Address" => (EventKind::Complained, None),
            "Unsubscribed Address" => (EventKind::Unsubscribed, None),
            _ => (EventKind::Rejected, None),
        },
        "spamreport" => (EventKind::Complained, None),
        "unsubscribe" | "group_unsubscribe" => (EventKind::Unsubscribed, None),
        "open" => (EventKind::Opened, None),
        "click" => (EventKind::Clicked, None),
        _ => return None,
    };
    let Some(at) = value.get("timestamp").and_then(Value::as_f64).and_then(unix_time) else {
        return Some(Err(Refusal::Malformed(format!("a {name} event has no timestamp"))));
    };
    let key = match text("sg_event_id") {
        Some(id) if !id.is_empty() && id.len() <= 300 => id.to_owned(),
        _ => return Some(Err(Refusal::Malformed(format!("a {name} event has no sg_event_id")))),
    };
    // sg_message_id is the send's X-Message-Id followed by ".filter..." routing parts.
    let provider_id = text("sg_message_id").map(|id| id.split('.').next().unwrap_or(id));
    let mut event = Event::new(key, kind, at, value.clone())
        .recipient(text("email"))
        .our_id(text("postrunner_id"))
        .provider_message_id(provider_id);
    if let Some(class) = class {
        event = event.bounce(class);
    }
    Some(Ok(event.diagnostic(reason.or(text("status")))))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use postrunner_providers::secret::Secret;

    /// The vector of SendGrid's own Node library (providers.md 1.4).
    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SIGNATURE: &str =
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const BODY: &str = r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;

    fn check(timestamp: &str, body: &str) -> Result<Verified, Refusal> {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, SIGNATURE.parse().unwrap());
        headers.insert(TIMESTAMP, timestamp.parse().unwrap());
        let verifier = Verifier {
            secret: Secret::new(KEY.to_owned()),
            tolerance: Duration::from_secs(1),
        };
        let now = chrono::DateTime::from_timestamp(1588788367, 0).unwrap();
        verify(
            &verifier,
            WebhookRequest {
                headers: &headers,
                body: body.as_bytes(),
                now,
            },
        )
    }

    #[test]
    fn sendgrids_own_test_vector_verifies_and_any_change_does_not() {
        // The vector's body is one object, not a batch: its signature passes, the
        // parse then refuses it as malformed.
        assert!(matches!(check("1588788367", BODY), Err(Refusal::Malformed(_))));
        assert!(matches!(check("1588788368", BODY), Err(Refusal::BadSignature)));
        assert!(matches!(
            check("1588788367", &BODY.replace("test_event", "test_evenT")),
            Err(Refusal::BadSignature)
        ));
    }

    #[test]
    fn a_pem_armoured_key_is_accepted_too() {
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &KEY[..64],
            &KEY[64..]
        );
        assert_eq!(public_key(&pem).unwrap(), public_key(KEY).unwrap());
        assert!(matches!(public_key("not a key"), Err(Refusal::NotConfigured(_))));
    }
}
