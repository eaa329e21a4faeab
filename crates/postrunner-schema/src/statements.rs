//! The statements the code runs, one file each under `sql/statements/<area>/`, each with
//! one typed function named after its file: `queue::claim(limit, worker, ..)` binds the
//! parameters of `sql/statements/queue/claim.sql` in order and returns a [`Statement`],
//! which the caller runs with [`Statement::execute`], or reads with [`Statement::rows`]
//! or [`Statement::scalar`] into the types it chooses.
//!
//! Only this crate includes SQL files (`tests/maps.rs,
//! runtime_code_runs_only_the_statements_of_the_schema_crate`). The parameters are
//! checked against PostgreSQL, not just the compiler: `tests/statements.rs,
//! every_statement_takes_exactly_the_parameters_of_its_function` prepares each file
//! against the migrated schema and compares the parameter types PostgreSQL infers with
//! the Rust types of its function, in order.

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgTypeInfo};
use sqlx::query::{Map, Query};
use sqlx::{Acquire, Connection as _, FromRow, PgConnection, Postgres, Row as _};

use crate::pooling::{self, Pooling};

/// One statement file with its parameters bound, ready to run on a pool, a connection or
/// a transaction (anything sqlx can acquire a connection from).
///
/// Outside a transaction in PgBouncer's transaction mode, it runs in a transaction of
/// its own, so that its prepare and its execution reach the same server connection
/// ([`crate::pooling`]; tests/pgbouncer.rs runs a deployment through a real PgBouncer).
///
/// Its runners return boxed futures: an `async fn` generic over `Acquire` is rejected
/// where the pool's `after_connect` needs a `Send` future for every connection lifetime
/// ("implementation of `Acquire` is not general enough"); a box is checked here, once.
#[must_use = "a statement does nothing until it runs"]
pub struct Statement<'q> {
    query: Query<'q, Postgres, PgArguments>,
}

/// Rows of a statement, decoded into `O`.
#[must_use = "rows are read only when fetched"]
pub struct Rows<'q, O> {
    query: Map<'q, Postgres, Decode<O>, PgArguments>,
}

/// How a row becomes an `O`.
type Decode<O> = fn(PgRow) -> Result<O, sqlx::Error>;

/// Runs `run` on a connection from `db`: as it is in session mode or inside a
/// transaction, in a transaction of its own otherwise.
macro_rules! on_one_server {
    ($db:expr, |$conn:ident| $run:expr) => {{
        let mut acquired = $db.acquire().await?;
        let $conn: &mut PgConnection = &mut acquired;
        if pooling::current() == Pooling::Transaction && !$conn.is_in_transaction() {
            let mut tx = $conn.begin_with(pooling::begin()).await?;
            let result = {
                let $conn: &mut PgConnection = &mut tx;
                $run.await?
            };
            tx.commit().await?;
            Ok(result)
        } else {
            $run.await
        }
    }};
}

impl<'q, O: Send + Unpin> Rows<'q, O> {
    /// Every row.
    pub fn fetch_all<'c, 'f, A>(self, db: A) -> BoxFuture<'f, Result<Vec<O>, sqlx::Error>>
    where
        A: Acquire<'c, Database = Postgres> + Send + 'f,
        'c: 'f,
        'q: 'f,
        O: 'f,
    {
        Box::pin(async move { on_one_server!(db, |conn| self.query.fetch_all(conn)) })
    }

    /// The first row; an error when there is none.
    pub fn fetch_one<'c, 'f, A>(self, db: A) -> BoxFuture<'f, Result<O, sqlx::Error>>
    where
        A: Acquire<'c, Database = Postgres> + Send + 'f,
        'c: 'f,
        'q: 'f,
        O: 'f,
    {
        Box::pin(async move { on_one_server!(db, |conn| self.query.fetch_one(conn)) })
    }

    /// The first row, if any.
    pub fn fetch_optional<'c, 'f, A>(self, db: A) -> BoxFuture<'f, Result<Option<O>, sqlx::Error>>
    where
        A: Acquire<'c, Database = Postgres> + Send + 'f,
        'c: 'f,
        'q: 'f,
        O: 'f,
    {
        Box::pin(async move { on_one_server!(db, |conn| self.query.fetch_optional(conn)) })
    }
}

impl<'q> Statement<'q> {
    fn new(sql: &'static str) -> Self {
        Self {
            // Unnamed (prepared anew each time) where a named statement would not
            // survive the transaction.
            query: sqlx::query(sql).persistent(pooling::current() == Pooling::Session),
        }
    }

