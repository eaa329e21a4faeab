//! Postmark: `POST {endpoint}/email` with `X-Postmark-Server-Token`; 200 with
//! `{"MessageID", "ErrorCode": 0}` on success; 422 with `{"ErrorCode", "Message"}` when
//! refused, where the code says whose problem it is. postrunner's id travels in
//! `Metadata` and the `X-Postrunner-Id` header.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::http::{exchange, status_error, truncate, Reply};
use super::{Accepted, Lookup, OutgoingMessage, Provider, SendError, Suppressed};
use crate::secret::Secret;

pub struct Postmark {
    name: String,
    endpoint: String,
    token: Secret<String>,
    http: reqwest::Client,
}

impl Postmark {
    pub fn new(name: &str, endpoint: &str, token: Secret<String>, http: reqwest::Client) -> Self {
        Self {
            name: name.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    pub fn body(message: &OutgoingMessage) -> Value {
        let headers: Vec<Value> = message
            .headers_to_send()
            .into_iter()
            .map(|(name, value)| json!({ "Name": name, "Value": value }))
            .collect();
        let mut body = json!({
            "From": message.from_header(),
            "To": message.to,
            "Subject": message.subject,
            "Headers": headers,
            "Metadata": { "postrunner_id": message.id.to_string() },
        });
        if let Some(text) = &message.text_body {
            body["TextBody"] = json!(text);
        }
        if let Some(html) = &message.html_body {
            body["HtmlBody"] = json!(html);
        }
        if let Some(tag) = &message.tag {
            body["Tag"] = json!(tag);
        }
        body
    }

    /// A 422's ErrorCode: 406 inactive recipient; 300 an invalid message; 10, 400, 401,
    /// 405, 412, 413 the account or token (the provider's trouble); 100 maintenance and
    /// 429 a rate limit.
    fn refused(&self, code: i64, text: String) -> SendError {
        let detail = format!("ErrorCode {code}: {}", truncate(&text, 300));
        let provider = self.name.clone();
        match code {
            406 => SendError::RecipientRefused { provider, detail },
            10 | 100 | 400 | 401 | 405 | 412 | 413 | 429 => SendError::Unavailable {
                provider,
                detail,
                retry_after: None,
                may_have_taken: false,
            },
            _ => SendError::Rejected { provider, detail },
        }
    }
}

#[async_trait]
impl Provider for Postmark {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        let request = self
            .http
            .post(format!("{}/email", self.endpoint))
            .header("X-Postmark-Server-Token", self.token.expose())
            .header("Accept", "application/json")
            .json(&Self::body(message));
        let Reply {
            status,
            headers,
            text,
            json: reply,
        } = exchange(&self.name, request).await?;
        let code = reply.as_ref().and_then(|r| r.get("ErrorCode")).and_then(Value::as_i64);
        let said = reply
            .as_ref()
            .and_then(|r| r.get("Message"))
            .and_then(Value::as_str)
            .map_or_else(|| text.clone(), str::to_owned);
        match (status.as_u16(), code) {
            (200, Some(0)) => {
                let id = reply
                    .as_ref()
                    .and_then(|r| r.get("MessageID"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Ok(Accepted {
                    provider_message_id: id.to_owned(),
                })
            }
            (422, Some(code)) => Err(self.refused(code, said)),
            _ => Err(status_error(&self.name, status, &headers, said)),
        }
    }

    fn can_look_up(&self) -> bool {
        true
    }

    /// `GET /messages/outbound?metadata_postrunner_id=<id>`: Postmark's outbound
    /// message search, by the metadata every send carries.
    async fn lookup(&self, message: &OutgoingMessage, _attempted_at: DateTime<Utc>) -> Result<Lookup, SendError> {
        let request = self
            .http
            .get(format!("{}/messages/outbound", self.endpoint))
            .header("X-Postmark-Server-Token", self.token.expose())
            .header("Accept", "application/json")
            .query(&[
                ("count", "1"),
                ("offset", "0"),
                ("metadata_postrunner_id", &message.id.to_string()),
            ]);
        let reply = exchange(&self.name, request).await?;
        if !reply.status.is_success() {
            return Err(status_error(&self.name, reply.status, &reply.headers, reply.text));
        }
        let found = reply
            .json
            .as_ref()
            .and_then(|r| r.get("TotalCount"))
            .and_then(Value::as_i64);
        if found.unwrap_or(0) < 1 {
            return Ok(Lookup::Unknown);
        }
        let id = reply
            .json
            .as_ref()
            .and_then(|r| r.pointer("/Messages/0/MessageID"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Lookup::Taken {
            provider_message_id: id,
        })
    }

    /// `GET /message-streams/outbound/suppressions/dump`: the transactional stream's
    /// suppressions (hard bounces, spam complaints, manual: the recipient's unsubscribe).
    async fn suppressed(&self, _domains: &[String]) -> Result<Option<Vec<Suppressed>>, SendError> {
        let request = self
            .http
            .get(format!("{}/message-streams/outbound/suppressions/dump", self.endpoint))
            .header("X-Postmark-Server-Token", self.token.expose())
            .header("Accept", "application/json");
        let reply = exchange(&self.name, request).await?;
        if !reply.status.is_success() {
            return Err(status_error(&self.name, reply.status, &reply.headers, reply.text));
        }
        let items = reply
            .json
            .as_ref()
            .and_then(|j| j.get("Suppressions"))
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(Some(
            items
                .iter()
                .filter_map(|i| {
                    let address = i.get("EmailAddress")?.as_str()?.to_owned();
                    let reason = match i.get("SuppressionReason").and_then(serde_json::Value::as_str) {
                        Some("HardBounce") => "hard_bounce",
                        Some("SpamComplaint") => "complaint",
                        _ => "unsubscribe",
                    };
                    Some(Suppressed { address, reason })
                })
                .collect(),
        ))
    }

    /// `GET /server`: the server the token belongs to.
    async fn probe(&self) -> Result<(), SendError> {
        let request = self
            .http
            .get(format!("{}/server", self.endpoint))
            .header("X-Postmark-Server-Token", self.token.expose())
            .header("Accept", "application/json");
        super::http::probe(&self.name, request).await
    }
}
