//! `system.backup` (schedule `backup`, daily when enabled): takes a backup, checks it
//! by restoring it into a scratch database, then applies the retention policy. The
//! storage comes from the worker's environment (src/backup/store.rs); the scratch
//! database is created on the server of `POSTRUNNER_BACKUP_SCRATCH_URL` (a login that
//! may CREATE DATABASE), by default the worker's own `DATABASE_URL`.

use sqlx::PgPool;

use crate::backup::{self, store::BackupStore, BackupError, Quiet};
use postrunner_queue::handler::{Handler, JobError};
use postrunner_queue::ClaimedJob;

pub const KIND: &str = "system.backup";

/// Daily backups kept, and weekly (the newest of each ISO week).
const KEEP_DAILY: &str = "POSTRUNNER_BACKUP_KEEP_DAILY";
const KEEP_WEEKLY: &str = "POSTRUNNER_BACKUP_KEEP_WEEKLY";
const SCRATCH_URL: &str = "POSTRUNNER_BACKUP_SCRATCH_URL";

pub struct Backup {
    pool: PgPool,
}

impl Backup {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The server restore checks create their scratch database on: `POSTRUNNER_BACKUP_SCRATCH_URL`,
/// else `DATABASE_DIRECT_URL` (PostgreSQL itself when `database_url` is PgBouncer), else
/// `database_url`.
pub fn scratch_server_url(database_url: &str) -> String {
    crate::backup::first_set(&[SCRATCH_URL, "DATABASE_DIRECT_URL"]).unwrap_or_else(|| database_url.to_owned())
}

/// One full round: dump, check, prune. Shared by the job and `postrunner backup now`.
///
/// # Errors
/// The first step that failed (each is recorded in `postrunner.backups`).
pub async fn backup_check_prune(
    pool: &PgPool,
    database_url: &str,
    store: &BackupStore,
    trigger: &str,
    progress: &dyn backup::Progress,
) -> Result<(backup::Manifest, usize), BackupError> {
    let manifest = backup::dump::take(pool, &backup::dump::source_url(database_url), store, trigger, progress).await?;
    let scratch_server = scratch_server_url(database_url);
    backup::check::check(pool, &scratch_server, store, &manifest.key, progress).await?;
    let pruned = backup::retention::prune(
        pool,
        store,
        count_from_env(KEEP_DAILY, 7),
        count_from_env(KEEP_WEEKLY, 4),
    )
    .await?;
    Ok((manifest, pruned))
}

#[async_trait::async_trait]
impl Handler for Backup {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let store = BackupStore::from_env().map_err(|e| JobError::Permanent(e.to_string()))?;
        let url =
            std::env::var("DATABASE_URL").map_err(|_| JobError::Permanent("DATABASE_URL is not set".to_owned()))?;
        match backup_check_prune(&self.pool, &url, &store, "schedule", &Quiet).await {
            Ok((manifest, pruned)) => {
                tracing::info!(
                    backup.key = %manifest.key,
                    backup.bytes = manifest.size_bytes,
                    backups.pruned = pruned,
                    "backup taken and verified"
                );
                Ok(Some(
                    serde_json::json!({"key": manifest.key, "bytes": manifest.size_bytes, "pruned": pruned}),
                ))
            }
            Err(error) => {
                tracing::error!(%error, "backup failed");
                Err(JobError::Retry(error.to_string()))
            }
        }
    }
}
