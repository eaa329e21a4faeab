//! `postrunner migrate`: refinery migrations from `migrations/` (the schema), then the
//! definitions under `sql/` (functions, triggers, views and grants: [`super::definitions`]),
//! all embedded in the binary.
//!
//! refinery has no sqlx driver, so migrations run over one `tokio-postgres` connection.
//! That connection first takes a session advisory lock, so replicas that start at the
//! same time (docker compose starts several) apply the migrations one after the other:
//! the first applies them, the others then find nothing to do. refinery checks the
//! checksums of applied migrations, so an edited merged migration fails loudly.

use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Advisory lock key shared by every `postrunner migrate` (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x706f_7374_6d69_6772; // "postmigr"

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database to migrate it")]
    Connect(#[source] tokio_postgres::Error),
    #[error("cannot set up TLS to the database")]
    Tls(#[source] super::tls::TlsConfigError),
    #[error("cannot take the migration lock")]
    Lock(#[source] tokio_postgres::Error),
    #[error("a migration failed")]
    Migration(#[source] refinery::Error),
    #[error(transparent)]
    Definitions(#[from] super::definitions::DefinitionError),
}

/// What a run of `migrate` changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Migrations applied, as `V<n>__<name>`.
    pub migrations: Vec<String>,
    /// Definition files under `sql/` that were new or changed (all were applied).
    pub definitions: Vec<&'static str>,
}

impl MigrateReport {
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty() && self.definitions.is_empty()
    }
}

impl std::fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return write!(f, "database is up to date");
        }
        if !self.migrations.is_empty() {
            writeln!(f, "applied {}", self.migrations.join(", "))?;
        }
        if !self.definitions.is_empty() {
            write!(f, "updated definitions: sql/{}", self.definitions.join(", sql/"))?;
        }
        Ok(())
    }
}

/// Drives the migration connection until it closes.
async fn closed<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::debug!(%error, "migration connection closed");
    }
}

/// Applies every pending migration, then the definitions when any changed, and says
/// what it did (nothing, when the database was already up to date).
///
/// # Errors
/// See [`MigrateError`]; a failed migration is rolled back by refinery, failed
/// definitions by their transaction.
pub async fn run(database_url: &str) -> Result<MigrateReport, MigrateError> {
    let target = super::tls::for_migrations(database_url).map_err(MigrateError::Tls)?;
    let (mut client, connection) = match target.tls {
        Some(tls) => {
            let (client, connection) = tokio_postgres::connect(&target.url, tls)
                .await
                .map_err(MigrateError::Connect)?;
            (client, tokio::spawn(closed(connection)))
        }
        None => {
            let (client, connection) = tokio_postgres::connect(&target.url, NoTls)
                .await
                .map_err(MigrateError::Connect)?;
            (client, tokio::spawn(closed(connection)))
        }
    };

    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(MigrateError::Lock)?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await;
    let definitions = match &report {
        Ok(_) => Some(super::definitions::apply(&mut client).await),
        Err(_) => None,
    };
    // Closing the connection releases the session lock even if unlocking fails.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = connection.await;

    let report = report.map_err(MigrateError::Migration)?;
    let definitions = definitions.expect("applied after successful migrations")?;
    Ok(MigrateReport {
        migrations: report
            .applied_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect(),
        definitions,
    })
}

/// Names of the migrations embedded in this binary, in order (for `--help` and tests).
pub fn embedded_migrations() -> Vec<String> {
    let runner = embedded::migrations::runner();
    let mut migrations: Vec<_> = runner.get_migrations().iter().collect();
    migrations.sort_by_key(|m| m.version());
    migrations
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect()
}

/// Does the database hold every migration and definition this binary embeds (what
/// `postrunner migrate` would leave it with)? For readiness checks.
///
/// # Errors
/// The database could not be queried.
pub async fn is_current(pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
    let newest = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0);
    // A database older than postrunner.schema_version() (or without the schema) is
    // simply not current.
    let applied: Option<i64> = match crate::statements::common::schema_version()
        .scalar()
        .fetch_one(pool)
        .await
    {
        Ok(applied) => applied,
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42883" | "3F000")) => return Ok(false),
        Err(e) => return Err(e),
    };
    if applied.unwrap_or(0) < newest {
        return Ok(false);
    }
    let files: Vec<&str> = super::definitions::DEFINITIONS.iter().map(|d| d.file).collect();
    let texts: Vec<&str> = super::definitions::DEFINITIONS.iter().map(|d| d.sql).collect();
    crate::statements::common::definitions_current(files, texts)
        .scalar()
        .fetch_one(pool)
        .await
}
