//! The restore check: a backup counts only once it has been restored. Downloads the
//! dump, compares its size and SHA-256 with the manifest (a corrupted or truncated object
//! fails here), restores it with `pg_restore --exit-on-error` into a scratch database,
//! compares every table's row count and the schema version with the manifest, runs
//! this binary's migrations over it (they must apply), then drops the scratch database.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures_util::StreamExt as _;
use sqlx::{Connection as _, PgPool};
use tokio::io::AsyncWriteExt as _;

use super::dump::{hex, quote, tool_connection};
use super::store::BackupStore;
use super::{with_database, BackupError, Manifest, Progress};

use postrunner_schema::statements;

/// Downloads `key`'s dump to a temporary file, checking it against its manifest.
///
/// # Errors
/// [`BackupError::Mismatch`] when size or checksum differ; storage errors.
pub async fn download(
    store: &BackupStore,
    key: &str,
    progress: &dyn Progress,
) -> Result<(Manifest, TempFile), BackupError> {
    let manifest = store.read_manifest(key).await?;
    let file = TempFile::new(key);
    let mut out = tokio::fs::File::create(&file.0).await?;
    let mut stream = std::pin::pin!(store.dump_reader(key).await?);
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await?;
        progress.bytes(size);
    }
    out.flush().await?;
    let sha256 = hex(hasher.finish().as_ref());
    if size != manifest.size_bytes {
        return Err(BackupError::Mismatch(format!(
            "{} bytes in storage, {} in the manifest",
            size, manifest.size_bytes
        )));
    }
    if sha256 != manifest.sha256 {
        return Err(BackupError::Mismatch(format!(
            "SHA-256 {sha256} in storage, {} in the manifest",
            manifest.sha256
        )));
    }
    Ok((manifest, file))
}

/// Runs `pg_restore` of `file` into the database at `url`.
///
/// # Errors
/// [`BackupError::Tool`] with pg_restore's own message.
pub async fn pg_restore(file: &Path, url: &str, extra: &[&str]) -> Result<(), BackupError> {
    let (tool_url, password) = tool_connection(url);
    let mut command = tokio::process::Command::new("pg_restore");
    command
        .args(["--exit-on-error", "--dbname", &tool_url])
        .args(extra)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().await.map_err(|e| BackupError::Tool {
        tool: "pg_restore",
        detail: format!("could not start it (is postgresql-client installed?): {e}"),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BackupError::Tool {
            tool: "pg_restore",
            detail: format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
        })
    }
}

/// Checks backup `key` by restoring it into a scratch database on the server of
/// `server_url` (a login that may CREATE DATABASE); records the outcome in `pool`'s
/// `postrunner.backups`.
///
/// # Errors
/// [`BackupError`]: what did not match or failed (also recorded).
pub async fn check(
    pool: &PgPool,
    server_url: &str,
    store: &BackupStore,
    key: &str,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    match restore_and_compare(server_url, store, key, progress).await {
        Ok(manifest) => {
            statements::backups::verified(key).execute(pool).await?;
            Ok(manifest)
        }
        Err(error) => {
            let _ = statements::backups::failed(key, &format!("restore check: {error}"))
                .execute(pool)
                .await;
            Err(error)
        }
    }
}

async fn restore_and_compare(
    server_url: &str,
    store: &BackupStore,
    key: &str,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    progress.stage("downloading and checking the checksum");
    let (manifest, file) = download(store, key, progress).await?;
    let scratch = format!("postrunner_restore_check_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(server_url).await?;
    sqlx::query(&format!("CREATE DATABASE {}", quote(&scratch)))
        .execute(&mut admin)
        .await?;
    let scratch_url = with_database(server_url, &scratch);
    progress.stage("restoring into a scratch database");
    let compared = async {
        pg_restore(&file.0, &scratch_url, &["--no-owner", "--no-acl"]).await?;
        compare(&scratch_url, &manifest).await?;
        progress.stage("applying this binary's migrations to the restored copy");
        postrunner_schema::migrate::run(&scratch_url)
            .await
            .map_err(|e| BackupError::Mismatch(format!("migrations do not apply to the restored copy: {e}")))?;
        Ok::<(), BackupError>(())
    }
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&scratch)))
        .execute(&mut admin)
        .await;
    compared?;
    Ok(manifest)
}

/// Every table's row count and the schema version of the restored copy against the
/// manifest.
async fn compare(scratch_url: &str, manifest: &Manifest) -> Result<(), BackupError> {
    let mut restored = sqlx::PgConnection::connect(scratch_url).await?;
    let version: Option<String> = statements::backups::schema_version()
        .scalar()
        .fetch_optional(&mut restored)
        .await?;
    if version.as_deref() != Some(manifest.schema_version.as_str()) {
        return Err(BackupError::Mismatch(format!(
            "schema version {version:?} restored, {} in the manifest",
            manifest.schema_version
        )));
    }
    let mut differences = Vec::new();
    for (table, expected) in &manifest.row_counts {
        let (schema, name) = table.split_once('.').unwrap_or(("postrunner", table));
        let count: Result<i64, _> = statements::backups::count_rows(schema, name)
            .scalar()
            .fetch_one(&mut restored)
            .await;
        match count {
            Ok(count) if count == *expected => {}
            Ok(count) => differences.push(format!("{table}: {count} rows restored, {expected} in the manifest")),
            Err(e) => differences.push(format!("{table}: {e}")),
        }
    }
    restored.close().await?;
    if differences.is_empty() {
        Ok(())
    } else {
        Err(BackupError::Mismatch(differences.join("; ")))
    }
}

/// A downloaded dump, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    fn new(key: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "postrunner-{}-{}.dump",
            key.replace('/', "-"),
            uuid::Uuid::new_v4().simple()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
