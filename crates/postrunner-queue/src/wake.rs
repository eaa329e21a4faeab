//! Waking idle workers: a LISTEN on the database's workers' channel, which the queue
//! NOTIFYs once per insert statement (and on release/rescue/retry). A notification can
//! be lost (the listening connection drops, the database restarts), so the executor also
//! polls: a lost notification costs at most one poll interval.
//!
//! The channel's name is a secret of the database that only postrunner's processes may
//! read (`postrunner.wake_channel_name()`, sql/definitions/060_queue_wake.sql): any login may NOTIFY any
//! channel, so one it could name would let it drive every idle worker's claims
//! (tests/tenancy.rs, an_application_login_cannot_make_idle_workers_claim_by_notifying).

use std::sync::Arc;
use std::time::Duration;

use postrunner_schema::statements;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The name of the channel the queue's triggers and statements notify.
///
/// # Errors
/// The database could not be read (or this login is not one of postrunner's).
pub async fn channel(pool: &PgPool) -> Result<String, sqlx::Error> {
    statements::queue::wake_channel().scalar().fetch_one(pool).await
}

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
        let listened = match channel(&pool).await {
            Ok(name) => listener.listen(&name).await,
            Err(error) => Err(error),
        };
        if let Err(error) = listened {
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
pub async fn sleep_or_cancel(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
