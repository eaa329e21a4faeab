//! `POST /webhooks/<provider name>`: one URL per provider row. The row says which
//! kind of provider it is (so how its requests are signed) and which environment
//! variable holds the secret that checks them; the request is answered 2xx only once
//! its events are committed.
//!
//! Answers: 200 recorded (also for events already recorded: a provider's retry);
//! 400 a signed but malformed payload; 401 missing or bad signature or credentials;
//! 403 a stale timestamp or a replayed request; 404 no such provider, or one that has
//! no webhooks; 413 a body over the limit; 503 the secret is not configured or the
//! database is unavailable (the provider retries; nothing was stored).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::{ApiError, AppState};
use crate::feedback::store::{self, StoreError};
use crate::feedback::{self, Refusal, Verifier, WebhookRequest};
use crate::secret::Secret;

pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<store::Recorded>, ApiError> {
    let body = body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT kind::text, webhook_secret_env FROM postrunner.providers WHERE name = $1")
            .bind(&provider)
            .fetch_optional(&state.pool)
            .await
            .map_err(unavailable)?;
    let Some((kind, secret_env)) = row else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such provider"));
    };
    let verify = match kind.as_str() {
        "sendgrid" => feedback::sendgrid::verify,
        "mailgun" => feedback::mailgun::verify,
        "postmark" => feedback::postmark::verify,
        "resend" => feedback::resend::verify,
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
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
        now: chrono::Utc::now(),
    };
    let verified = verify(&verifier, request).map_err(|refusal| refused(&provider, refusal))?;
    match store::record(&state.pool, &provider, &verified).await {
        Ok(recorded) => Ok(Json(recorded)),
        Err(StoreError::Replayed) => Err(refused(&provider, Refusal::Replayed)),
        Err(StoreError::Database(error)) => Err(unavailable(error)),
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
        Refusal::Stale | Refusal::Replayed => StatusCode::FORBIDDEN,
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    tracing::info!(provider, reason = %refusal, status = status.as_u16(), "webhook refused");
    ApiError::new(status, refusal.to_string())
}

fn not_configured(provider: &str, why: &str) -> ApiError {
    tracing::error!(provider, why, "webhook secret not configured: refusing its webhooks");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "webhooks are not configured for this provider",
    )
}

fn unavailable(error: sqlx::Error) -> ApiError {
    tracing::warn!(%error, "webhook not recorded: database unavailable");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "try again later")
}