    fn bind<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    {
        Self {
            query: self.query.bind(value),
        }
    }

    /// Runs the statement for its effect.
    pub fn execute<'c, 'f, A>(self, db: A) -> BoxFuture<'f, Result<PgQueryResult, sqlx::Error>>
    where
        A: Acquire<'c, Database = Postgres> + Send + 'f,
        'c: 'f,
        'q: 'f,
    {
        Box::pin(async move { on_one_server!(db, |conn| self.query.execute(conn)) })
    }

    /// The statement's rows, each decoded as an `O` (a tuple or a `FromRow` struct).
    pub fn rows<O>(self) -> Rows<'q, O>
    where
        O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        fn decode<O: for<'r> FromRow<'r, PgRow>>(row: PgRow) -> Result<O, sqlx::Error> {
            O::from_row(&row)
        }
        Rows {
            query: self.query.try_map(decode::<O> as Decode<O>),
        }
    }

    /// The first column of each row, decoded as an `O`.
    pub fn scalar<O>(self) -> Rows<'q, O>
    where
        O: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> + Send + Unpin,
    {
        fn decode<O>(row: PgRow) -> Result<O, sqlx::Error>
        where
            O: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
        {
            row.try_get(0)
        }
        Rows {
            query: self.query.try_map(decode::<O> as Decode<O>),
        }
    }
}

/// A statement file and the parameters its function binds, for the tests.
pub struct Signature {
    /// `<area>/<file>.sql`, under `sql/statements/`.
    pub path: &'static str,
    /// The file's text.
    pub sql: &'static str,
    /// The function's parameters, in binding order.
    pub params: Vec<Param>,
}

/// One parameter of a statement's function.
pub struct Param {
    pub name: &'static str,
    /// The Rust type, as written in the function.
    pub rust: &'static str,
    /// Whether a PostgreSQL type is one the Rust type encodes to.
    pub accepts: fn(&PgTypeInfo) -> bool,
}

/// The text of `sql/statements/<path>`, for tools that inspect a statement rather than
/// run it (the plan tests prepare and EXPLAIN them).
pub fn text(path: &str) -> Option<&'static str> {
    signatures().into_iter().find(|s| s.path == path).map(|s| s.sql)
}

/// Every statement's signature, by area and file.
pub fn signatures() -> Vec<Signature> {
    AREAS.iter().flat_map(|area| area()).collect()
}

