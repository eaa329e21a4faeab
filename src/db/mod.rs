//! Connections to PostgreSQL: pools for the roles, migrations, and the embedded local
//! server used when no `DATABASE_URL` is given.

pub mod definitions;
pub mod local_cluster;
pub mod migrate;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Builds a pool without connecting: a process can start while the database is down
/// and its loops retry until it comes back.
///
/// `application_name` shows in `pg_stat_activity`, so an operator can tell workers from
/// schedulers. Acquiring a connection gives up after 5 s so that an outage surfaces as
/// an error the loops can log and back off from, rather than a hang.
///
/// # Errors
/// The URL does not parse.
pub fn pool(url: &str, max_connections: u32, application_name: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name(application_name);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(60))
        .connect_lazy_with(options))
}

/// Waits until the database answers `SELECT 1`, retrying with backoff for up to
/// `patience`. Used at start-up so that replicas launched together with PostgreSQL
/// (docker compose) wait for it instead of crash-looping.
///
/// # Errors
/// The last connection error once `patience` has run out.
pub async fn wait_until_ready(pool: &PgPool, patience: Duration) -> Result<(), sqlx::Error> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match sqlx::query("SELECT 1").execute(pool).await {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() + delay < deadline => {
                if !warned {
                    tracing::warn!(%error, "database not reachable yet; retrying");
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

/// True for errors that mean "the database is not reachable right now" rather than "this
/// statement is wrong": the loops back off and retry on these.
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
            // 08xxx connection exceptions.
            db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
        }
        _ => false,
    }
}
