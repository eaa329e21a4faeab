//! `POST /webhooks/<provider name>`: one URL per provider row. The row says which
//! kind of provider it is (so how its requests are signed) and which environment
//! variable holds the secret that checks them; the request is answered 2xx only once
//! its events are committed.
//!
//! Answers: 200 recorded (also for events already recorded: a provider's retry);
//! 400 a signed but malformed payload; 401 missing or bad signature or credentials;
//! 403 a stale timestamp, a replayed request or a wrong origin (an SNS topic the row
//! does not allow); 404 no such provider, or one that has
//! no webhooks; 413 a body over the limit; 503 the secret is not configured or the
//! database is unavailable (the provider retries; nothing was stored).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::provider_rows::ProviderRow;
use super::{ApiError, AppState};
use postrunner_feedback::store::{self, StoreError};
use postrunner_feedback::{self, Refusal, Verifier, WebhookRequest};
use postrunner_providers::secret::Secret;

pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<store::Recorded>, ApiError> {
    let body = body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let row = state.providers.get(&state.pool, &provider).await.map_err(unavailable)?;
    let Some(ProviderRow {
        kind,
        secret_env,
        topics,
    }) = row
    else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such provider"));
    };
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
        now: chrono::Utc::now(),
    };
    if kind == "ses" {
        return receive_sns(&state, &provider, &topics, request).await;
    }
    let verify = match kind.as_str() {
        "sendgrid" => postrunner_feedback::sendgrid::verify,
        "mailgun" => postrunner_feedback::mailgun::verify,
        "postmark" => postrunner_feedback::postmark::verify,
        "resend" => postrunner_feedback::resend::verify,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("{kind} providers have no webhooks here"),
            ))
        }
    };
    let secret = secret_env
        .as_deref()
        .ok_or_else(|| not_configured(&provider, "the provider row names no webhook_secret_env"))
        .and_then(|variable| Secret::from_env(variable).map_err(|e| not_configured(&provider, &e.to_string())))?;
    let verifier = Verifier {
        secret,
        tolerance: state.config.webhook_tolerance,
    };
    let verified = verify(&verifier, request).map_err(|refusal| refused(&provider, refusal))?;
    record(&state, &provider, &verified).await
}

async fn record(
    state: &AppState,
    provider: &str,
    verified: &postrunner_feedback::Verified,
) -> Result<Json<store::Recorded>, ApiError> {
    match store::record(&state.pool, provider, verified).await {
        Ok(recorded) => {
            let mut kinds = std::collections::BTreeMap::<String, u64>::new();
            for event in &verified.events {
                let kind = serde_json::to_value(event.kind).ok();
                *kinds
                    .entry(kind.as_ref().and_then(|k| k.as_str()).unwrap_or("other").to_owned())
                    .or_default() += 1;
            }
            for (kind, n) in kinds {
                crate::metrics::process::events_stored(provider, &kind, n);
            }
            Ok(Json(recorded))
        }
        Err(StoreError::Replayed) => Err(refused(provider, Refusal::Replayed)),
        Err(StoreError::Database(error)) => Err(unavailable(error)),
    }
}

