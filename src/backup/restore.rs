//! Restoring a backup into an empty database, then making it safe to send from: a
//! backup is up to a day old, and what happened since must not be undone. With the
//! database the backup was taken from still readable (`--catch-up-from`), the erasures
//! logged and the suppressions added since are copied over; then every logged erasure
//! is applied again (`postrunner.replay_erasures()`), so a person erased after the
//! backup is erased again before any worker runs. tests/backups.rs checks both.
//!
//! Then the providers' own suppression lists (SendGrid, Mailgun, Postmark, SES) are read
//! into the restored database (crates/postrunner-feedback/src/provider_suppressions.rs), with the
//! providers' secrets from this process's environment, so what they learnt since the
//! backup is not lost even when the newer database is.

use postrunner_schema::statements;
use sqlx::{Connection as _, PgConnection};

use super::check::{download, pg_restore};
use super::store::BackupStore;
use super::{BackupError, Manifest, Progress};

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    pub erasures_copied: u64,
    pub suppressions_copied: u64,
    /// Quarantines (soft bounces) in the backup replaced by a permanent suppression (an
    /// unsubscribe, a complaint, a hard bounce) or a later end made since.
    pub suppressions_upgraded: u64,
    pub messages_erased_again: i32,
    /// Each provider's suppression lists, read into the restored database.
    pub provider_lists: Vec<postrunner_feedback::provider_suppressions::Pulled>,
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
    let occupied: bool = statements::backups::target_occupied()
        .scalar()
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
    postrunner_schema::migrate::run(into)
        .await
        .map_err(|e| BackupError::Refused(format!("migrations do not apply to the restored database: {e}")))?;

    let mut restored = Restored::default();
    if let Some(source) = catch_up_from {
        progress.stage("copying the erasures and suppressions made since the backup");
        // Each table travels as one JSON document and lands in one statement.
        let mut newer = PgConnection::connect(source).await?;
        let erasures: serde_json::Value = statements::backups::erasures_as_json()
            .scalar()
            .fetch_one(&mut newer)
            .await?;
        let suppressions: serde_json::Value = statements::backups::suppressions_as_json()
            .scalar()
            .fetch_one(&mut newer)
            .await?;
        // One statement (sql/definitions/390_backups_catch_up.sql): a permanent suppression always
        // replaces a quarantine, whichever database holds which.
        let (erasures, copied, upgraded): (i64, i64, i64) = statements::backups::catch_up(erasures, suppressions)
            .rows()
            .fetch_one(&mut target)
            .await?;
        restored.erasures_copied = erasures as u64;
        restored.suppressions_copied = copied as u64;
        restored.suppressions_upgraded = upgraded as u64;
    }
    progress.stage("applying the erasure log again");
    restored.messages_erased_again = statements::backups::replay_erasures()
        .scalar()
        .fetch_one(&mut target)
        .await?;
    if pull_provider_lists {
        progress.stage("reading the providers' suppression lists");
        let pool = postrunner_schema::pool(into, 2, "postrunner-restore")?;
        let providers = postrunner_providers::Directory::new(pool.clone());
        restored.provider_lists = postrunner_feedback::provider_suppressions::pull(&pool, &providers).await?;
        pool.close().await;
    }
    Ok((manifest, restored))
}
