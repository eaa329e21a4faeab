//! Operator settings are typed and checked when written, and a failure of the routed
//! claim cannot stop postrunner's own jobs (issue 8: `pacing_jitter = '20%'` made every
//! claim fail, rescue and probes included).

use serde_json::json;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory;
use crate::support::routing::acme_on_one_provider;
use crate::support::run::{executor, fast_config, registry};

#[tokio::test]
async fn a_setting_of_the_wrong_type_or_range_is_refused_when_written() {
    let db = TestDb::new().await;
    let cases = [
        (
            "pacing_jitter",
            "20%",
            "pacing_jitter must be a number between 0 and 0.9 (got '20%')",
        ),
        (
            "pacing_jitter",
            "1.5",
            "pacing_jitter must be a number between 0 and 0.9",
        ),
        (
            "warmup_schedule",
            "5,8,x",
            "warmup_schedule must be comma-separated whole numbers",
        ),
        (
            "breaker_failures",
            "0",
            "breaker_failures must be a whole number between 1 and 1000",
        ),
        (
            "breaker_cooldown_secs",
            "thirty",
            "breaker_cooldown_secs must be a number",
        ),
        (
            "max_body_bytes",
            "-1",
            "max_body_bytes must be a whole number between 1 and 1073741824",
        ),
    ];
    for (name, value, expected) in cases {
        let error = sqlx::query("UPDATE postrunner.settings SET value = $2 WHERE name = $1")
            .bind(name)
            .bind(value)
            .execute(&db.pool)
            .await
            .expect_err(&format!("{name} = {value:?} accepted"));
        let message = error.as_database_error().unwrap().message().to_owned();
        assert!(message.contains(expected), "{name} = {value:?}: {message}");
    }
    let jitter: String = sqlx::query_scalar("SELECT value FROM postrunner.settings WHERE name = 'pacing_jitter'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jitter, "0.2", "unchanged");
    exec(
        &db.pool,
        "UPDATE postrunner.settings SET value = '0.1' WHERE name = 'pacing_jitter'",
    )
    .await;
}

#[tokio::test]
async fn postrunners_own_jobs_run_while_routing_fails() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 10, 50, 5).await;
    // A setting broken behind the checks' back (they would refuse it): routing fails.
    exec(
        pool,
        "ALTER TABLE postrunner.settings DISABLE TRIGGER USER;
         UPDATE postrunner.settings SET value = '20%' WHERE name = 'pacing_jitter';
         ALTER TABLE postrunner.settings ENABLE TRIGGER USER;",
    )
    .await;
    let noop = factory::jobs(pool, "noop", 1, json!({})).await[0];

    let worker = executor(pool, registry(pool), fast_config());
    worker.tick(None).await.expect("the generic claim works");

    assert_eq!(factory::job(pool, noop).await, None, "the no-op job ran and completed");
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued'").await,
        5,
        "the messages wait for routing to work again"
    );
}

#[tokio::test]
async fn postrunners_sessions_wait_for_a_lock_and_run_a_statement_only_so_long() {
    let db = TestDb::new().await;
    let limits = postrunner_schema::SessionLimits {
        lock_timeout: std::time::Duration::from_millis(300),
        ..postrunner_schema::SessionLimits::default()
    };
    let pool = postrunner_schema::pool_with(&db.url, 2, "test", limits).unwrap();
    let (lock, statement): (String, String) =
        sqlx::query_as("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((lock.as_str(), statement.as_str()), ("300ms", "2min"));

    // Another transaction holds a row: the statement gives up instead of waiting.
    exec(
        &db.pool,
        "INSERT INTO postrunner.settings (name, value, type) VALUES ('x', '1', 'number')",
    )
    .await;
    let mut holder = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM postrunner.settings WHERE name = 'x' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let waited = std::time::Instant::now();
    let error = sqlx::query("UPDATE postrunner.settings SET value = '2' WHERE name = 'x'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("lock timeout"), "{error}");
    assert!(waited.elapsed() < std::time::Duration::from_secs(3));
    holder.rollback().await.unwrap();
}
