//! How postrunner's sessions reach PostgreSQL: straight (or through PgBouncer in session
//! mode), or through PgBouncer in transaction mode, where consecutive transactions of one
//! client connection may run on different server connections.
//!
//! In transaction mode nothing may outlive a transaction on the server, so:
//! - no named prepared statements: the pools keep no statement cache and every statement
//!   is prepared unnamed (sqlx would otherwise name one per statement and find it gone on
//!   the next server connection);
//! - each statement run outside a transaction runs in one ([`Statement`] begins and
//!   commits it): sqlx prepares in one exchange (Parse, Describe, Sync) and executes in a
//!   second (Bind, Execute, Sync), and between the two PgBouncer may hand the server
//!   connection to another client;
//! - the session limits are `SET LOCAL` in each transaction's `BEGIN` ([`begin`]) rather
//!   than startup options, which PgBouncer 1.18 refuses;
//! - LISTEN and the migrations' session lock use a direct connection (`DATABASE_DIRECT_URL`)
//!   when one is given; without one, workers poll and `migrate` refuses to run.
//!
//! The mode is the process's, set once at start-up before any pool is built ([`set`]):
//! every pool of one process reaches the same server the same way.
//! tests/pgbouncer.rs runs deployments through a real PgBouncer 1.18 in transaction mode.
//!
//! [`Statement`]: crate::statements::Statement

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::SessionLimits;

/// How the sessions of this process reach PostgreSQL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// Each client connection is one server session (direct, or PgBouncer's session
    /// mode): prepared statements are cached, the session limits are startup options.
    #[default]
    Session,
    /// PgBouncer's transaction mode: only a transaction keeps its server connection.
    Transaction,
}

impl std::str::FromStr for Pooling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!("unknown pooling {other:?}: expected session or transaction")),
        }
    }
}

struct Mode {
    pooling: Pooling,
    /// `BEGIN` with the session limits as `SET LOCAL`, for transaction mode.
    begin: String,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets the process's pooling and, in transaction mode, the limits each transaction
/// sets for itself. Once, before any pool is built; later calls with the same mode are
/// no-ops.
///
/// # Panics
/// A second call asks for another mode: pools already built would be wrong.
pub fn set(pooling: Pooling, limits: SessionLimits) {
    let ms = |d: std::time::Duration| d.as_millis();
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
        ms(limits.lock_timeout),
        ms(limits.statement_timeout)
    );
    let mode = MODE.get_or_init(|| Mode { pooling, begin });
    assert_eq!(mode.pooling, pooling, "the pooling mode is set once per process");
}

/// The process's pooling ([`Pooling::Session`] unless [`set`] said otherwise).
pub fn current() -> Pooling {
    MODE.get().map_or(Pooling::Session, |m| m.pooling)
}

/// What starts a transaction: plain `BEGIN` in session mode (the limits are the
/// session's), `BEGIN` with the limits as `SET LOCAL` in transaction mode.
pub fn begin() -> Cow<'static, str> {
    match MODE.get() {
        Some(mode) if mode.pooling == Pooling::Transaction => Cow::Owned(mode.begin.clone()),
        _ => Cow::Borrowed("BEGIN"),
    }
}
