//! `postrunner scheduler`: enqueues the jobs of `postrunner.schedules` as their ticks
//! come (see [`crate::periodic`] for why each tick runs exactly once across replicas).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::presence::Presence;
use crate::periodic::run_due;
use postrunner_queue::heartbeat::heartbeat;
use postrunner_queue::wake::sleep_or_cancel;

/// Longest sleep between passes, so new or edited schedules are noticed.
const MAX_NAP: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Runs a scheduler until `shutdown`.
///
/// # Errors
/// The database could not be reached at start-up within a minute.
pub async fn run(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context as _;
    postrunner_schema::wait_until_ready(&pool, Duration::from_secs(60))
        .await
        .context("connecting to the database")?;
    let presence = Presence::new("scheduler", None, HEARTBEAT);
    presence.register(&pool).await.context("registering the scheduler")?;
    tracing::info!(scheduler.id = %presence.id, "scheduler started");

    let mut last_heartbeat = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        let mut nap = MAX_NAP;
        match run_due(&pool, presence.id, None).await {
            Ok(pass) => {
                if failing {
                    tracing::info!("database reachable again");
                    failing = false;
                }
                if let Some(next) = pass.next_tick {
                    let until = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                    nap = nap.min(until.max(Duration::from_millis(10)));
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "schedules pass failed; retrying");
                    failing = true;
                }
            }
        }
        if last_heartbeat.elapsed() >= HEARTBEAT {
            last_heartbeat = tokio::time::Instant::now();
            let _ = heartbeat(&pool, presence.id, HEARTBEAT, &[]).await;
        }
        if sleep_or_cancel(nap, &shutdown).await {
            break;
        }
    }
    presence.deregister(&pool).await;
    tracing::info!(scheduler.id = %presence.id, "scheduler stopped");
    Ok(())
}
