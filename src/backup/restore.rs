//! Restoring a backup into an empty database, then making it safe to send from: a
//! backup is up to a day old, and what happened since must not be undone. With the
//! database the backup was taken from still readable (`--catch-up-from`), the erasures
//! logged and the suppressions added since are copied over; then every logged erasure
//! is applied again (`postrunner.replay_erasures()`), so a person erased after the
//! backup is erased again before any worker runs. tests/backups.rs checks both.
//!
//! Then the providers' own suppression lists (SendGrid, Mailgun, Postmark, SES) are read
//! into the restored database (src/feedback/provider_suppressions.rs), with the
//! providers' secrets from this process's environment, so what they learnt since the
//! backup is not lost even when the newer database is.

use sqlx::{Connection as _, PgConnection};

use super::check::{download, pg_restore};
use super::store::BackupStore;
use super::{BackupError, Manifest, Progress};

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    pub erasures_copied: u64,
    pub suppressions_copied: u64,
    pub messages_erased_again: i32,
    /// Each provider's suppression lists, read into the restored database.
    pub provider_lists: Vec<crate::feedback::provider_suppressions::Pulled>,
}

/// Restores backup `key` into the empty database at `into`; see the module docs.
///
/// # Errors
/// [`BackupError::Refused`] when `into` already holds a postrunner schema; a checksum
/// mismatch; pg_restore's or the database's errors.
pub async fn restore(
    store: &BackupStore,
    key: &str,
    into: &str,
    catch_up_from: Option<&str>,
    pull_provider_lists: bool,
    progress: &dyn Progress,
) -> Result<(Manifest, Restored), BackupError> {
    let mut target = PgConnection::connect(into).await?;
    let occupied: bool = sqlx::query_scalar("SELECT to_regnamespace('postrunner') IS NOT NULL")
        .fetch_one(&mut target)
        .await?;
    if occupied {
        return Err(BackupError::Refused(
            "the target database already has a postrunner schema: restore into a new, empty database".to_owned(),
        ));
    }
    progress.stage("downloading and checking the checksum");
    let (manifest, file) = download(store, key, progress).await?;
    progress.stage("restoring");
    pg_restore(&file.0, into, &["--no-owner"]).await?;
    progress.stage("applying this binary's migrations");
    crate::db::migrate::run(into)
        .await
        .map_err(|e| BackupError::Refused(format!("migrations do not apply to the restored database: {e}")))?;

    let mut restored = Restored::default();
    if let Some(source) = catch_up_from {
        progress.stage("copying the erasures and suppressions made since the backup");
        // Each table travels as one JSON document and lands in one statement.
        let mut newer = PgConnection::connect(source).await?;
        let erasures: serde_json::Value = sqlx::query_scalar(
            "SELECT coalesce(jsonb_agg(jsonb_build_object('client', client, 'address_hash', address_hash,
                                                           'erased_at', erased_at, 'erased', erased)), '[]')
               FROM postrunner.erasures",
        )
        .fetch_one(&mut newer)
        .await?;
        let suppressions: serde_json::Value = sqlx::query_scalar(
            "SELECT coalesce(jsonb_agg(jsonb_build_object('client', client, 'address', address, 'reason', reason,
                                                           'detail', detail, 'created_at', created_at)), '[]')
               FROM postrunner.suppressions",
        )
        .fetch_one(&mut newer)
        .await?;
        let mut tx = target.begin().await?;
        restored.erasures_copied = sqlx::query(
            "INSERT INTO postrunner.erasures (client, address_hash, erased_at, erased)
             SELECT x.client, x.address_hash, x.erased_at, x.erased
               FROM jsonb_to_recordset($1) AS x(client text, address_hash text, erased_at timestamptz, erased jsonb)
              WHERE EXISTS (SELECT 1 FROM postrunner.clients c WHERE c.name = x.client)
             ON CONFLICT (client, address_hash) DO NOTHING",
        )
        .bind(erasures)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        restored.suppressions_copied = sqlx::query(
            "INSERT INTO postrunner.suppressions (client, address, reason, detail, created_at)
             SELECT x.client, x.address, x.reason::postrunner.suppression_reason, x.detail, x.created_at
               FROM jsonb_to_recordset($1) AS x(client text, address text, reason text, detail text, created_at timestamptz)
              WHERE EXISTS (SELECT 1 FROM postrunner.clients c WHERE c.name = x.client)
             ON CONFLICT (client, lower(address)) DO NOTHING",
        )
        .bind(suppressions)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    progress.stage("applying the erasure log again");
    restored.messages_erased_again = sqlx::query_scalar("SELECT postrunner.replay_erasures()")
        .fetch_one(&mut target)
        .await?;
    if pull_provider_lists {
        progress.stage("reading the providers' suppression lists");
        let pool = crate::db::pool(into, 2, "postrunner-restore")?;
        let providers = crate::providers::Directory::new(pool.clone());
        restored.provider_lists = crate::feedback::provider_suppressions::pull(&pool, &providers).await?;
        pool.close().await;
    }
    Ok((manifest, restored))
}