/// Amazon SES through SNS: origin first (topic, certificate URL), then the signature
/// with the certificate fetched from there, then the events; a subscription to an
/// allowed topic is confirmed.
async fn receive_sns(
    state: &AppState,
    provider: &str,
    topics: &[String],
    request: WebhookRequest<'_>,
) -> Result<Json<store::Recorded>, ApiError> {
    use postrunner_feedback::ses::{Envelope, EnvelopeType};
    let trusted = &state.config.sns_trusted_hosts;
    let envelope = Envelope::parse(request).map_err(|r| refused(provider, r))?;
    let certificate_url = envelope
        .check_origin(topics, trusted)
        .map_err(|r| refused(provider, r))?;
    let key = state.sns.key(&certificate_url).await.map_err(|why| {
        tracing::warn!(provider, %why, "SNS signing certificate unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the signing certificate cannot be read; try again later",
        )
    })?;
    envelope
        .check_signature(&key, request.now, state.config.webhook_tolerance)
        .map_err(|r| refused(provider, r))?;
    match envelope.kind {
        EnvelopeType::Notification => {
            let verified = envelope.events().map_err(|r| refused(provider, r))?;
            record(state, provider, &verified).await
        }
        EnvelopeType::SubscriptionConfirmation => {
            let url = envelope.confirmation_url(trusted).map_err(|r| refused(provider, r))?;
            state.sns.confirm(&url).await.map_err(|why| {
                tracing::warn!(provider, %why, "SNS subscription not confirmed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the subscription could not be confirmed; try again later",
                )
            })?;
            tracing::info!(provider, topic = %envelope.topic_arn, "SNS subscription confirmed");
            Ok(Json(store::Recorded::default()))
        }
        EnvelopeType::UnsubscribeConfirmation => {
            tracing::warn!(provider, topic = %envelope.topic_arn, "SNS says this endpoint was unsubscribed");
            Ok(Json(store::Recorded::default()))
        }
    }
}

/// SNS signing certificates' keys, fetched once per URL (a bounded cache), and the
/// client that confirms subscriptions. Redirects are never followed.
pub(crate) struct SnsCertificates {
    client: reqwest::Client,
    keys: tokio::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Vec<u8>>>>,
}

impl SnsCertificates {
    const MOST: usize = 64;

    pub fn new(extra_root_pem: Option<&str>) -> Result<Self, reqwest::Error> {
        postrunner_providers::http::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(5));
        if let Some(pem) = extra_root_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
        }
        Ok(Self {
            client: builder.build()?,
            keys: Default::default(),
        })
    }

    async fn key(&self, url: &reqwest::Url) -> Result<std::sync::Arc<Vec<u8>>, String> {
        if let Some(key) = self.keys.lock().await.get(url.as_str()) {
            return Ok(key.clone());
        }
        let response = self.client.get(url.clone()).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let pem = response.text().await.map_err(|e| e.to_string())?;
        let key = std::sync::Arc::new(postrunner_feedback::ses::rsa_key_of_certificate(&pem)?);
        let mut keys = self.keys.lock().await;
        if keys.len() >= Self::MOST {
            keys.clear();
        }
        keys.insert(url.to_string(), key.clone());
        Ok(key)
    }

    async fn confirm(&self, url: &reqwest::Url) -> Result<(), String> {
        let response = self.client.get(url.clone()).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        Ok(())
    }
}

/// `GET` and the like on a webhook URL: a hint, not a bare 405.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "webhooks are POSTed by the provider; configure this URL in its console",
    )
}

fn refused(provider: &str, refusal: Refusal) -> ApiError {
    let status = match refusal {
        Refusal::Unsigned(_) | Refusal::BadSignature => StatusCode::UNAUTHORIZED,
        Refusal::Stale | Refusal::Replayed | Refusal::WrongOrigin(_) => StatusCode::FORBIDDEN,
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    crate::metrics::process::webhook_refused(
        provider,
        match refusal {
            Refusal::Unsigned(_) => "unsigned",
            Refusal::BadSignature => "bad_signature",
            Refusal::Stale => "stale",
            Refusal::Replayed => "replay",
            Refusal::WrongOrigin(_) => "wrong_origin",
            Refusal::Malformed(_) => "malformed",
            Refusal::NotConfigured(_) => "not_configured",
        },
    );
    tracing::info!(provider, reason = %refusal, status = status.as_u16(), "webhook refused");
    ApiError::new(status, refusal.to_string())
}

fn not_configured(provider: &str, why: &str) -> ApiError {
    crate::metrics::process::webhook_refused(provider, "not_configured");
    tracing::error!(provider, why, "webhook secret not configured: refusing its webhooks");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "webhooks are not configured for this provider",
    )
}

fn unavailable(error: sqlx::Error) -> ApiError {
    crate::metrics::process::database_error("record webhook events");
    tracing::warn!(%error, "webhook not recorded: database unavailable");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "try again later")
}
