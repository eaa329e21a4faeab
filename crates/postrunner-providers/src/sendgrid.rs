//! SendGrid v3: `POST {endpoint}/v3/mail/send` with a bearer key; 202 and `X-Message-Id`
//! on success; errors as `{"errors": [{"message", "field"}]}`. postrunner's id travels in
//! `custom_args` (echoed in every event) and the `X-Postrunner-Id` header.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::http::{exchange, status_error, Reply};
use super::{Accepted, OutgoingMessage, Provider, SendError, Suppressed};
use crate::secret::Secret;

pub struct SendGrid {
    name: String,
    endpoint: String,
    key: Secret<String>,
    http: reqwest::Client,
}

impl SendGrid {
    pub fn new(name: &str, endpoint: &str, key: Secret<String>, http: reqwest::Client) -> Self {
        Self {
            name: name.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            key,
            http,
        }
    }

    /// The request body for `message`.
    pub fn body(message: &OutgoingMessage) -> Value {
        let mut from = json!({ "email": message.from });
        if let Some(name) = &message.from_name {
            from["name"] = json!(name);
        }
        let mut content = Vec::new();
        if let Some(text) = &message.text_body {
            content.push(json!({ "type": "text/plain", "value": text }));
        }
        if let Some(html) = &message.html_body {
            content.push(json!({ "type": "text/html", "value": html }));
        }
        let headers: Map<String, Value> = message
            .headers_to_send()
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        let mut body = json!({
            "personalizations": [{
                "to": [{ "email": message.to }],
                "custom_args": { "postrunner_id": message.id.to_string() },
            }],
            "from": from,
            "subject": message.subject,
            "content": content,
            "headers": headers,
        });
        if let Some(tag) = &message.tag {
            body["categories"] = json!([tag]);
        }
        body
    }
}

#[async_trait]
impl Provider for SendGrid {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        let request = self
            .http
            .post(format!("{}/v3/mail/send", self.endpoint))
            .bearer_auth(self.key.expose())
            .header("Accept", "application/json")
            .json(&Self::body(message));
        let Reply {
            status,
            headers,
            text,
            json,
        } = exchange(&self.name, request).await?;
        if status.is_success() {
            // The id is occasionally missing; our own id (custom_args) still matches events.
            let id = headers
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Ok(Accepted {
                provider_message_id: id,
            });
        }
        let detail = json
            .and_then(|v| {
                let errors = v.get("errors")?.as_array()?.iter();
                let messages: Vec<String> = errors
                    .filter_map(|e| {
                        let message = e.get("message")?.as_str()?;
                        Some(match e.get("field").and_then(Value::as_str) {
                            Some(field) => format!("{field}: {message}"),
                            None => message.to_owned(),
                        })
                    })
                    .collect();
                (!messages.is_empty()).then(|| messages.join("; "))
            })
            .unwrap_or(text);
        Err(status_error(&self.name, status, &headers, detail))
    }

    /// `GET /v3/suppression/{bounces,spam_reports,unsubscribes}` (global unsubscribes),
    /// 500 at a time (`limit`, `offset`).
    async fn suppressed(&self, _domains: &[String]) -> Result<Option<Vec<Suppressed>>, SendError> {
        const PAGE: usize = 500;
        let mut found = Vec::new();
        for (list, reason) in [
            ("bounces", "hard_bounce"),
            ("spam_reports", "complaint"),
            ("unsubscribes", "unsubscribe"),
        ] {
            let mut offset = 0;
            loop {
                let request = self
                    .http
                    .get(format!("{}/v3/suppression/{list}", self.endpoint))
                    .bearer_auth(self.key.expose())
                    .query(&[("limit", PAGE), ("offset", offset)]);
                let reply = exchange(&self.name, request).await?;
                if !reply.status.is_success() {
                    return Err(status_error(&self.name, reply.status, &reply.headers, reply.text));
                }
                let items = reply
                    .json
                    .as_ref()
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                found.extend(
                    items
                        .iter()
                        .filter_map(|i| i.get("email").and_then(Value::as_str))
                        .map(|address| Suppressed {
                            address: address.to_owned(),
                            reason,
                        }),
                );
                if items.len() < PAGE {
                    break;
                }
                offset += PAGE;
            }
        }
        Ok(Some(found))
    }

    /// `GET /v3/scopes`: the key's permissions.
    async fn probe(&self) -> Result<(), SendError> {
        let request = self
            .http
            .get(format!("{}/v3/scopes", self.endpoint))
            .bearer_auth(self.key.expose());
        super::http::probe(&self.name, request).await
    }
}
