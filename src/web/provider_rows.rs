//! The provider rows webhooks are checked against (kind, secret variable, SNS topics),
//! kept for a moment: a webhook request then costs one database round trip, the one
//! that stores its events, instead of two. A change to a row (a new secret variable, a
//! topic taken off the allowlist) applies within [`ProviderRows::TTL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postrunner_schema::statements;
use sqlx::PgPool;
use tokio::sync::RwLock;

/// What a webhook needs of its provider's row.
#[derive(Clone, Debug)]
pub(crate) struct ProviderRow {
    pub kind: String,
    pub secret_env: Option<String>,
    pub topics: Vec<String>,
}

#[derive(Default)]
pub(crate) struct ProviderRows {
    rows: RwLock<HashMap<String, (Instant, Option<ProviderRow>)>>,
}

impl ProviderRows {
    /// How long a row read is used.
    pub const TTL: Duration = Duration::from_secs(2);
    /// Names remembered at most (unknown ones too, so random names cost a query
    /// each once per TTL at worst, and the map stays small).
    const MOST: usize = 256;

    /// Provider `name`'s row (`None`: no such provider).
    ///
    /// # Errors
    /// The database could not be read.
    pub async fn get(&self, pool: &PgPool, name: &str) -> Result<Option<ProviderRow>, sqlx::Error> {
        if let Some((read_at, row)) = self.rows.read().await.get(name) {
            if read_at.elapsed() < Self::TTL {
                return Ok(row.clone());
            }
        }
        let row: Option<(String, Option<String>, Vec<String>)> = statements::providers::webhook_settings(name)
            .rows()
            .fetch_optional(pool)
            .await?;
        let row = row.map(|(kind, secret_env, topics)| ProviderRow {
            kind,
            secret_env,
            topics,
        });
        let mut rows = self.rows.write().await;
        if rows.len() >= Self::MOST {
            rows.retain(|_, (read_at, _)| read_at.elapsed() < Self::TTL);
            if rows.len() >= Self::MOST {
                rows.clear();
            }
        }
        rows.insert(name.to_owned(), (Instant::now(), row.clone()));
        Ok(row)
    }
}
