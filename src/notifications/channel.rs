//! Delivering a rendered notification through one channel of
//! `postrunner.notification_channels`: email through a configured provider, a
//! Slack-compatible JSON webhook, or SMS through Twilio's Messages API.
//!
//! A delivery that may have arrived (a timeout) is retried like one that did not: a
//! second copy of an alert is better than none. Webhook receivers can tell a retry by
//! its `Idempotency-Key` header, the same on every attempt.

use std::time::Duration;

use serde_json::{json, Value};

use super::render::Rendered;
use super::Change;
use postrunner_providers::secret::Secret;
use postrunner_providers::{Directory, OutgoingMessage};

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Twilio splits longer bodies; 1,600 characters is its limit.
const SMS_MAX_CHARS: usize = 1_600;
/// Twilio's API, unless the channel names another (`config.api_base`).
const TWILIO_API: &str = "https://api.twilio.com";

/// A channel as configured (validated by the table's trigger).
#[derive(Clone, Debug)]
pub enum Channel {
    Email {
        to: String,
        from: String,
        provider: String,
    },
    Webhook {
        url: UrlSource,
    },
    Sms {
        to: String,
        from: String,
        account_sid: String,
        auth_token_env: String,
        api_base: String,
    },
}

/// A webhook URL, or the environment variable holding it (Slack's URLs are secrets).
#[derive(Clone, Debug)]
pub enum UrlSource {
    Plain(String),
    Env(String),
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The channel's row does not describe a usable channel (it changed since the
    /// trigger checked it, or a provider it names is gone).
    #[error("channel misconfigured: {0}")]
    Config(String),
    /// The receiver refused or could not be reached; may work later.
    #[error("{0}")]
    Failed(String),
}

impl Channel {
    /// Reads a channel from its row's `kind`, `target` and `config`.
    ///
    /// # Errors
    /// [`DeliveryError::Config`] when a field the kind needs is missing.
    pub fn from_row(kind: &str, target: &str, config: &Value) -> Result<Self, DeliveryError> {
        let field = |name: &str| {
            config
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| DeliveryError::Config(format!("config.{name} is missing")))
        };
        match kind {
            "email" => Ok(Self::Email {
                to: target.to_owned(),
                from: field("from")?,
                provider: field("provider")?,
            }),
            "webhook" => Ok(Self::Webhook {
                url: match field("url") {
                    Ok(url) => UrlSource::Plain(url),
                    Err(_) => UrlSource::Env(field("url_env")?),
                },
            }),
            "sms" => Ok(Self::Sms {
                to: target.to_owned(),
                from: field("from")?,
                account_sid: field("account_sid")?,
                auth_token_env: field("auth_token_env")?,
                api_base: field("api_base").unwrap_or_else(|_| TWILIO_API.to_owned()),
            }),
            other => Err(DeliveryError::Config(format!("unknown channel kind {other}"))),
        }
    }

    /// `email`, `webhook` or `sms`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Email { .. } => "email",
            Self::Webhook { .. } => "webhook",
            Self::Sms { .. } => "sms",
        }
    }

    /// Delivers `rendered` (the words of `changes`); `key` identifies the notification
    /// batch, the same on every attempt.
    ///
    /// # Errors
    /// [`DeliveryError`]: the receiver did not confirm.
    pub async fn deliver(
        &self,
        providers: &Directory,
        key: &str,
        rendered: &Rendered,
        changes: &[Change],
    ) -> Result<(), DeliveryError> {
        match self {
            Self::Email { to, from, provider } => {
                let adapter = providers
                    .get(provider)
                    .await
                    .map_err(|e| DeliveryError::Failed(e.to_string()))?;
                let message = OutgoingMessage {
                    id: uuid::Uuid::new_v4(),
                    from: from.clone(),
                    from_name: Some("postrunner alerts".to_owned()),
                    to: to.clone(),
                    subject: rendered.summary.clone(),
                    text_body: Some(rendered.text.clone()),
                    html_body: None,
                    headers: vec![("X-Postrunner-Notification".to_owned(), key.to_owned())],
                    unsubscribe_url: None,
                    unsubscribe_mailto: None,
                    tag: Some("postrunner-alerts".to_owned()),
                };
                adapter
                    .send(&message)
                    .await
                    .map(|_| ())
                    .map_err(|e| DeliveryError::Failed(e.to_string()))
            }
            Self::Webhook { url } => {
                let url = match url {
                    UrlSource::Plain(url) => Secret::new(url.clone()),
                    UrlSource::Env(variable) => {
                        Secret::from_env(variable).map_err(|e| DeliveryError::Failed(e.to_string()))?
                    }
                };
                let body = json!({
                    "text": rendered.text,
                    "postrunner": { "summary": rendered.summary, "changes": changes.iter().map(change_json).collect::<Vec<_>>() },
                });
                let request = client().post(url.expose()).header("Idempotency-Key", key).json(&body);
                answered(request.send().await).await
            }
            Self::Sms {
                to,
                from,
                account_sid,
                auth_token_env,
                api_base,
            } => {
                let token = Secret::from_env(auth_token_env).map_err(|e| DeliveryError::Failed(e.to_string()))?;
                let body: String = rendered.text.chars().take(SMS_MAX_CHARS).collect();
                let url = format!(
                    "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                    api_base.trim_end_matches('/')
                );
                let request = client().post(url).basic_auth(account_sid, Some(token.expose())).form(&[
                    ("To", to.as_str()),
                    ("From", from.as_str()),
                    ("Body", body.as_str()),
                ]);
                answered(request.send().await).await
            }
        }
    }
}

fn client() -> reqwest::Client {
    postrunner_providers::http::client(TIMEOUT)
}

fn change_json(change: &Change) -> Value {
    json!({
        "id": change.id,
        "transition": change.transition,
        "kind": change.kind,
        "subject": change.subject,
        "detail": change.detail,
        "fired_at": change.fired_at,
        "resolved_at": change.resolved_at,
    })
}

/// A 2xx answer is a delivery; anything else (with the start of its body) is not.
/// Errors never carry the URL (it may be a secret).
async fn answered(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), DeliveryError> {
    let response = sent.map_err(|e| DeliveryError::Failed(format!("no answer: {}", e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(DeliveryError::Failed(format!(
        "answered {status}: {}",
        postrunner_providers::http::truncate(&body, 200)
    )))
}
