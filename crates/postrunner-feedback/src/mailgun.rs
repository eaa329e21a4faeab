//! Mailgun's webhooks: one JSON event per request, signed by HMAC-SHA256 of the
//! timestamp followed by the token, with the webhook signing key (the provider's
//! `webhook_secret_env` variable). The HMAC does not cover the body, so a token is
//! honoured once (stored with the events, sql/definitions/330_feedback_record_events.sql) and the
//! timestamp must be recent.

use ring::hmac;
use serde_json::Value;

use super::{
    check_timestamp, unix_time, BounceClass, Event, EventKind, Nonce, Refusal, Verified, Verifier, WebhookRequest,
};

/// Checks the signature and parses the event.
///
/// # Errors
/// [`Refusal`]: unsigned, bad signature, stale timestamp, malformed body.
pub fn verify(verifier: &Verifier, request: WebhookRequest<'_>) -> Result<Verified, Refusal> {
    let body: Value =
        serde_json::from_slice(request.body).map_err(|_| Refusal::Unsigned("the body is not Mailgun's JSON".into()))?;
    let signature = body
        .get("signature")
        .ok_or_else(|| Refusal::Unsigned("no \"signature\" object".into()))?;
    let field = |name: &str| {
        signature
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Refusal::Unsigned(format!("signature.{name} is missing")))
    };
    let (timestamp, token, given) = (field("timestamp")?, field("token")?, field("signature")?);
    let given = hex_decode(given).ok_or_else(|| Refusal::Unsigned("signature.signature is not hex".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, verifier.secret.expose().as_bytes());
    hmac::verify(&key, format!("{timestamp}{token}").as_bytes(), &given).map_err(|_| Refusal::BadSignature)?;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| Refusal::Unsigned("signature.timestamp is not a number".into()))?;
    check_timestamp(at, request.now, verifier.tolerance)?;
    if token.is_empty() || token.len() > 300 {
        return Err(Refusal::Unsigned("signature.token has an odd length".into()));
    }

    let data = body
        .get("event-data")
        .ok_or_else(|| Refusal::Malformed("no \"event-data\"".into()))?;
    Ok(Verified {
        events: event(data)?.into_iter().collect(),
        nonce: Some(Nonce::under_key(&verifier.secret, token)),
    })
}

pub(crate) fn event(data: &Value) -> Result<Option<Event>, Refusal> {
    let text = |name: &str| data.get(name).and_then(Value::as_str);
    let name = text("event").ok_or_else(|| Refusal::Malformed("event-data has no \"event\"".into()))?;
    let reason = text("reason").unwrap_or("");
    let (kind, class) = match name {
        "delivered" => (EventKind::Delivered, None),
        "failed" if text("severity") == Some("permanent") => match reason {
            "suppress-complaint" => (EventKind::Complained, None),
            "suppress-unsubscribe" => (EventKind::Unsubscribed, None),
            _ => (EventKind::Bounced, Some(BounceClass::Hard)),
        },
        "failed" => (EventKind::Deferred, None),
        "rejected" => (EventKind::Rejected, None),
        "complained" => (EventKind::Complained, None),
        "unsubscribed" => (EventKind::Unsubscribed, None),
        "opened" => (EventKind::Opened, None),
        "clicked" => (EventKind::Clicked, None),
        _ => return Ok(None),
    };
    let timestamp = data.get("timestamp").and_then(Value::as_f64);
    let at = timestamp
        .and_then(unix_time)
        .ok_or_else(|| Refusal::Malformed("event-data has no timestamp".into()))?;
    // Mailgun's event id is unique within a day only: with its time, for good.
    let id = text("id").ok_or_else(|| Refusal::Malformed("event-data has no id".into()))?;
    let status = data.get("delivery-status");
    let diagnostic = status
        .and_then(|s| s.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()))
        .or_else(|| status.and_then(|s| s.get("description").and_then(Value::as_str)))
        .or(Some(reason).filter(|r| !r.is_empty()));
    let message_id = data.pointer("/message/headers/message-id").and_then(Value::as_str);
    let mut event = Event::new(
        format!("{id}@{}", timestamp.unwrap_or_default()),
        kind,
        at,
        data.clone(),
    )
    .recipient(text("recipient"))
    .our_id(data.pointer("/user-variables/postrunner_id").and_then(Value::as_str))
    .provider_message_id(message_id);
    if let Some(class) = class {
        event = event.bounce(class);
    }
    Ok(Some(event.diagnostic(diagnostic)))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use postrunner_providers::secret::Secret;

    fn check(key: &str, body: serde_json::Value) -> Result<Verified, Refusal> {
        let headers = axum::http::HeaderMap::new();
        let verifier = Verifier {
            secret: Secret::new(key.to_owned()),
            tolerance: Duration::from_secs(60),
        };
        let now = chrono::DateTime::from_timestamp(1534108637, 0).unwrap();
        let body = body.to_string();
        verify(
            &verifier,
            WebhookRequest {
                headers: &headers,
                body: body.as_bytes(),
                now,
            },
        )
    }

    /// The vector computed with Python's hmac (providers.md 2.3).
    #[test]
    fn the_documented_vector_verifies_with_its_key_only() {
        let body = serde_json::json!({
            "signature": {"timestamp": "1534108637", "token": "651869375b9df3c98fc15c4889b102119add1235c38fc92824",
                          "signature": "1331b074cbc554d63c4f9776d537d605df89c7b18ba334adfb571bfbd97656d2"},
            "event-data": {"event": "delivered", "timestamp": 1534108637.5, "id": "e1", "recipient": "a@b.example"}
        });
        let verified = check("key-1234", body.clone()).unwrap();
        let nonce = verified.nonce.unwrap();
        assert_eq!(nonce.value, "651869375b9df3c98fc15c4889b102119add1235c38fc92824");
        assert!(nonce.scope.starts_with("key:") && !nonce.scope.contains("key-1234"));
        assert_eq!(verified.events[0].kind, EventKind::Delivered);
        assert!(matches!(check("key-1235", body), Err(Refusal::BadSignature)));
    }
}
