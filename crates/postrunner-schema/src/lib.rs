//! postrunner's database, the bottom layer: the schema (`migrations/`), the current
//! definitions of every function, trigger and view (`sql/definitions/`), the statements
//! the code runs (`sql/statements/`), the migrator, and connection pools. The embedded
//! local server serves `postrunner demo` and the tests when no `DATABASE_URL` is given.
//!
//! - [`migrate`]: `postrunner migrate`, migrations then definitions, under one lock.
//! - [`definitions`]: the definition files, in the order they are applied.
//! - [`statements`]: one typed function per statement file.
//! - [`pooling`]: direct sessions, or PgBouncer in transaction mode.
//! - [`tls`]: TLS for the migration connection (`sslmode=verify-full`).
//! - [`local_cluster`]: a local PostgreSQL found or started on demand.
//!
//! README.md is this crate's map; tests/maps.rs checks it against the files.

pub mod definitions;
pub mod local_cluster;
pub mod migrate;
pub mod pooling;
pub mod statements;
pub mod tls;

/// `sql/reports.sql`: examples of reading postrunner with psql (run by the tests as the
/// roles it names).
pub const REPORT_EXAMPLES: &str = include_str!("../sql/reports.sql");

/// Where the migrations are, for tools that fingerprint them (the test databases).
pub const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Bounds on every statement of postrunner's own sessions, so that a lock someone else
/// holds (an application's long transaction) or a runaway statement surfaces as an
/// error the loops handle, never as a worker stalled for good. The hot paths do not
/// wait on locks at all (SKIP LOCKED); these bound what is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// `lock_timeout`: the longest a statement waits for a row or table lock.
    pub lock_timeout: Duration,
    /// `statement_timeout`: the longest a statement runs.
    pub statement_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(120),
        }
    }
}

/// Builds a pool without connecting: a process can start while the database is down
/// and its loops retry until it comes back. Sessions get the default [`SessionLimits`].
///
/// `application_name` shows in `pg_stat_activity`, so an operator can tell workers from
/// schedulers. Acquiring a connection gives up after 5 s so that an outage surfaces as
/// an error the loops can log and back off from, rather than a hang.
///
/// A new connection that lands on a server in recovery (a standby, as happens through a
/// proxy in the middle of a failover) is refused, as a lost connection, so the pool
/// tries again until it reaches the primary instead of handing out a session whose every
/// write fails. (No test makes a standby answer through the route; the HA test,
/// tests/ha.rs, runs through a real failover with this in place.)
///
/// # Errors
/// The URL does not parse.
pub fn pool(url: &str, max_connections: u32, application_name: &str) -> Result<PgPool, sqlx::Error> {
    pool_with(url, max_connections, application_name, SessionLimits::default())
}

/// [`pool`] with these session limits.
///
/// # Errors
/// The URL does not parse.
pub fn pool_with(
    url: &str,
    max_connections: u32,
    application_name: &str,
    limits: SessionLimits,
) -> Result<PgPool, sqlx::Error> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let options = PgConnectOptions::from_str(url)?.application_name(application_name);
    let options = match pooling::current() {
        pooling::Pooling::Session => options.options([
            ("lock_timeout", ms(limits.lock_timeout)),
            ("statement_timeout", ms(limits.statement_timeout)),
        ]),
        // No startup options (PgBouncer 1.18 refuses them: the limits are each
        // transaction's, see `pooling::begin`) and no named statements to cache.
        pooling::Pooling::Transaction => options.statement_cache_capacity(0).extra_float_digits(None),
    };
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(60))
        .after_connect(|conn, _| Box::pin(refuse_a_standby(conn)))
        .connect_lazy_with(options))
}

/// Begins a transaction on `pool` (with the session limits as `SET LOCAL` in PgBouncer's
/// transaction mode: [`pooling::begin`]).
///
/// # Errors
/// The database could not be reached.
pub async fn begin(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with(pooling::begin()).await
}

/// Fails a new connection to a server in recovery, as an I/O error (a lost connection).
async fn refuse_a_standby(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    let in_recovery: bool = statements::common::in_recovery().scalar().fetch_one(conn).await?;
    if in_recovery {
        return Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connected to a standby (read-only) server; the primary is elsewhere: reconnecting",
        )));
    }
    Ok(())
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
        match statements::common::ping().execute(pool).await {
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
/// statement is wrong": the loops back off and retry on these, and a statement whose
/// reply was lost this way may or may not have committed.
///
/// Every fault a failover makes is one (tests/connection_errors.rs): a protocol error
/// (a proxy that accepts and closes while no primary is up makes sqlx read no answer to
/// its SSLRequest), a read-only server (25006: a standby reached mid-failover), a server
/// shutting down or starting (57P01-57P03), too many connections (53300), and every 08
/// connection exception.
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "25006" || c == "53300"),
        _ => false,
    }
}
