//! Periodic tasks: each tick runs exactly once across any number of schedulers.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postrunner::periodic::run_due;
use uuid::Uuid;

use crate::support::db::TestDb;

/// Replaces the schedules with one `noop` every second; returns the current whole second.
async fn every_second(db: &TestDb) -> DateTime<Utc> {
    sqlx::query("DELETE FROM postrunner.schedules")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO postrunner.schedules (name, cron, kind) VALUES ('tick', '* * * * * *', 'noop')")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT date_trunc('second', now())")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_schedulers_win_each_tick_once() {
    let db = TestDb::new().await;
    let t0 = every_second(&db).await;

    // Five schedulers with their own pools race at each of 20 instants.
    let pools: Vec<_> = (0..5).map(|_| db.another_pool(2)).collect();
    for step in 0..=20 {
        let now = t0 + chrono::Duration::milliseconds(500 + 1000 * step);
        let racers: Vec<_> = pools
            .iter()
            .map(|pool| {
                let pool = pool.clone();
                tokio::spawn(async move { run_due(&pool, Uuid::new_v4(), Some(now)).await.unwrap() })
            })
            .collect();
        for r in racers {
            r.await.unwrap();
        }
        // Let the job complete so the next tick is not skipped as "still pending".
        sqlx::query("DELETE FROM postrunner.jobs")
            .execute(&db.pool)
            .await
            .unwrap();
    }

    let runs: Vec<(DateTime<Utc>, Option<i64>)> =
        sqlx::query_as("SELECT tick_at, job_id FROM postrunner.schedule_runs WHERE schedule = 'tick'")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let mut per_tick: HashMap<DateTime<Utc>, usize> = HashMap::new();
    for (tick, job) in &runs {
        assert!(job.is_some(), "each won tick enqueued its job");
        *per_tick.entry(*tick).or_default() += 1;
    }
    // The first pass only sets the first tick; each later pass wins exactly one.
    assert_eq!(per_tick.len(), 20);
    assert!(per_tick.values().all(|&n| n == 1), "a tick was won twice: {per_tick:?}");
}

#[tokio::test]
async fn a_tick_is_skipped_while_the_previous_run_is_pending() {
    let db = TestDb::new().await;
    let t0 = every_second(&db).await;
    for step in 0..4 {
        run_due(
            &db.pool,
            Uuid::new_v4(),
            Some(t0 + chrono::Duration::milliseconds(500 + 1000 * step)),
        )
        .await
        .unwrap();
    }
    let (runs, jobs): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(job_id) FROM postrunner.schedule_runs WHERE schedule = 'tick'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (runs, jobs),
        (3, 1),
        "three ticks won, one job: the others found it still queued"
    );
}

#[tokio::test]
async fn scheduler_processes_enqueue_each_tick_once() {
    // Three real scheduler processes for about three seconds.
    let db = TestDb::new().await;
    every_second(&db).await;
    // No worker runs the jobs, so most ticks find the previous one pending and enqueue
    // nothing; schedule_runs logs every won tick either way, and that is what we count.
    let schedulers: Vec<_> = (0..3)
        .map(|_| crate::support::run::Process::spawn(&db.url, &["scheduler"]))
        .collect();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for s in &schedulers {
        s.signal("TERM");
    }
    for mut s in schedulers {
        let status = tokio::time::timeout(Duration::from_secs(10), s.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "scheduler exits cleanly: {}", s.logs());
    }
    let per_tick: Vec<(DateTime<Utc>, i64)> =
        sqlx::query_as("SELECT tick_at, count(*) FROM postrunner.schedule_runs GROUP BY 1 ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(per_tick.len() >= 2, "ticks were run: {per_tick:?}");
    assert!(per_tick.iter().all(|(_, n)| *n == 1), "each tick once: {per_tick:?}");
}
