//! Backups against moto's S3 server and real pg_dump, pg_restore and PostgreSQL: taken
//! with a manifest that matches what the dump holds, checked by a restore into a scratch
//! database (and caught when the object is corrupted, truncated or its manifest lost),
//! restored into an empty database with the erasures and suppressions made since
//! re-applied.

use postrunner::backup::store::BackupStore;
use postrunner::backup::{check, dump, restore, BackupError, Quiet};
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::factory;
use crate::support::run::postrunner_output;
use crate::support::s3_server::S3Server;

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

async fn three_messages(pool: &PgPool) {
    factory::client(pool, "acme", "main").await;
    for to in ["jane@example.org", "john@example.org", "joan@example.org"] {
        factory::message(pool, "acme", "main", to).await;
    }
}

/// A new, empty database on the test server, to restore into: its name and URL.
async fn empty_database(db: &TestDb) -> (String, String) {
    let name = format!("pr_restore_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&db.pool)
        .await
        .unwrap();
    let into = postrunner::backup::with_database(&db.url, &name);
    (name, into)
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn backup_now_takes_checks_and_lists_a_backup() {
    let db = TestDb::new().await;
    three_messages(&db.pool).await;
    let s3 = S3Server::start().await;
    let prefix = prefix();
    let env = s3.env(&prefix);
    let run = |args: &'static [&'static str]| postrunner_output(&db.url, args, &env);
    let said = run(&["backup", "now"]).await;
    assert!(
        said.contains("taken, restored into a scratch database and checked"),
        "{said}"
    );

    let (key, status, size, sha256, counts): (String, String, i64, String, serde_json::Value) =
        sqlx::query_as("SELECT object_key, status, size_bytes, sha256, row_counts FROM postrunner.backups")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "verified");
    assert_eq!(counts["postrunner.outbox"], 3);
    assert_eq!(counts["postrunner.clients"], 1);

    // What is in the bucket, read without postrunner's code.
    let dump = s3
        .get(&format!("{prefix}/{key}.dump"))
        .await
        .expect("the dump is in the bucket");
    assert!(dump.starts_with(b"PGDMP"), "pg_dump's custom format");
    assert_eq!(dump.len() as i64, size);
    assert_eq!(sha256_hex(&dump), sha256);
    let manifest: serde_json::Value =
        serde_json::from_slice(&s3.get(&format!("{prefix}/{key}.manifest.json")).await.unwrap()).unwrap();
    assert_eq!(manifest["sha256"], sha256);
    assert_eq!(manifest["row_counts"], counts);
    assert!(manifest["schema_version"].as_str().unwrap().starts_with('V'));

    let listed = run(&["backup", "list"]).await;
    assert!(listed.contains(&key) && listed.contains("verified"), "{listed}");
    let last: f64 = sqlx::query_scalar(
        "SELECT value FROM postrunner.metrics_snapshot() WHERE metric = 'backup_last_success_timestamp_seconds'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!((chrono::Utc::now().timestamp() as f64 - last).abs() < 120.0, "{last}");
}

#[tokio::test]
async fn the_restore_check_catches_a_corrupted_truncated_or_orphaned_backup() {
    let db = TestDb::new().await;
    three_messages(&db.pool).await;
    let s3 = S3Server::start().await;
    let prefix = prefix();
    let store = BackupStore::new(&s3.config(&prefix)).unwrap();
    let status = |key: String| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT status, error FROM postrunner.backups WHERE object_key = $1",
            )
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    // One flipped bit.
    let manifest = dump::take(&db.pool, &db.url, &store, "manual", &Quiet).await.unwrap();
    let path = format!("{prefix}/{}.dump", manifest.key);
    let mut bytes = s3.get(&path).await.unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    s3.put(&path, bytes.clone()).await;
    let error = check::check(&db.pool, &db.url, &store, &manifest.key, &Quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BackupError::Mismatch(_)) && error.to_string().contains("SHA-256"),
        "{error}"
    );
    let (state, reason) = status(manifest.key.clone()).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("SHA-256"));

    // Cut in half.
    bytes.truncate(middle);
    s3.put(&path, bytes).await;
    let error = check::check(&db.pool, &db.url, &store, &manifest.key, &Quiet)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("bytes in storage"), "{error}");

    // A backup whose manifest is gone cannot be checked.
    let orphan = dump::take(&db.pool, &db.url, &store, "manual", &Quiet).await.unwrap();
    s3.delete(&format!("{prefix}/{}.manifest.json", orphan.key)).await;
    assert!(check::check(&db.pool, &db.url, &store, &orphan.key, &Quiet)
        .await
        .is_err());
    assert_eq!(status(orphan.key.clone()).await.0, "failed");

    // An intact one passes.
    let good = dump::take(&db.pool, &db.url, &store, "manual", &Quiet).await.unwrap();
    check::check(&db.pool, &db.url, &store, &good.key, &Quiet)
        .await
        .unwrap();
    assert_eq!(status(good.key.clone()).await.0, "verified");
}

