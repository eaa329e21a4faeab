//! The adapter for each provider row, by name.
//!
//! Routing (in SQL) names the provider of each attempt; the worker asks the directory
//! for that name's adapter, built once from the row's `kind` (and, for real providers,
//! its endpoint and secret variable) and kept for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;

use super::log::LogProvider;
use super::{Provider, SendError};

/// Builds an adapter for a provider name; a test or the demo may supply its own.
type Build = dyn Fn(&str) -> Option<Arc<dyn Provider>> + Send + Sync;

pub struct Directory {
    pool: PgPool,
    build: Option<Box<Build>>,
    adapters: RwLock<HashMap<String, Arc<dyn Provider>>>,
}

impl Directory {
    /// Adapters built from the `providers` table.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
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
            build: Some(Box::new(build)),
            adapters: RwLock::default(),
        }
    }

    /// The adapter for provider `name`.
    ///
    /// # Errors
    /// [`SendError::Transient`] when the row cannot be read now, or its kind has no
    /// adapter in this version (a newer replica may have one).
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
        let unavailable = |detail: String| SendError::Transient {
            provider: name.to_owned(),
            detail,
        };
        let kind: Option<String> = sqlx::query_scalar("SELECT kind::text FROM postrunner.providers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| unavailable(format!("cannot read the provider row: {e}")))?;
        match kind.as_deref() {
            Some("log") => Ok(Arc::new(LogProvider::new(name))),
            Some(other) => Err(unavailable(format!(
                "provider kind {other:?} has no adapter in postrunner {}",
                crate::VERSION
            ))),
            None => Err(unavailable("no such provider row".to_owned())),
        }
    }
}
