//! What operators read with psql: the `workers` view and `report_queue`.

use std::time::Duration;

use serde_json::json;

use crate::support::db::TestDb;
use crate::support::run::Process;
use crate::support::{factory, wait_for_count, LIVE_PROCESSES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_view_shows_live_processes() {
    let db = TestDb::new().await;
    let mut worker = Process::spawn(
        &db.url,
        &["worker", "--concurrency", "3", "--heartbeat", "300ms", "--lease", "2s"],
    );
    wait_for_count(&db.pool, LIVE_PROCESSES, 1, Duration::from_secs(15)).await;

    let (role, pid, concurrency, version): (String, i32, Option<i32>, String) =
        sqlx::query_as("SELECT role, pid, concurrency, version FROM postrunner.workers")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((role.as_str(), pid, concurrency), ("worker", worker.pid(), Some(3)));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    // A killed process drops out of the view once its heartbeat is stale (3 intervals).
    worker.signal("KILL");
    let _ = worker.child.wait().await;
    wait_for_count(&db.pool, LIVE_PROCESSES, 0, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn report_queue_shows_depth_by_kind_and_state_and_the_oldest_wait() {
    let db = TestDb::new().await;
    factory::jobs(&db.pool, "noop", 3, json!({})).await;
    sqlx::query("INSERT INTO postrunner.jobs (kind, run_at) VALUES ('noop', now() + interval '1 hour')")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE postrunner.jobs SET run_at = now() - interval '10 minutes' WHERE id = (SELECT min(id) FROM postrunner.jobs)")
        .execute(&db.pool)
        .await
        .unwrap();

    let rows: Vec<(String, String, i64, Option<f64>)> = sqlx::query_as(
        "SELECT kind, state::text, jobs, extract(epoch FROM oldest_waiting)::float8 FROM postrunner.report_queue ORDER BY state::text",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();

    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2),
        ("noop", "available", 3)
    );
    assert_eq!((rows[1].1.as_str(), rows[1].2, rows[1].3), ("scheduled", 1, None));
    let oldest = rows[0].3.unwrap();
    assert!(
        (600.0..660.0).contains(&oldest),
        "oldest waiting about ten minutes: {oldest}"
    );
}
