//! Postmark's webhooks are not signed: the webhook URL carries HTTP Basic credentials
//! (`https://user:password@host/webhooks/<provider>`), which Postmark sends as an
//! `Authorization: Basic` header. The provider's `webhook_secret_env` variable holds
//! `user:password`; the comparison takes the same time whatever matches. One JSON
//! event per request; postrunner's id travels in `Metadata.postrunner_id`.

use base64::Engine as _;
use serde_json::Value;

use super::{iso_time, BounceClass, Event, EventKind, Refusal, Verified, Verifier, WebhookRequest};

/// Checks the credentials and parses the event.
///
/// # Errors
/// [`Refusal`]: no or wrong credentials, malformed body.
pub fn verify(verifier: &Verifier, request: WebhookRequest<'_>) -> Result<Verified, Refusal> {
    let given = request
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(|| Refusal::Unsigned("no Basic credentials".into()))?;
    let given = base64::engine::general_purpose::STANDARD
        .decode(given.trim())
        .map_err(|_| Refusal::Unsigned("the credentials are not base64".into()))?;
    // Equal-time comparison of the whole credentials (ring's, over HMACs of both sides:
    // lengths leak nothing either).
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"postrunner postmark credentials");
    let expected = ring::hmac::sign(&key, verifier.secret.expose().as_bytes());
    ring::hmac::verify(&key, &given, expected.as_ref()).map_err(|_| Refusal::BadSignature)?;

    let body: Value =
        serde_json::from_slice(request.body).map_err(|e| Refusal::Malformed(format!("not a JSON object: {e}")))?;
    Ok(Verified {
        events: event(&body)?.into_iter().collect(),
        nonce: None,
    })
}

pub(crate) fn event(body: &Value) -> Result<Option<Event>, Refusal> {
    let text = |name: &str| body.get(name).and_then(Value::as_str);
    let record = text("RecordType").ok_or_else(|| Refusal::Malformed("no RecordType".into()))?;
    let (kind, class) = match record {
        "Delivery" => (EventKind::Delivered, None),
        "SpamComplaint" => (EventKind::Complained, None),
        "Open" => (EventKind::Opened, None),
        "Click" => (EventKind::Clicked, None),
        "Bounce" => match text("Type").unwrap_or("") {
            "HardBounce" | "BadEmailAddress" => (EventKind::Bounced, Some(BounceClass::Hard)),
            "SoftBounce" | "Transient" | "DnsError" => (EventKind::Bounced, Some(BounceClass::Soft)),
            "SpamComplaint" | "SpamNotification" => (EventKind::Complained, None),
            "Unsubscribe" => (EventKind::Unsubscribed, None),
            "Blocked" | "DMARCPolicy" | "ManuallyDeactivated" => (EventKind::Rejected, None),
            _ => return Ok(None),
        },
        "SubscriptionChange" if body.get("SuppressSending").and_then(Value::as_bool) == Some(true) => {
            match text("SuppressionReason").unwrap_or("") {
                "HardBounce" => (EventKind::Bounced, Some(BounceClass::Hard)),
                "SpamComplaint" => (EventKind::Complained, None),
                _ => (EventKind::Unsubscribed, None),
            }
        }
        _ => return Ok(None),
    };
    let at = ["BouncedAt", "DeliveredAt", "ReceivedAt", "ChangedAt"]
        .iter()
        .find_map(|name| text(name).and_then(iso_time))
        .ok_or_else(|| Refusal::Malformed(format!("a {record} has no time")))?;
    let recipient = text("Email").or(text("Recipient"));
    let message_id = text("MessageID");
    // Bounces and complaints have their own ID; deliveries, opens and clicks are one
    // per message, recipient and moment.
    let key = match body.get("ID").and_then(Value::as_i64) {
        Some(id) => format!("{record}:{id}"),
        None => format!(
            "{record}:{}:{}:{}",
            message_id.unwrap_or(""),
            recipient.unwrap_or(""),
            at.timestamp_millis()
        ),
    };
    let mut event = Event::new(key, kind, at, body.clone())
        .recipient(recipient)
        .our_id(body.pointer("/Metadata/postrunner_id").and_then(Value::as_str))
        .provider_message_id(message_id);
    if let Some(class) = class {
        event = event.bounce(class);
    }
    Ok(Some(event.diagnostic(text("Details").or(text("Description")))))
}
