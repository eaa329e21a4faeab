//! `postrunner migrate`: idempotent, and safe when replicas run it at the same time.

use postrunner::db::local_cluster::with_database;
use sqlx::Connection;

use crate::support::db::server_url;

/// A new, empty database (not from the template).
async fn empty_database() -> (String, String) {
    let admin = server_url().await;
    let name = format!("pr_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    (name.clone(), with_database(admin, &name))
}

async fn drop_database(name: &str) {
    let mut conn = sqlx::PgConnection::connect(server_url().await).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn migrating_twice_applies_everything_once() {
    let (name, url) = empty_database().await;

    let first = postrunner::db::migrate::run(&url).await.unwrap();
    let second = postrunner::db::migrate::run(&url).await.unwrap();

    assert_eq!(first.migrations, postrunner::db::migrate::embedded_migrations());
    let every_definition: Vec<&str> = postrunner::db::definitions::DEFINITIONS
        .iter()
        .map(|d| d.file)
        .collect();
    assert_eq!(first.definitions, every_definition);
    assert!(second.is_empty(), "nothing left to apply: {second:?}");
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_migrating_at_once_apply_each_migration_once() {
    let (name, url) = empty_database().await;

    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { postrunner::db::migrate::run(&url).await })
        })
        .collect();
    let mut applied = Vec::new();
    let mut definitions_applied = 0;
    for r in runs {
        let report = r.await.unwrap().expect("every replica succeeds");
        definitions_applied += usize::from(!report.definitions.is_empty());
        applied.extend(report.migrations);
    }
    assert_eq!(definitions_applied, 1, "the definitions are applied by one replica");

    applied.sort();
    let mut expected = postrunner::db::migrate::embedded_migrations();
    expected.sort();
    assert_eq!(applied, expected, "each migration applied by exactly one replica");
    drop_database(&name).await;
}

#[tokio::test]
async fn the_migrate_command_runs_twice_from_the_binary() {
    let (name, url) = empty_database().await;
    for expected in ["applied V1__schema", "database is up to date"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected));
    }
    drop_database(&name).await;
}
