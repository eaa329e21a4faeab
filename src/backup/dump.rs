//! Taking a backup: `pg_dump --format=custom` streamed to storage while its SHA-256 and
//! size are computed, then the manifest beside it.
//!
//! The row counts must describe exactly what the dump holds, on a database that keeps
//! changing: a REPEATABLE READ transaction exports its snapshot (`pg_export_snapshot()`),
//! counts every table in it, and pg_dump reads the same snapshot (`--snapshot`). The
//! transaction only reads, and stays open just while pg_dump runs (pg_dump itself would
//! hold one as long). The restore check then compares the restored tables with these
//! counts (tests/backups.rs).

use std::collections::BTreeMap;
use std::process::Stdio;

use chrono::Utc;
use sqlx::{Connection as _, PgPool};
use tokio::io::AsyncReadExt as _;

use super::store::BackupStore;
use super::{BackupError, Manifest, Progress};

use postrunner_schema::statements;
/// The environment a PostgreSQL tool gets for `url`: the URL without its password, and
/// the password in `PGPASSWORD` (so it is not on the command line for `ps` to show).
pub fn tool_connection(url: &str) -> (String, Option<String>) {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let password = parsed.password().map(percent_decode);
            let _ = parsed.set_password(None);
            (parsed.to_string(), password)
        }
        _ => (url.to_owned(), None),
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The database URL backups are taken with: `POSTRUNNER_BACKUP_DATABASE_URL` (a login
/// that may read every table, e.g. `IN ROLE pg_read_all_data`; the processes' own
/// logins may not read the migration history), else `DATABASE_DIRECT_URL` (PostgreSQL
/// itself when `database_url` is PgBouncer), else `database_url`.
pub fn source_url(database_url: &str) -> String {
    super::first_set(&["POSTRUNNER_BACKUP_DATABASE_URL", "DATABASE_DIRECT_URL"])
        .unwrap_or_else(|| database_url.to_owned())
}

/// The object key of a backup started at `at`: one folder per day.
pub fn key_for(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y/%m/%d/postrunner-%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Takes a backup of the database at `url` (as its role: one that reads everything,
/// see [`source_url`]) into `store`; records it through `pool` in `postrunner.backups`
/// (`uploaded`, or `failed` with the reason) and returns its manifest.
///
/// # Errors
/// [`BackupError`]: pg_dump failed, the storage refused, or the database did.
pub async fn take(
    pool: &PgPool,
    url: &str,
    store: &BackupStore,
    trigger: &str,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    let created_at = Utc::now();
    let key = key_for(created_at);
    let id: i64 = statements::backups::start(&key, trigger)
        .scalar()
        .fetch_one(pool)
        .await?;
    match dump(url, store, &key, created_at, progress).await {
        Ok(manifest) => {
            statements::backups::uploaded(
                id,
                manifest.size_bytes as i64,
                &manifest.sha256,
                &manifest.schema_version,
                serde_json::to_value(&manifest.row_counts).expect("counts serialise"),
            )
            .execute(pool)
            .await?;
            Ok(manifest)
        }
        Err(error) => {
            let _ = statements::backups::failed(&key, &error.to_string())
                .execute(pool)
                .await;
            Err(error)
        }
    }
}

async fn dump(
    url: &str,
    store: &BackupStore,
    key: &str,
    created_at: chrono::DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    progress.stage("counting rows in the dump's snapshot");
    // As the role pg_dump runs as: what it may read is what gets counted.
    let mut source = sqlx::PgConnection::connect(url).await?;
    let mut snapshot = source.begin().await?;
    statements::backups::snapshot_transaction()
        .execute(&mut *snapshot)
        .await?;
    let snapshot_id: String = statements::backups::export_snapshot()
        .scalar()
        .fetch_one(&mut *snapshot)
        .await?;
    let schema_version: String = statements::backups::schema_version()
        .scalar()
        .fetch_one(&mut *snapshot)
        .await?;
    let row_counts = row_counts(&mut snapshot).await?;

    progress.stage("dumping");
    let mut child = start_pg_dump(url, &snapshot_id)?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let mut writer = store.dump_writer(key).await?;
    let streamed = stream(&mut stdout, &mut writer, progress).await;
    if streamed.is_err() {
        // pg_dump would block on a full pipe forever.
        let _ = child.kill().await;
    }
    let status = child.wait().await?;
    let errors = errors.await.unwrap_or_default();
    // The snapshot is no longer needed once pg_dump is done with it.
    snapshot.rollback().await?;
    let _ = source.close().await;
    let (size, digest) = match streamed {
        Ok(streamed) => streamed,
        Err(error) => {
            let _ = writer.abort().await;
            return Err(error);
        }
    };
    if !status.success() {
        let _ = writer.abort().await;
        return Err(BackupError::Tool {
            tool: "pg_dump",
            detail: format!("{status}: {}", errors.trim()),
        });
    }
    writer.close().await?;

    let manifest = Manifest {
        key: key.to_owned(),
        created_at,
        schema_version,
        format: "pg_dump --format=custom".to_owned(),
        size_bytes: size,
        sha256: hex(digest.as_ref()),
        row_counts,
    };
    store.write_manifest(&manifest).await?;
    Ok(manifest)
}

/// Copies pg_dump's output to storage; its size and SHA-256.
async fn stream(
    stdout: &mut tokio::process::ChildStdout,
    writer: &mut opendal::Writer,
    progress: &dyn Progress,
) -> Result<(u64, ring::digest::Digest), BackupError> {
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size: u64 = 0;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = stdout.read(&mut buffer).await?;
        if n == 0 {
            return Ok((size, hasher.finish()));
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
        writer.write(buffer[..n].to_vec()).await?;
        progress.bytes(size);
    }
}

/// Every table's exact row count, read in the dump's snapshot.
async fn row_counts(snapshot: &mut sqlx::PgConnection) -> Result<BTreeMap<String, i64>, BackupError> {
    let tables: Vec<String> = statements::backups::snapshot_counts()
        .scalar()
        .fetch_all(&mut *snapshot)
        .await?;
    let mut row_counts = BTreeMap::new();
    for table in tables {
        let (schema, name) = table.split_once('.').expect("schema.table");
        let count: i64 = statements::backups::count_rows(schema, name)
            .scalar()
            .fetch_one(&mut *snapshot)
            .await?;
        row_counts.insert(table, count);
    }
    Ok(row_counts)
}

/// pg_dump of `url` in the exported snapshot, custom format to its stdout; the password
/// goes in its environment, never on its command line.
fn start_pg_dump(url: &str, snapshot_id: &str) -> Result<tokio::process::Child, BackupError> {
    let (tool_url, password) = tool_connection(url);
    let mut command = tokio::process::Command::new("pg_dump");
    command
        .args(["--format=custom", "--snapshot", snapshot_id, "--dbname", &tool_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command.spawn().map_err(|e| BackupError::Tool {
        tool: "pg_dump",
        detail: format!("could not start it (is postgresql-client installed?): {e}"),
    })
}

/// An identifier quoted for SQL.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        let (url, password) = tool_connection("postgres://owner:s%40cret@db:5432/postrunner?sslmode=verify-full");
        assert_eq!(url, "postgres://owner@db:5432/postrunner?sslmode=verify-full");
        assert_eq!(password.as_deref(), Some("s@cret"));
        assert_eq!(tool_connection("postgres://db/p").1, None);
    }

    #[test]
    fn keys_sort_by_time_in_daily_folders() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 6, 3, 0, 1).unwrap();
        assert_eq!(key_for(at), "2026/12/06/postrunner-20261206T030001.000Z");
    }
}
