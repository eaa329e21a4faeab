//! The adapter for each provider row, by name.
//!
//! Routing (in SQL) names the provider of each attempt; the worker asks the directory
//! for that name's adapter, built once from the row's `kind` (and, for real providers,
//! its endpoint and secret variable) and kept for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use postrunner_schema::statements;
use sqlx::PgPool;

use super::log::LogProvider;
use super::mailgun::Mailgun;
use super::postmark::Postmark;
use super::resend::Resend;
use super::sendgrid::SendGrid;
use super::ses::{AwsKeys, Ses};
use super::smtp::Smtp;
use super::{Provider, SendError};
use crate::secret::Secret;

/// How long an HTTP provider may take to answer one send.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds an adapter for a provider name; a test or the demo may supply its own.
type Build = dyn Fn(&str) -> Option<Arc<dyn Provider>> + Send + Sync;

pub struct Directory {
    pool: PgPool,
    http: reqwest::Client,
    timeout: std::time::Duration,
    build: Option<Box<Build>>,
    adapters: RwLock<HashMap<String, Arc<dyn Provider>>>,
}

impl Directory {
    /// Adapters built from the `providers` table.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            http: super::http::client(SEND_TIMEOUT),
            timeout: SEND_TIMEOUT,
            build: None,
            adapters: RwLock::default(),
        }
    }

    /// Adapters from `build` where it returns one, from the table otherwise.
    pub fn with_builder(
        pool: PgPool,
        build: impl Fn(&str) -> Option<Arc<dyn Provider>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            pool,
            http: super::http::client(SEND_TIMEOUT),
            timeout: SEND_TIMEOUT,
            build: Some(Box::new(build)),
            adapters: RwLock::default(),
        }
    }

    /// Providers time out after `timeout` (default 30 s) instead.
    pub fn with_send_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.http = super::http::client(timeout);
        self.timeout = timeout;
        self
    }

    /// The adapter for provider `name`.
    ///
    /// # Errors
    /// [`SendError::Unavailable`] when the row cannot be read now, its secret variable
    /// is not set, or its kind has no adapter in this version (a newer replica may have
    /// one). Not cached: the next send tries again.
    pub async fn get(&self, name: &str) -> Result<Arc<dyn Provider>, SendError> {
        if let Some(adapter) = self.adapters.read().expect("directory lock").get(name) {
            return Ok(adapter.clone());
        }
        let adapter = match self.build.as_ref().and_then(|build| build(name)) {
            Some(adapter) => adapter,
            None => self.build_from_table(name).await?,
        };
        self.adapters
            .write()
            .expect("directory lock")
            .insert(name.to_owned(), adapter.clone());
        Ok(adapter)
    }

    async fn build_from_table(&self, name: &str) -> Result<Arc<dyn Provider>, SendError> {
        let unavailable = |detail: String| SendError::Unavailable {
            provider: name.to_owned(),
            detail,
            retry_after: None,
            may_have_taken: false,
        };
        let row: Option<ProviderRow> = statements::providers::provider_row(name)
            .rows()
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| unavailable(format!("cannot read the provider row: {e}")))?;
        let Some(ProviderRow {
            kind,
            endpoint,
            secret_env,
            region,
            bounce_address,
        }) = row
        else {
            return Err(unavailable("no such provider row".to_owned()));
        };
        if kind == "log" {
            return Ok(Arc::new(LogProvider::new(name)));
        }
        if kind == "smtp" {
            let endpoint = endpoint.ok_or_else(|| unavailable("an smtp provider needs an endpoint".to_owned()))?;
            let password = match secret_env {
                Some(variable) => Some(Secret::from_env(&variable).map_err(|e| unavailable(e.to_string()))?),
                None => None,
            };
            let dkim = super::dkim::DkimSigners::load(&self.pool)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let smtp = Smtp::new(name, &endpoint, password, self.timeout)
                .map_err(|e| unavailable(e.to_string()))?
                .with_bounce_address(bounce_address)
                .with_dkim(dkim);
            return Ok(Arc::new(smtp));
        }
        let endpoint = endpoint
            .or_else(|| match (kind.as_str(), region.as_deref()) {
                ("ses", Some(region)) => Some(format!("https://email.{region}.amazonaws.com")),
                _ => default_endpoint(&kind).map(str::to_owned),
            })
            .ok_or_else(|| unavailable(format!("a {kind} provider needs an endpoint (or, for ses, a region)")))?;
        let variable = secret_env.ok_or_else(|| unavailable(format!("a {kind} provider needs secret_env")))?;
        let key = Secret::from_env(&variable).map_err(|e| unavailable(e.to_string()))?;
        let http = self.http.clone();
        let adapter: Arc<dyn Provider> = match kind.as_str() {
            "sendgrid" => Arc::new(SendGrid::new(name, &endpoint, key, http)),
            "mailgun" => Arc::new(Mailgun::new(name, &endpoint, key, http)),
            "postmark" => Arc::new(Postmark::new(name, &endpoint, key, http)),
            "resend" => Arc::new(Resend::new(name, &endpoint, key, http)),
            "ses" => {
                let region = region.ok_or_else(|| unavailable("an ses provider needs a region".to_owned()))?;
                let keys = AwsKeys::parse(&key).map_err(unavailable)?;
                Arc::new(Ses::new(name, &endpoint, &region, keys, http))
            }
            other => {
                return Err(unavailable(format!(
                    "provider kind {other:?} has no adapter in postrunner {}",
                    env!("CARGO_PKG_VERSION")
                )))
            }
        };
        Ok(adapter)
    }
}

/// What an adapter is built from.
#[derive(sqlx::FromRow)]
struct ProviderRow {
    kind: String,
    endpoint: Option<String>,
    secret_env: Option<String>,
    region: Option<String>,
    bounce_address: Option<String>,
}

/// The public API base of each HTTP provider, used when the row has no endpoint.
fn default_endpoint(kind: &str) -> Option<&'static str> {
    match kind {
        "sendgrid" => Some("https://api.sendgrid.com"),
        "mailgun" => Some("https://api.mailgun.net"),
        "postmark" => Some("https://api.postmarkapp.com"),
        "resend" => Some("https://api.resend.com"),
        _ => None,
    }
}
