//! `postrunner worker`: registers the process, then runs the queue executor with every
//! built-in kind until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::presence::Presence;
use crate::kinds;
use crate::unsubscribe::{UnsubscribeKeys, UnsubscribeLinks};
use postrunner_providers::Directory;
use postrunner_queue::executor::{Executor, ExecutorConfig};

/// Runs a worker until `shutdown`; idle, it LISTENs on `listener` (`None`: it polls).
///
/// # Errors
/// The database could not be reached at start-up within a minute.
pub async fn run(
    pool: PgPool,
    listener: Option<PgPool>,
    config: ExecutorConfig,
    unsubscribe_url: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // The keys first: a worker told to sign links but unable to never starts.
    let unsubscribe = match &unsubscribe_url {
        Some(base) => {
            let keys = UnsubscribeKeys::from_env().context("--unsubscribe-url signs its links")?;
            Some(UnsubscribeLinks::new(base, keys))
        }
        None => None,
    };
    postrunner_schema::wait_until_ready(&pool, Duration::from_secs(60))
        .await
        .context("connecting to the database")?;
    let presence =
        Presence::new("worker", Some(config.concurrency), config.heartbeat).signing_unsubscribe(unsubscribe.is_some());
    presence.register(&pool).await.context("registering the worker")?;
    tracing::info!(worker.id = %presence.id, concurrency = config.concurrency, "worker started");
    if unsubscribe.is_none() {
        tracing::warn!(
            "no --unsubscribe-url: this worker sends only for clients marked bulk = false (bulk mail needs one-click unsubscribe links)"
        );
    }
    let registry = kinds::registry_with(pool.clone(), Arc::new(Directory::new(pool.clone())), unsubscribe);
    let executor = Executor::new(pool.clone(), registry, config, presence.id).listen_on(listener);
    executor.run(shutdown).await;

    presence.deregister(&pool).await;
    tracing::info!(worker.id = %presence.id, "worker stopped");
    Ok(())
}
