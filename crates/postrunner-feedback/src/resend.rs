//! Resend delivers its webhooks through Svix: headers svix-id, svix-timestamp and
//! svix-signature (one or more `v1,<base64>` HMAC-SHA256 signatures of
//! `id.timestamp.body` with the `whsec_` secret in the provider's `webhook_secret_env`
//! variable), five minutes' tolerance. Checked by the `standardwebhooks` crate (Svix's
//! own verifier of the scheme, which reads the unbranded `webhook-*` names). A svix-id
//! is honoured once. postrunner's id travels in `data.tags.postrunner_id`.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::{iso_time, BounceClass, Event, EventKind, Nonce, Refusal, Verified, Verifier, WebhookRequest};

/// Checks the signature and parses the event.
///
/// # Errors
/// [`Refusal`]: unsigned, bad signature, stale timestamp, malformed body or secret.
pub fn verify(verifier: &Verifier, request: WebhookRequest<'_>) -> Result<Verified, Refusal> {
    let mut headers = HeaderMap::new();
    for (svix, standard) in [
        ("svix-id", "webhook-id"),
        ("svix-timestamp", "webhook-timestamp"),
        ("svix-signature", "webhook-signature"),
    ] {
        let value = request
            .headers
            .get(svix)
            .or_else(|| request.headers.get(standard))
            .ok_or_else(|| Refusal::Unsigned(format!("header {svix} is missing")))?;
        headers.insert(standard, value.clone());
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| HeaderValue::to_str(v).ok())
        .filter(|id| !id.is_empty() && id.len() <= 300)
        .ok_or_else(|| Refusal::Unsigned("svix-id is not text".into()))?
        .to_owned();
    let webhook = standardwebhooks::Webhook::new(verifier.secret.expose())
        .map_err(|_| Refusal::NotConfigured("the Resend webhook secret is not a whsec_ secret".into()))?;
    webhook.verify(request.body, &headers).map_err(|error| match error {
        standardwebhooks::WebhookError::TimestampTooOldError | standardwebhooks::WebhookError::FutureTimestampError => {
            Refusal::Stale
        }
        standardwebhooks::WebhookError::InvalidSignature => Refusal::BadSignature,
        other => Refusal::Unsigned(other.to_string()),
    })?;

    let body: Value =
        serde_json::from_slice(request.body).map_err(|e| Refusal::Malformed(format!("not a JSON object: {e}")))?;
    Ok(Verified {
        events: event(&id, &body)?.into_iter().collect(),
        nonce: Some(Nonce::under_key(&verifier.secret, id)),
    })
}

pub(crate) fn event(id: &str, body: &Value) -> Result<Option<Event>, Refusal> {
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::Malformed("no \"type\"".into()))?;
    let data = body
        .get("data")
        .ok_or_else(|| Refusal::Malformed("no \"data\"".into()))?;
    let text = |pointer: &str| data.pointer(pointer).and_then(Value::as_str);
    let (kind, class) = match kind {
        "email.delivered" => (EventKind::Delivered, None),
        "email.delivery_delayed" => (EventKind::Deferred, None),
        "email.bounced" if text("/bounce/type") == Some("Permanent") => (EventKind::Bounced, Some(BounceClass::Hard)),
        "email.bounced" => (EventKind::Bounced, Some(BounceClass::Soft)),
        "email.complained" => (EventKind::Complained, None),
        "email.failed" | "email.suppressed" => (EventKind::Rejected, None),
        "email.opened" => (EventKind::Opened, None),
        "email.clicked" => (EventKind::Clicked, None),
        _ => return Ok(None),
    };
    let at = body
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(iso_time)
        .ok_or_else(|| Refusal::Malformed("no created_at".into()))?;
    let recipient = data
        .get("to")
        .and_then(|to| to.as_array().and_then(|a| a.first()).or(Some(to)))
        .and_then(Value::as_str);
    let mut event = Event::new(id.to_owned(), kind, at, body.clone())
        .recipient(recipient)
        .our_id(text("/tags/postrunner_id"))
        .provider_message_id(text("/email_id"));
    if let Some(class) = class {
        event = event.bounce(class);
    }
    let diagnostic = text("/bounce/message")
        .or(text("/failed/reason"))
        .or(text("/suppressed/message"));
    Ok(Some(event.diagnostic(diagnostic)))
}
