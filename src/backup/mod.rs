//! Backups: a `pg_dump` of the database in custom format streamed to S3-compatible
//! storage with a manifest, an automatic restore check into a scratch database, a
//! retention policy, and restores that re-apply the erasure log.
//!
//! - [`store`]: where backups go (`POSTRUNNER_BACKUP_S3_*`), through Apache OpenDAL;
//! - [`dump`]: take one: the row counts and the dump come from one exported snapshot, so
//!   the manifest says exactly what the dump holds;
//! - [`check`]: download, compare size and SHA-256 with the manifest, `pg_restore` into a
//!   scratch database, compare the migrations and every table's row count;
//! - [`retention`]: which backups to keep (N daily, M weekly);
//! - [`restore`]: into an empty database, then the erasures logged since re-applied.
//!
//! Every step is recorded in `postrunner.backups` (V28); `postgres_backup_last_success`
//! and the status summary read the last verified backup.

pub mod check;
pub mod dump;
pub mod restore;
pub mod retention;
pub mod store;

use std::collections::BTreeMap;

/// The first of the environment variables `names` that is set and not empty.
pub(crate) fn first_set(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a backup holds, stored beside it as `<key>.manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub created_at: DateTime<Utc>,
    /// The latest migration applied (`V27__notifications`).
    pub schema_version: String,
    /// `pg_dump --format=custom`.
    pub format: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// Rows per table of the postrunner schema, counted in the dump's snapshot.
    pub row_counts: BTreeMap<String, i64>,
}

/// A backup step failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backups are not configured: {0}")]
    NotConfigured(String),
    #[error("storage: {0}")]
    Storage(#[from] opendal::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{tool}: {detail}")]
    Tool { tool: &'static str, detail: String },
    #[error("the backup does not match its manifest: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Refused(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Reports progress in bytes (the CLI draws a bar; jobs log nothing).
pub trait Progress: Send + Sync {
    fn bytes(&self, _done: u64) {}
    fn stage(&self, _what: &str) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// A database URL with another database name (the scratch database of a check).
pub use postrunner_schema::local_cluster::with_database;
