//! `postrunner web`: the HTTP role. Stateless: any number of replicas behind a load
//! balancer, each answering from the database alone.
//!
//! - `GET /healthz`: the process is up;
//! - `GET /readyz`: the database answers and has this binary's migrations and definitions;
//! - `POST /webhooks/<provider name>`: a provider's events, verified the way that
//!   provider signs ([`postrunner_feedback`]), answered 2xx only once committed;
//! - `GET`, `POST /u/<token>`: one-click unsubscribe ([`crate::unsubscribe`]);
//! - `GET /metrics`, `GET /metrics/database`: Prometheus metrics ([`crate::metrics`]),
//!   the database's behind a bearer token when `POSTRUNNER_METRICS_TOKEN` is set;
//! - `GET /status`: the status page, behind a token ([`crate::status`]).
//!
//! Every route has a body limit and a timeout; a malformed request gets a 4xx with a
//! short JSON reason, never a 5xx (tests/webhooks.rs,
//! random_requests_to_every_provider_get_a_4xx_never_a_5xx).

mod error;
mod health;
mod pages;
mod provider_rows;
mod status;
mod unsubscribe;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

/// How the web role serves.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Largest request body accepted (SendGrid batches reach 768 KB).
    pub max_body: usize,
    /// Longest a request may take, body included.
    pub request_timeout: Duration,
    /// How far a signed timestamp may be from now (SendGrid, Mailgun; Svix's is its
    /// library's five minutes).
    pub webhook_tolerance: Duration,
    /// `host:port` authorities trusted like `sns.<region>.amazonaws.com` for SNS
    /// certificate and subscription URLs (a local CA in tests; empty in production).
    pub sns_trusted_hosts: Vec<String>,
    /// An extra root certificate (PEM) for fetching from those hosts.
    pub sns_ca_pem: Option<String>,
    /// The keys unsubscribe links are checked with (`/u/<token>`); without them those
    /// routes answer 404.
    pub unsubscribe: Option<crate::unsubscribe::UnsubscribeKeys>,
    /// The database's metrics, served on `/metrics/database` (shared with the
    /// `--metrics-bind` endpoint: one cache).
    pub database_metrics: Option<Arc<crate::metrics::database::DatabaseMetrics>>,
    /// The token of the `/status` page; without one that page answers 404.
    pub status_token: Option<postrunner_providers::secret::Secret<String>>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            max_body: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(15),
            webhook_tolerance: Duration::from_secs(600),
            sns_trusted_hosts: Vec::new(),
            sns_ca_pem: None,
            unsubscribe: None,
            database_metrics: None,
            status_token: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub config: Arc<WebConfig>,
    pub readiness: Arc<health::Readiness>,
    pub sns: Arc<webhooks::SnsCertificates>,
    pub providers: Arc<provider_rows::ProviderRows>,
}

/// The routes, with their limits.
///
/// # Errors
/// `sns_ca_pem` is not a PEM certificate.
pub fn router(pool: PgPool, config: WebConfig) -> Result<Router, reqwest::Error> {
    let state = AppState {
        pool,
        sns: Arc::new(webhooks::SnsCertificates::new(config.sns_ca_pem.as_deref())?),
        config: Arc::new(config.clone()),
        readiness: Arc::default(),
        providers: Arc::default(),
    };
    Ok(Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/webhooks/{provider}",
            post(webhooks::receive).fallback(webhooks::wrong_method),
        )
        .route("/u/{token}", get(unsubscribe::show).post(unsubscribe::confirm))
        .route("/status", get(status::show))
        .merge(crate::metrics::server::routes(config.database_metrics.clone()))
        .fallback(error::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(state))
}

/// Serves on `listener` until `shutdown`, then finishes the requests in flight.
///
/// # Errors
/// The configuration is invalid, or the listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    config: WebConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = router(pool, config).map_err(std::io::Error::other)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
