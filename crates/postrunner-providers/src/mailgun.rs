//! Mailgun: `POST {endpoint}/v3/{domain}/messages`, a form, HTTP Basic `api:<key>`;
//! 200 `{"id": "<...>", "message": "Queued. Thank you."}`. The sending domain is the
//! endpoint's path when it names one (`https://api.eu.mailgun.net/v3/mg.acme.test`),
//! else the sender address's domain. postrunner's id travels as `v:postrunner_id`
//! (echoed as `user-variables`) and the `X-Postrunner-Id` header.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::http::{domain_of, exchange, status_error, truncate, Reply};
use super::{Accepted, Lookup, OutgoingMessage, Provider, SendError, Suppressed};
use crate::secret::Secret;

pub struct Mailgun {
    name: String,
    /// Scheme and host, without a path.
    base: String,
    /// The sending domain, when the endpoint names one.
    domain: Option<String>,
    key: Secret<String>,
    http: reqwest::Client,
}

impl Mailgun {
    pub fn new(name: &str, endpoint: &str, key: Secret<String>, http: reqwest::Client) -> Self {
        let endpoint = endpoint.trim_end_matches('/');
        let (base, domain) = match endpoint.split_once("/v3/") {
            Some((base, domain)) if !domain.is_empty() => (base.to_owned(), Some(domain.to_owned())),
            _ => (endpoint.trim_end_matches("/v3").to_owned(), None),
        };
        Self {
            name: name.to_owned(),
            base,
            domain,
            key,
            http,
        }
    }

    pub fn url(&self, message: &OutgoingMessage) -> String {
        let domain = self.domain.as_deref().unwrap_or_else(|| domain_of(&message.from));
        format!("{}/v3/{domain}/messages", self.base)
    }

    pub fn form(message: &OutgoingMessage) -> Vec<(String, String)> {
        let mut form = vec![
            ("from".to_owned(), message.from_header()),
            ("to".to_owned(), message.to.clone()),
            ("subject".to_owned(), message.subject.clone()),
        ];
        if let Some(text) = &message.text_body {
            form.push(("text".to_owned(), text.clone()));
        }
        if let Some(html) = &message.html_body {
            form.push(("html".to_owned(), html.clone()));
        }
        for (name, value) in message.headers_to_send() {
            form.push((format!("h:{name}"), value));
        }
        form.push(("v:postrunner_id".to_owned(), message.id.to_string()));
        if let Some(tag) = &message.tag {
            form.push(("o:tag".to_owned(), tag.clone()));
        }
        form
    }
}

#[async_trait]
impl Provider for Mailgun {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        let request = self
            .http
            .post(self.url(message))
            .basic_auth("api", Some(self.key.expose()))
            .form(&Self::form(message));
        let Reply {
            status,
            headers,
            text,
            json: reply,
        } = exchange(&self.name, request).await?;
        let said = reply
            .as_ref()
            .and_then(|r| r.get("message"))
            .and_then(Value::as_str)
            .map_or_else(|| text.clone(), str::to_owned);
        if status.is_success() {
            // The id comes in angle brackets; events carry it without.
            let id = reply
                .as_ref()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Ok(Accepted {
                provider_message_id: id.trim_matches(|c| c == '<' || c == '>').to_owned(),
            });
        }
        if status.as_u16() == 420 {
            // The domain's sending limit: no message gets through until it resets.
            return Err(SendError::Unavailable {
                provider: self.name.clone(),
                detail: format!("HTTP 420: {}", truncate(&said, 300)),
                retry_after: super::http::retry_after(&headers),
                may_have_taken: false,
            });
        }
        Err(status_error(&self.name, status, &headers, said))
    }

    fn can_look_up(&self) -> bool {
        true
    }

    /// `GET /v3/{domain}/events?event=accepted&user-variables={"postrunner_id": id}`:
    /// Mailgun's event log, filtered by the variable every send carries.
    async fn lookup(&self, message: &OutgoingMessage, _attempted_at: DateTime<Utc>) -> Result<Lookup, SendError> {
        let domain = self.domain.as_deref().unwrap_or_else(|| domain_of(&message.from));
        let variables = serde_json::json!({ "postrunner_id": message.id.to_string() }).to_string();
        let request = self
            .http
            .get(format!("{}/v3/{domain}/events", self.base))
            .basic_auth("api", Some(self.key.expose()))
            .query(&[
                ("event", "accepted"),
                ("limit", "1"),
                ("user-variables", variables.as_str()),
            ]);
        let reply = exchange(&self.name, request).await?;
        if !reply.status.is_success() {
            return Err(status_error(&self.name, reply.status, &reply.headers, reply.text));
        }
        let Some(item) = reply.json.as_ref().and_then(|r| r.pointer("/items/0")) else {
            return Ok(Lookup::Unknown);
        };
        let id = item
            .pointer("/message/headers/message-id")
            .and_then(Value::as_str)
            .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_owned());
        Ok(Lookup::Taken {
            provider_message_id: id,
        })
    }

    /// `GET /v3/{domain}/{bounces,complaints,unsubscribes}` for the provider's domain or
    /// each sending domain, following `paging.next` until a page comes back empty.
    async fn suppressed(&self, domains: &[String]) -> Result<Option<Vec<Suppressed>>, SendError> {
        let domains: Vec<String> = match &self.domain {
            Some(domain) => vec![domain.clone()],
            None => domains.to_vec(),
        };
        let mut found = Vec::new();
        for domain in &domains {
            for (list, reason) in [
                ("bounces", "hard_bounce"),
                ("complaints", "complaint"),
                ("unsubscribes", "unsubscribe"),
            ] {
                let mut url = format!("{}/v3/{domain}/{list}?limit=1000", self.base);
                // Bounded, in case a server keeps answering with the same page.
                for _ in 0..10_000 {
                    let request = self.http.get(&url).basic_auth("api", Some(self.key.expose()));
                    let reply = exchange(&self.name, request).await?;
                    if !reply.status.is_success() {
                        return Err(status_error(&self.name, reply.status, &reply.headers, reply.text));
                    }
                    let json = reply.json.unwrap_or_default();
                    let items = json.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                    if items.is_empty() {
                        break;
                    }
                    found.extend(
                        items
                            .iter()
                            .filter_map(|i| i.get("address").and_then(Value::as_str))
                            .map(|address| Suppressed {
                                address: address.to_owned(),
                                reason,
                            }),
                    );
                    match json.pointer("/paging/next").and_then(Value::as_str) {
                        Some(next) if next != url => url = next.to_owned(),
                        _ => break,
                    }
                }
            }
        }
        Ok(Some(found))
    }

    /// `GET /v3/domains[/{domain}]`: the sending domain (or the account's domains).
    async fn probe(&self) -> Result<(), SendError> {
        let url = match &self.domain {
            Some(domain) => format!("{}/v3/domains/{domain}", self.base),
            None => format!("{}/v3/domains", self.base),
        };
        let request = self.http.get(url).basic_auth("api", Some(self.key.expose()));
        super::http::probe(&self.name, request).await
    }
}
