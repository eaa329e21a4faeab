//! Resend: `POST {endpoint}/emails` with a bearer key and an `Idempotency-Key` derived
//! from postrunner's message id, so a retried send (after a timeout) is not sent twice
//! within Resend's 24 h window; 200 `{"id"}`; errors `{"statusCode", "name", "message"}`.
//! postrunner's id travels in `tags` and the `X-Postrunner-Id` header.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::http::{exchange, status_error, truncate, Reply};
use super::{Accepted, Lookup, OutgoingMessage, Provider, SendError};
use crate::secret::Secret;

pub struct Resend {
    name: String,
    endpoint: String,
    key: Secret<String>,
    http: reqwest::Client,
}

impl Resend {
    pub fn new(name: &str, endpoint: &str, key: Secret<String>, http: reqwest::Client) -> Self {
        Self {
            name: name.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            key,
            http,
        }
    }

    /// One key per message: every attempt at the same message is the same request.
    pub fn idempotency_key(message: &OutgoingMessage) -> String {
        format!("postrunner/{}", message.id)
    }

    pub fn body(message: &OutgoingMessage) -> Value {
        let headers: Map<String, Value> = message
            .headers_to_send()
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        let mut body = json!({
            "from": message.from_header(),
            "to": [message.to],
            "subject": message.subject,
            "headers": headers,
            "tags": [{ "name": "postrunner_id", "value": message.id.to_string() }],
        });
        if let Some(text) = &message.text_body {
            body["text"] = json!(text);
        }
        if let Some(html) = &message.html_body {
            body["html"] = json!(html);
        }
        body
    }
}

#[async_trait]
impl Provider for Resend {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        let request = self
            .http
            .post(format!("{}/emails", self.endpoint))
            .bearer_auth(self.key.expose())
            .header("Idempotency-Key", Self::idempotency_key(message))
            .json(&Self::body(message));
        let Reply {
            status,
            headers,
            text,
            json: reply,
        } = exchange(&self.name, request).await?;
        if status.is_success() {
            let id = reply.as_ref().and_then(|r| r.get("id")).and_then(Value::as_str);
            return Ok(Accepted {
                provider_message_id: id.unwrap_or_default().to_owned(),
            });
        }
        let name = reply
            .as_ref()
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let said = reply
            .as_ref()
            .and_then(|r| r.get("message"))
            .and_then(Value::as_str)
            .map_or_else(|| text.clone(), str::to_owned);
        let detail = format!("HTTP {} {name}: {}", status.as_u16(), truncate(&said, 300));
        match name {
            // Resend already has a request with this message's key: the first is still
            // running, or an earlier attempt (from another sender address) was taken.
            // Either way it may be sent: uncertain, never a failure or a resend elsewhere.
            "concurrent_idempotent_requests" | "invalid_idempotent_request" => Err(SendError::Unavailable {
                provider: self.name.clone(),
                detail,
                retry_after: None,
                may_have_taken: true,
            }),
            // A daily or monthly quota is not fixed by retrying this message elsewhere soon.
            "daily_quota_exceeded" | "monthly_quota_exceeded" => Err(SendError::Unavailable {
                provider: self.name.clone(),
                detail,
                retry_after: super::http::retry_after(&headers),
                may_have_taken: false,
            }),
            _ => Err(status_error(&self.name, status, &headers, format!("{name}: {said}"))),
        }
    }

    fn can_look_up(&self) -> bool {
        true
    }

    /// Resend keeps an `Idempotency-Key` for 24 hours: the very same request again gets
    /// the first one's answer (and id) if Resend took it, and is sent now if it did not.
    /// Either way Resend then has the message once. Past 23 hours the key may be
    /// forgotten, and a repeat could send it twice: no lookup then.
    async fn lookup(&self, message: &OutgoingMessage, attempted_at: DateTime<Utc>) -> Result<Lookup, SendError> {
        if Utc::now() - attempted_at > chrono::Duration::hours(23) {
            return Ok(Lookup::Unknown);
        }
        match self.send(message).await {
            Ok(accepted) => Ok(Lookup::Taken {
                provider_message_id: Some(accepted.provider_message_id).filter(|id| !id.is_empty()),
            }),
            // Still running at Resend, or a request with this key but another body:
            // Resend has something under this key, but cannot say more.
            Err(SendError::Unavailable {
                may_have_taken: true, ..
            }) => Ok(Lookup::Unknown),
            Err(e) => Err(e),
        }
    }

    /// `GET /domains`: the account's domains.
    async fn probe(&self) -> Result<(), SendError> {
        let request = self
            .http
            .get(format!("{}/domains", self.endpoint))
            .bearer_auth(self.key.expose());
        super::http::probe(&self.name, request).await
    }
}
