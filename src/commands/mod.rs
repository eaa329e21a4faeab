//! Every subcommand of the binary, one file each; `main.rs` only dispatches. The roles
//! (`worker`, `scheduler`, `web`) start their process here and run in [`crate::roles`].
//! `demo` and `bench` run on the embedded default database when `DATABASE_URL` is unset
//! (see [`postrunner_schema::local_cluster`]).
//!
//! - [`context`]: the global flags, pools and the metrics endpoint every command uses.
//! - [`migrate`], [`worker`], [`scheduler`], [`web`]: the deployment's processes.
//! - [`import`]: CSV import of clients, providers and addresses.
//! - [`check_domains`], [`pull_suppressions`]: compliance checks.
//! - [`gdpr`]: `erase` and `export`, a person's rights.
//! - [`backup`]: `backup now|list|check|restore|prune`.
//! - [`verify`], [`status`]: the promises, and the operator's summary.
//! - [`demo`], [`bench`]: the end-to-end demo and the benchmarks.
//! - [`signing`]: the demo's and benchmarks' webhook signers.

pub mod backup;
pub mod bench;
pub mod check_domains;
pub mod context;
pub mod demo;
pub mod gdpr;
pub mod import;
pub mod migrate;
pub mod pull_suppressions;
pub mod scheduler;
pub mod signing;
pub mod status;
pub mod verify;
pub mod web;
pub mod worker;

pub use context::Context;

use anyhow::Context as _;
use sqlx::Connection;

use postrunner_schema::local_cluster::{self, Server};

/// A fresh, migrated database named `name` on the configured server (or the embedded
/// default), recreated if it exists. Returns the server (keep it alive: it may be a
/// throwaway cluster) and the database URL.
///
/// # Errors
/// No server can be found or started, or the database cannot be created or migrated.
pub async fn fresh_database(database_url: Option<String>, name: &str) -> anyhow::Result<(Server, String)> {
    let server = match database_url {
        Some(url) => Server {
            admin_url: local_cluster::with_database(&url, "postgres"),
            cluster: None,
        },
        None => local_cluster::find_or_start().await?,
    };
    let mut admin = sqlx::PgConnection::connect(&server.admin_url)
        .await
        .with_context(|| format!("connecting to {}", redact(&server.admin_url)))?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let url = server.database_url(name);
    postrunner_schema::migrate::run(&url).await.context("migrating")?;
    Ok((server, url))
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let user_end = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..user_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