/// `name = "file.sql" (param: Type, ..);` becomes `pub fn name(param: Type, ..) ->
/// Statement` running `sql/statements/<area>/file.sql`. Types may borrow for `'q`.
macro_rules! statements {
    ($area:literal: $( $(#[$doc:meta])* $name:ident = $file:literal ( $($param:ident : $ty:ty),* $(,)? ); )*) => {
        #[allow(unused_imports)]
        use super::*;

        $(
            $(#[$doc])*
            #[doc = concat!("\n\nRuns `sql/statements/", $area, "/", $file, "`.")]
            #[allow(clippy::too_many_arguments)]
            pub fn $name<'q>($($param: $ty),*) -> Statement<'q> {
                Statement::new(include_str!(concat!("../sql/statements/", $area, "/", $file)))
                    $(.bind($param))*
            }
        )*

        // `'q` names the borrowed types' lifetime; most types borrow nothing.
        #[allow(clippy::extra_unused_lifetimes)]
        mod params {
            #[allow(unused_imports)]
            use super::*;
            $(
                pub(super) fn $name<'q>() -> Vec<Param> {
                    vec![$(Param {
                        name: stringify!($param),
                        rust: stringify!($ty),
                        accepts: <$ty as sqlx::Type<Postgres>>::compatible,
                    }),*]
                }
            )*
        }

        /// This area's signatures (for the tests).
        pub(super) fn signatures() -> Vec<Signature> {
            vec![$(Signature {
                path: concat!($area, "/", $file),
                sql: include_str!(concat!("../sql/statements/", $area, "/", $file)),
                params: params::$name(),
            }),*]
        }
    };
}

/// Types the parameters use, for the areas below (`use super::*`).
#[allow(unused_imports)]
use sqlx::types::{
    chrono::{DateTime, Utc},
    JsonValue, Uuid,
};
use std::time::Duration;

pub mod alerts {
    statements! {"alerts":
        dispatch_notifications = "dispatch_notifications.sql" ();
        evaluate = "evaluate.sql" ();
        notification_batch = "notification_batch.sql" (channel: &'q str, notifications: &'q [i64]);
        notification_outcome = "notification_outcome.sql" (ids: &'q [i64], status: &'q str, error: Option<&'q str>);
    }
}

pub mod backups {
    statements! {"backups":
        catch_up = "catch_up.sql" (erasures: JsonValue, suppressions: JsonValue);
        count_rows = "count_rows.sql" (schema: &'q str, table: &'q str);
        erasures_as_json = "erasures_as_json.sql" ();
        export_snapshot = "export_snapshot.sql" ();
        failed = "failed.sql" (key: &'q str, error: &'q str);
        list = "list.sql" ();
        pruned = "pruned.sql" (keys: &'q [String]);
        replay_erasures = "replay_erasures.sql" ();
        schema_version = "schema_version.sql" ();
        snapshot_counts = "snapshot_counts.sql" ();
        snapshot_transaction = "snapshot_transaction.sql" ();
        start = "start.sql" (key: &'q str, trigger: &'q str);
        suppressions_as_json = "suppressions_as_json.sql" ();
        target_occupied = "target_occupied.sql" ();
        uploaded = "uploaded.sql" (id: i64, size_bytes: i64, sha256: &'q str, schema_version: &'q str, row_counts: JsonValue);
        verified = "verified.sql" (key: &'q str);
    }
}

pub mod common {
    statements! {"common":
        database_now = "database_now.sql" ();
        definitions_current = "definitions_current.sql" (files: Vec<&'q str>, texts: Vec<&'q str>);
        in_recovery = "in_recovery.sql" ();
        ping = "ping.sql" ();
        schema_version = "schema_version.sql" ();
    }
}

pub mod compliance {
    statements! {"compliance":
        apply_domain_checks = "apply_domain_checks.sql" ();
        pending_recipient_domains = "pending_recipient_domains.sql" (batch: i32);
        record_domain_check = "record_domain_check.sql" (
            domain: &'q str,
            spf_ok: bool, spf_detail: &'q str,
            dkim_ok: bool, dkim_detail: &'q str,
            dmarc_ok: bool, dmarc_detail: &'q str,
            mx_ok: bool, mx_detail: &'q str,
        );
        record_recipient_domains = "record_recipient_domains.sql" (names: &'q [String], hosts_or_errors: &'q [String], failed: &'q [bool]);
        sender_domains = "sender_domains.sql" ();
    }
}

pub mod feedback {
    statements! {"feedback":
        apply_provider_suppressions = "apply_provider_suppressions.sql" (provider: &'q str, items: JsonValue);
        bounce_mailboxes = "bounce_mailboxes.sql" ();
        lock_bounce_mailbox = "lock_bounce_mailbox.sql" (provider: &'q str);
        record_events = "record_events.sql" (provider: &'q str, events: JsonValue, nonce: Option<&'q str>, nonce_scope: Option<&'q str>);
        unsubscribe = "unsubscribe.sql" (message: Uuid);
        unsubscribe_target = "unsubscribe_target.sql" (message: Uuid);
    }
}

pub mod gdpr {
    statements! {"gdpr":
        erase = "erase.sql" (client: &'q str, address: &'q str);
        export = "export.sql" (client: &'q str, address: &'q str);
    }
}

pub mod import {
    statements! {"import":
        column_types = "column_types.sql" (table: &'q str);
    }
}

pub mod metrics {
    statements! {"metrics":
        rollup_sends = "rollup_sends.sql" ();
        scrape_timeout = "scrape_timeout.sql" ();
        snapshot = "snapshot.sql" ();
    }
}

pub mod outbox {
    statements! {"outbox":
        close_attempt = "close_attempt.sql" (attempt: i64, release: bool, error: &'q str, fault: &'q str);
        record_sent = "record_sent.sql" (
            jobs: &'q [i64],
            providers: &'q [String],
            froms: &'q [String],
            provider_message_ids: &'q [String],
            attempts: &'q [i64],
        );
        resolve_by_lookup = "resolve_by_lookup.sql" (provider: &'q str, messages: &'q [Uuid], provider_message_ids: &'q [Option<String>]);
        settle_uncertain = "settle_uncertain.sql" (now: Option<DateTime<Utc>>);
        suppress_recipient = "suppress_recipient.sql" (client: &'q str, recipient: &'q str, reason: &'q str);
        uncertain_lookups = "uncertain_lookups.sql" (providers: &'q [String], batch: i32, now: Option<DateTime<Utc>>);
        uncertain_providers = "uncertain_providers.sql" ();
    }
}

pub mod periodic {
    statements! {"periodic":
        advance = "advance.sql" (name: &'q str, tick: Option<DateTime<Utc>>, following: DateTime<Utc>);
        due = "due.sql" ();
        record_run = "record_run.sql" (
            name: &'q str,
            kind: &'q str,
            args: &'q JsonValue,
            priority: i16,
            tick: DateTime<Utc>,
            worker: Uuid,
        );
    }
}

pub mod providers {
    statements! {"providers":
        dkim_domains = "dkim_domains.sql" ();
        enabled = "enabled.sql" ();
        probe_targets = "probe_targets.sql" ();
        provider_row = "provider_row.sql" (name: &'q str);
        record_failure = "record_failure.sql" (provider: &'q str, error: &'q str, retry_after_secs: Option<f64>);
        record_probe = "record_probe.sql" (provider: &'q str, latency_ms: f64, ok: bool, error: Option<&'q str>);
        record_successes = "record_successes.sql" (providers: &'q [String]);
        sender_domains_of = "sender_domains_of.sql" (provider: &'q str);
        webhook_settings = "webhook_settings.sql" (provider: &'q str);
    }
}

pub mod queue {
    statements! {"queue":
        claim = "claim.sql" (
            limit: i64,
            worker: Uuid,
            token: Uuid,
            lease: Duration,
            now: Option<DateTime<Utc>>,
            after_neg_priority: i16,
            after_run_at: Option<DateTime<Utc>>,
            after_id: i64,
        );
        cleanup = "cleanup.sql" (retention: Duration);
        complete = "complete.sql" (ids: &'q [i64], tokens: &'q [Uuid]);
        complete_email = "complete_email.sql" (ids: &'q [i64], tokens: &'q [Uuid]);
        enqueue = "enqueue.sql" (
            kind: &'q str,
            args: JsonValue,
            priority: i16,
            run_at: Option<DateTime<Utc>>,
            unique_key: Option<&'q str>,
            max_attempts: Option<i32>,
        );
        fail = "fail.sql" (
            ids: &'q [i64],
            tokens: &'q [Uuid],
            states: &'q [&'q str],
            delays: &'q [f64],
            errors: &'q [String],
            now: Option<DateTime<Utc>>,
        );
        heartbeat = "heartbeat.sql" (worker: Uuid, lease: Duration, ids: &'q [i64], tokens: &'q [Uuid]);
        lock_batch = "lock_batch.sql" (ids: &'q [i64]);
        promote = "promote.sql" (limit: i64, now: Option<DateTime<Utc>>);
        release = "release.sql" (ids: &'q [i64], tokens: &'q [Uuid], started: &'q [bool]);
        release_lost_claims = "release_lost_claims.sql" (tokens: &'q [Uuid]);
        rescue_expired_leases = "rescue_expired_leases.sql" (now: Option<DateTime<Utc>>);
        still_leased = "still_leased.sql" (ids: &'q [i64], tokens: &'q [Uuid]);
        wake_channel = "wake_channel.sql" ();
    }
}

pub mod retention {
    statements! {"retention":
        prune = "prune.sql" ();
    }
}

pub mod routing {
    statements! {"routing":
        claim = "claim.sql" (
            limit: i64,
            worker: Uuid,
            token: Uuid,
            lease: Duration,
            now: Option<DateTime<Utc>>,
            signs_unsubscribe: bool,
        );
        next_ready = "next_ready.sql" (now: Option<DateTime<Utc>>, signs_unsubscribe: bool);
    }
}

pub mod status {
    statements! {"status":
        summary = "summary.sql" ();
    }
}

pub mod verify {
    statements! {"verify":
        findings = "findings.sql" ();
    }
}

pub mod workers {
    statements! {"workers":
        deregister = "deregister.sql" (id: Uuid);
        register = "register.sql" (
            id: Uuid,
            role: &'q str,
            host: &'q str,
            pid: i32,
            version: &'q str,
            concurrency: Option<i32>,
            heartbeat: Duration,
            signs_unsubscribe: bool,
        );
    }
}

/// Every area, for [`signatures`].
const AREAS: &[fn() -> Vec<Signature>] = &[
    alerts::signatures,
    backups::signatures,
    common::signatures,
    compliance::signatures,
    feedback::signatures,
    gdpr::signatures,
    import::signatures,
    metrics::signatures,
    outbox::signatures,
    periodic::signatures,
    providers::signatures,
    queue::signatures,
    retention::signatures,
    routing::signatures,
    status::signatures,
    verify::signatures,
    workers::signatures,
];