#[tokio::test]
async fn a_restore_brings_the_data_back_and_keeps_later_erasures_and_unsubscribes() {
    let db = TestDb::new().await;
    three_messages(&db.pool).await;
    let s3 = S3Server::start().await;
    let prefix = prefix();
    let store = BackupStore::new(&s3.config(&prefix)).unwrap();
    let manifest = dump::take(&db.pool, &db.url, &store, "manual", &Quiet).await.unwrap();

    // After the backup: Jane asks to be erased, Bob unsubscribes.
    sqlx::raw_sql(
        "SELECT postrunner.erase_recipient('acme', 'jane@example.org');
         INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'bob@example.org', 'unsubscribe');",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    // Never over a database that has postrunner in it.
    let occupied = TestDb::new().await;
    let refused = restore::restore(&store, &manifest.key, &occupied.url, None, true, &Quiet).await;
    assert!(matches!(refused, Err(BackupError::Refused(_))), "{refused:?}");

    let (name, into) = empty_database(&db).await;
    let (_, restored) = restore::restore(&store, &manifest.key, &into, Some(&db.url), true, &Quiet)
        .await
        .unwrap();
    assert_eq!(restored.erasures_copied, 1);
    assert!(restored.suppressions_copied >= 1);
    assert!(restored.messages_erased_again >= 1, "{restored:?}");

    let copy = PgPool::connect(&into).await.unwrap();
    assert_eq!(
        scalar_i64(&copy, "SELECT count(*) FROM postrunner.outbox").await,
        3,
        "every message is back"
    );
    assert_eq!(
        scalar_i64(
            &copy,
            "SELECT count(*) FROM postrunner.outbox WHERE to_address = 'john@example.org'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar_i64(
            &copy,
            "SELECT count(*) FROM postrunner.outbox WHERE to_address ILIKE '%jane%'"
        )
        .await,
        0,
        "erased after the backup, erased in the restored copy too"
    );
    let erased: bool = sqlx::query_scalar("SELECT postrunner.is_erased('acme', 'jane@example.org')")
        .fetch_one(&copy)
        .await
        .unwrap();
    assert!(erased);
    assert_eq!(
        scalar_i64(
            &copy,
            "SELECT count(*) FROM postrunner.suppressions WHERE address = 'bob@example.org'"
        )
        .await,
        1,
        "unsubscribed after the backup, still unsubscribed"
    );
    copy.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn no_verified_backup_for_26_hours_raises_an_alert_once_backups_are_on() {
    let db = TestDb::new().await;
    let alerts = || async {
        sqlx::query_as::<_, (String, String)>("SELECT kind, state FROM postrunner.alerts WHERE kind = 'backup_stale'")
            .fetch_all(&db.pool)
            .await
            .unwrap()
    };
    let evaluate = || async {
        sqlx::query("SELECT postrunner.evaluate_alerts()")
            .execute(&db.pool)
            .await
            .unwrap();
    };
    sqlx::raw_sql(
        "INSERT INTO postrunner.backups (object_key, status, started_at, verified_at)
              VALUES ('old', 'verified', now() - interval '27 hours', now() - interval '27 hours')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    evaluate().await;
    assert!(
        alerts().await.is_empty(),
        "backups are off (the schedule is disabled by default)"
    );

    sqlx::query("UPDATE postrunner.schedules SET enabled = true WHERE name = 'backup'")
        .execute(&db.pool)
        .await
        .unwrap();
    evaluate().await;
    evaluate().await;
    assert_eq!(alerts().await, [("backup_stale".to_owned(), "firing".to_owned())]);

    sqlx::query(
        "INSERT INTO postrunner.backups (object_key, status, started_at, verified_at)
              VALUES ('new', 'verified', now() - interval '1 hour', now() - interval '50 minutes')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    evaluate().await;
    assert_eq!(alerts().await, [("backup_stale".to_owned(), "resolved".to_owned())]);
}

/// The compose stack's backup login: no superuser, only pg_read_all_data, BYPASSRLS (so
/// the tenancy policies hide no row from the dump) and CREATEDB (for the scratch copy).
#[tokio::test]
async fn a_read_all_data_login_takes_and_checks_backups() {
    let db = TestDb::new().await;
    three_messages(&db.pool).await;
    let role = format!("pr_backup_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN CREATEDB BYPASSRLS IN ROLE pg_read_all_data"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let url = db
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert_ne!(url, db.url);
    let s3 = S3Server::start().await;
    let store = BackupStore::new(&s3.config(&prefix())).unwrap();
    let manifest = dump::take(&db.pool, &url, &store, "manual", &Quiet).await.unwrap();
    assert_eq!(
        manifest.row_counts["postrunner.outbox"], 3,
        "no row hidden by row-level security"
    );
    check::check(&db.pool, &url, &store, &manifest.key, &Quiet)
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&db.pool)
        .await
        .unwrap();
}

/// Issue 18, 3.1: Kim was quarantined (soft bounces) when the backup was taken, and
/// unsubscribed after it; Lee was quarantined after it. A restore that catches up from
/// the newer database keeps Kim unsubscribed (a permanent reason always replaces a
/// quarantine; she is not mailed again when the quarantine would have ended), copies
/// Lee's quarantine with its end, and says what it upgraded.
#[tokio::test]
async fn a_restore_keeps_an_unsubscribe_made_after_a_quarantine_in_the_backup() {
    let db = TestDb::new().await;
    three_messages(&db.pool).await;
    sqlx::raw_sql(
        "INSERT INTO postrunner.suppressions (client, address, reason, expires_at)
         VALUES ('acme', 'kim@example.org', 'soft_bounce', now() + interval '30 days')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let s3 = S3Server::start().await;
    let store = BackupStore::new(&s3.config(&prefix())).unwrap();
    let manifest = dump::take(&db.pool, &db.url, &store, "manual", &Quiet).await.unwrap();

    // After the backup: Kim unsubscribes (her quarantine becomes permanent), Lee is
    // quarantined.
    sqlx::raw_sql(
        "UPDATE postrunner.suppressions SET reason = 'unsubscribe', expires_at = NULL WHERE address = 'kim@example.org';
         INSERT INTO postrunner.suppressions (client, address, reason, expires_at)
         VALUES ('acme', 'lee@example.org', 'soft_bounce', now() + interval '20 days');",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let (name, into) = empty_database(&db).await;
    let (_, restored) = restore::restore(&store, &manifest.key, &into, Some(&db.url), false, &Quiet)
        .await
        .unwrap();
    let copy = PgPool::connect(&into).await.unwrap();
    let kept: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT address, reason::text, expires_at IS NULL FROM postrunner.suppressions ORDER BY address",
    )
    .fetch_all(&copy)
    .await
    .unwrap();
    assert_eq!(
        kept,
        [
            ("kim@example.org".to_owned(), "unsubscribe".to_owned(), true),
            ("lee@example.org".to_owned(), "soft_bounce".to_owned(), false)
        ]
    );
    assert_eq!((restored.suppressions_copied, restored.suppressions_upgraded), (1, 1));
    copy.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&db.pool)
        .await
        .unwrap();
}
