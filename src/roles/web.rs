//! `postrunner web`: serves [`crate::web`] until a signal, then lets the requests in
//! flight finish (a provider whose request is cut off retries it).

use std::net::SocketAddr;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::web::WebConfig;

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
    crate::web::serve(listener, pool, config, shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("web stopped");
    Ok(())
}
