//! `postrunner web`: serves [`crate::web`] until a signal, then lets the requests in
//! flight finish (a provider whose request is cut off retries it).

use std::net::SocketAddr;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::presence::Presence;
use crate::web::WebConfig;
use postrunner_queue::heartbeat::heartbeat;
use postrunner_queue::wake::sleep_or_cancel;

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps this process in `postrunner.processes` (the `workers` view, the
/// `workers_live{role="web"}` metric) while it serves: registers once the database
/// answers (serving never waits for it: /readyz says when it is not ready), refreshes
/// the heartbeat, and deregisters on shutdown.
async fn stay_registered(pool: PgPool, shutdown: CancellationToken) {
    let presence = Presence::new("web", None, HEARTBEAT);
    while presence.register(&pool).await.is_err() {
        if sleep_or_cancel(HEARTBEAT, &shutdown).await {
            return;
        }
    }
    while !sleep_or_cancel(HEARTBEAT, &shutdown).await {
        let _ = heartbeat(&pool, presence.id, HEARTBEAT, &[]).await;
    }
    presence.deregister(&pool).await;
}

/// Runs the web role until `shutdown`.
///
/// # Errors
/// The address cannot be bound, or serving failed.
pub async fn run(pool: PgPool, bind: SocketAddr, config: WebConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%address, "web listening");
    let registered = tokio::spawn(stay_registered(pool.clone(), shutdown.clone()));
    crate::web::serve(listener, pool, config, shutdown)
        .await
        .context("serving HTTP")?;
    let _ = registered.await;
    tracing::info!("web stopped");
    Ok(())
}
