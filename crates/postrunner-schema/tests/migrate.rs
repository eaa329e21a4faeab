//! `postrunner migrate`: idempotent, and safe when replicas run it at the same time.
//! (The binary's `migrate` command, and each role on a login of its own, are tested in
//! the program's tests/migrate.rs.)

use postrunner_test_db::{drop_database, empty_database};

#[tokio::test]
async fn migrating_twice_applies_everything_once() {
    let (name, url) = empty_database().await;

    let first = postrunner_schema::migrate::run(&url).await.unwrap();
    let second = postrunner_schema::migrate::run(&url).await.unwrap();

    assert_eq!(first.migrations, postrunner_schema::migrate::embedded_migrations());
    let every_definition: Vec<&str> = postrunner_schema::definitions::DEFINITIONS
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
            tokio::spawn(async move { postrunner_schema::migrate::run(&url).await })
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
    let mut expected = postrunner_schema::migrate::embedded_migrations();
    expected.sort();
    assert_eq!(applied, expected, "each migration applied by exactly one replica");
    drop_database(&name).await;
}
