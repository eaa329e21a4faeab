//! `postrunner backup now | list | check <key> | restore <key> --into <url>`, with
//! progress bars (indicatif) on a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use postrunner_schema::statements;
use sqlx::PgPool;

use crate::backup::{self, store::BackupStore, Progress};
use crate::config::BackupWhat;

/// A byte counter and the current stage, drawn by indicatif (hidden when stderr is not
/// a terminal).
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {binary_bytes:>10} {binary_bytes_per_sec:>12}  {msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(bar)
    }
}

impl Progress for Bar {
    fn bytes(&self, done: u64) {
        self.0.set_position(done);
    }
    fn stage(&self, what: &str) {
        self.0.set_position(0);
        self.0.set_message(what.to_owned());
    }
}

/// A row of `backup list`.
#[derive(sqlx::FromRow)]
struct Listed {
    object_key: String,
    status: String,
    started_at: chrono::DateTime<chrono::Utc>,
    size_bytes: Option<i64>,
    error: Option<String>,
}

/// `postrunner backup <what>`.
pub async fn command(cx: &super::Context, what: &BackupWhat) -> anyhow::Result<()> {
    let url = cx.required_url()?;
    run(&cx.pool("backup", 2)?, &url, what).await
}

/// Runs one `backup` subcommand.
///
/// # Errors
/// What failed, for the binary's edge to print.
pub async fn run(pool: &PgPool, database_url: &str, what: &BackupWhat) -> anyhow::Result<()> {
    match what {
        BackupWhat::List => list(pool).await,
        BackupWhat::Now => now(pool, database_url).await,
        BackupWhat::Check { key } => check(pool, database_url, key).await,
        BackupWhat::Restore {
            key,
            into,
            catch_up_from,
            skip_provider_suppressions,
        } => restore(key, into, catch_up_from.as_deref(), !skip_provider_suppressions).await,
    }
}

/// `backup list`: every backup, newest first.
async fn list(pool: &PgPool) -> anyhow::Result<()> {
    let rows: Vec<Listed> = statements::backups::list().rows().fetch_all(pool).await?;
    println!("{:<48} {:<9} {:>12}  {:<20} error", "key", "status", "size", "started");
    for row in rows {
        println!(
            "{:<48} {:<9} {:>12}  {:<20} {}",
            row.object_key,
            row.status,
            row.size_bytes
                .map_or("-".to_owned(), |s| indicatif::HumanBytes(s as u64).to_string()),
            row.started_at.format("%Y-%m-%d %H:%M:%S"),
            row.error.unwrap_or_default()
        );
    }
    Ok(())
}

/// `backup now`: take one, check it by restoring it into a scratch database, prune.
async fn now(pool: &PgPool, database_url: &str) -> anyhow::Result<()> {
    let store = BackupStore::from_env()?;
    let bar = Bar::new();
    let (manifest, pruned) =
        crate::kinds::backup::backup_check_prune(pool, database_url, &store, "manual", &bar).await?;
    bar.0.finish_and_clear();
    println!(
        "backup {} ({}, sha256 {}) taken, restored into a scratch database and checked; {pruned} old backups pruned",
        manifest.key,
        indicatif::HumanBytes(manifest.size_bytes),
        manifest.sha256
    );
    Ok(())
}

/// `backup check <key>`: restore it into a scratch database and compare with its manifest.
async fn check(pool: &PgPool, database_url: &str, key: &str) -> anyhow::Result<()> {
    let store = BackupStore::from_env()?;
    let bar = Bar::new();
    let server = crate::kinds::backup::scratch_server_url(database_url);
    let checked = backup::check::check(pool, &server, &store, key, &bar).await;
    bar.0.finish_and_clear();
    let manifest = checked?;
    println!(
        "backup {} restores: {} tables, row counts and schema version {} as in its manifest",
        manifest.key,
        manifest.row_counts.len(),
        manifest.schema_version
    );
    Ok(())
}

/// `backup restore <key> --into <url>`: into an empty database, catching up with a newer
/// one's erasures and suppressions when asked.
async fn restore(key: &str, into: &str, catch_up_from: Option<&str>, pull_provider_lists: bool) -> anyhow::Result<()> {
    let store = BackupStore::from_env()?;
    let bar = Bar::new();
    let restored = backup::restore::restore(&store, key, into, catch_up_from, pull_provider_lists, &bar).await;
    bar.0.finish_and_clear();
    let (manifest, restored) = restored?;
    println!(
        "restored {} into {}; copied {} erasures and {} suppressions made since, upgraded {} quarantines to what came after them; erased {} messages again",
        manifest.key,
        super::redact(into),
        restored.erasures_copied,
        restored.suppressions_copied,
        restored.suppressions_upgraded,
        restored.messages_erased_again
    );
    for pulled in &restored.provider_lists {
        println!("  {pulled}");
    }
    let failed = postrunner_feedback::provider_suppressions::failures(&restored.provider_lists);
    anyhow::ensure!(
        failed == 0,
        "{failed} providers' suppression lists could not be read: run `postrunner pull-suppressions` once they can, before sending"
    );
    Ok(())
}
