//! Waking idle workers: a LISTEN on channel `postrunner_jobs`, which the queue NOTIFYs
//! once per insert statement (and on release/rescue/retry). A notification can be lost
//! (the listening connection drops, the database restarts), so the executor also polls:
//! a lost notification costs at most one poll interval.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel the queue's triggers and statements notify.
pub const CHANNEL: &str = "postrunner_jobs";

/// Listens until `shutdown`, calling `wake.notify_one()` for each notification (a
/// `Notify` keeps one pending permit, so a wake-up that arrives while the executor is
/// busy is not lost). Reconnects with backoff when the connection drops.
pub async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(error) => {
                tracing::debug!(%error, "cannot open the LISTEN connection; polling meanwhile");
                if sleep_or_cancel(delay, &shutdown).await {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::debug!(%error, "LISTEN failed; polling meanwhile");
            if sleep_or_cancel(delay, &shutdown).await {
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(5));
            continue;
        }
        delay = Duration::from_millis(100);
        // Anything inserted while we were not listening is found by this first claim.
        wake.notify_one();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => wake.notify_one(),
                    Ok(None) | Err(_) => {
                        tracing::debug!("LISTEN connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// Sleeps for `delay` unless `shutdown` comes first; returns true on shutdown.
pub(crate) async fn sleep_or_cancel(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
