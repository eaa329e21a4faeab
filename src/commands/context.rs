//! What every command starts from: the database URL, the session limits and the metrics
//! settings given on the command line, and the pools and metrics endpoint built from them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Cli;
use crate::metrics;
use postrunner_schema::pooling::{self, Pooling};

/// The global flags, for the command that runs.
#[derive(Clone, Debug)]
pub struct Context {
    pub database_url: Option<String>,
    /// `DATABASE_DIRECT_URL`, past PgBouncer (read in transaction pooling only).
    pub direct_url: Option<String>,
    pub limits: postrunner_schema::SessionLimits,
    pub metrics_bind: Option<std::net::SocketAddr>,
    pub database_metrics_cache: Duration,
}

impl Context {
    /// The context of the command `cli` names. Sets the process's pooling
    /// (`postrunner_schema::pooling`), except for `demo` and `bench`, which run on a
    /// database of their own.
    pub fn new(cli: &Cli) -> Self {
        if !matches!(
            cli.command,
            crate::config::Command::Demo(_) | crate::config::Command::Bench(_)
        ) {
            pooling::set(cli.pooling, cli.session_limits());
        }
        Self {
            database_url: cli.database_url.clone(),
            direct_url: cli.database_direct_url.clone(),
            limits: cli.session_limits(),
            metrics_bind: cli.metrics_bind,
            database_metrics_cache: cli.database_metrics_cache,
        }
    }

    /// `DATABASE_URL`, which every command but `demo` and `bench` needs.
    ///
    /// # Errors
    /// It is not set.
    pub fn required_url(&self) -> anyhow::Result<String> {
        self.database_url
            .clone()
            .context("DATABASE_URL is not set (for example postgres://postgres@127.0.0.1:5432/postrunner)")
    }

    /// A pool of up to `connections` on `DATABASE_URL`, named `postrunner-<name>` in
    /// `pg_stat_activity`, with the session limits.
    ///
    /// # Errors
    /// `DATABASE_URL` is not set or does not parse.
    pub fn pool(&self, name: &str, connections: u32) -> anyhow::Result<PgPool> {
        let url = self.required_url()?;
        Ok(postrunner_schema::pool_with(
            &url,
            connections,
            &format!("postrunner-{name}"),
            self.limits,
        )?)
    }

    /// A URL on which one session stays one server session (LISTEN, the migrations'
    /// lock, backups): `DATABASE_URL` unless it is PgBouncer in transaction mode, then
    /// `DATABASE_DIRECT_URL` if given.
    ///
    /// # Errors
    /// `DATABASE_URL` is not set.
    pub fn session_url(&self) -> anyhow::Result<Option<String>> {
        match pooling::current() {
            Pooling::Session => Ok(Some(self.required_url()?)),
            Pooling::Transaction => Ok(self.direct_url.clone()),
        }
    }

    /// Where idle workers LISTEN: their own `pool` in session pooling; through PgBouncer
    /// in transaction mode, a pool of one session on `DATABASE_DIRECT_URL`, or `None`
    /// (they poll) when it is not given.
    ///
    /// # Errors
    /// The direct URL does not parse.
    pub fn listener(&self, pool: &PgPool, name: &str) -> anyhow::Result<Option<PgPool>> {
        match (pooling::current(), &self.direct_url) {
            (Pooling::Session, _) => Ok(Some(pool.clone())),
            (Pooling::Transaction, Some(url)) => Ok(Some(postrunner_schema::pool_with(
                url,
                1,
                &format!("postrunner-{name}-listen"),
                self.limits,
            )?)),
            (Pooling::Transaction, None) => Ok(None),
        }
    }

    /// Names the role in the metrics, and serves them on `--metrics-bind` when given,
    /// until `shutdown`.
    pub fn serve_metrics(
        &self,
        role: &'static str,
        database: Option<Arc<metrics::database::DatabaseMetrics>>,
        shutdown: &CancellationToken,
    ) {
        metrics::process::set_role(role);
        if let Some(bind) = self.metrics_bind {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(error) = metrics::server::serve(bind, database, shutdown).await {
                    tracing::error!(error = format!("{error:#}"), "the metrics endpoint stopped");
                }
            });
        }
    }
}
