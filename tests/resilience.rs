//! Real processes and a real PostgreSQL restart: SIGKILL, SIGTERM, outages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postrunner_queue::executor::ExecutorConfig;
use postrunner_schema::local_cluster::{with_database, LocalCluster};
use serde_json::json;

use crate::support::db::exec;
use crate::support::db::TestDb;
use crate::support::gated::Gate;
use crate::support::run::{fast_config, registry, spawn, Process, Recorder};
use crate::support::{eventually, factory, wait_for_count, ALL_JOBS, RUNNING_JOBS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_jobs_are_rescued_and_run_by_another_worker() {
    // Arrange: a real worker process takes six long jobs.
    let db = TestDb::new().await;
    let ids = factory::jobs(&db.pool, "noop", 6, json!({"sleep_ms": 600_000})).await;
    let worker_a = Process::spawn(
        &db.url,
        &["worker", "--concurrency", "6", "--lease", "3s", "--heartbeat", "500ms"],
    );
    wait_for_count(&db.pool, RUNNING_JOBS, 6, Duration::from_secs(15)).await;

    // Act: SIGKILL it. A real scheduler process enqueues lease rescue every 5 s, and
    // worker B (in this process) runs the rescue and then the rescued jobs.
    worker_a.signal("KILL");
    let killed_at = Instant::now();
    let scheduler = Process::spawn(&db.url, &["scheduler"]);
    let recorder = Recorder::default();
    let mut kinds = registry(&db.pool);
    kinds.register("noop", recorder.clone());
    let worker_b = spawn(&db.pool, kinds, fast_config());
    wait_for_count(&db.pool, ALL_JOBS, 0, Duration::from_secs(30)).await;
    let rescued_after = killed_at.elapsed();
    worker_b.stop().await;
    scheduler.signal("TERM");

    // Assert: each job ran once more, as its second attempt, well within 30 s.
    let mut runs = recorder.runs();
    runs.sort();
    let expected: Vec<(i64, i32)> = ids.iter().map(|&id| (id, 2)).collect();
    assert_eq!(runs, expected);
    assert!(
        rescued_after < Duration::from_secs(30),
        "rescued after {rescued_after:?}"
    );
    eprintln!(
        "rescued and re-run {:?} after SIGKILL (lease 3 s, rescue every 5 s)",
        rescued_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_jobs_and_releases_the_rest() {
    // Two slots: two short jobs run first, then two long ones start while two more long
    // ones wait, prefetched.
    let db = TestDb::new().await;
    let short = factory::jobs(&db.pool, "noop", 2, json!({"sleep_ms": 300})).await;
    let long = factory::jobs(&db.pool, "noop", 4, json!({"sleep_ms": 600_000})).await;
    let mut worker = Process::spawn(
        &db.url,
        &["worker", "--concurrency", "2", "--grace", "1s", "--lease", "60s"],
    );
    // Generous: the parallel suite can keep both cores busy for a while.
    wait_for_count(&db.pool, ALL_JOBS, 4, Duration::from_secs(40)).await;
    wait_for_count(&db.pool, RUNNING_JOBS, 4, Duration::from_secs(40)).await;

    worker.signal("TERM");
    let stopped_at = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), worker.child.wait())
        .await
        .expect("exits")
        .unwrap();

    assert!(status.success(), "clean exit: {}", worker.logs());
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "stopped within the grace period"
    );
    for id in short {
        assert_eq!(factory::job(&db.pool, id).await, None, "finished before the signal");
    }
    let rows: Vec<(String, i32, Option<uuid::Uuid>)> =
        sqlx::query_as("SELECT state::text, attempts, leased_by FROM postrunner.jobs WHERE id = ANY($1) ORDER BY id")
            .bind(&long)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let interrupted = rows
        .iter()
        .filter(|r| **r == ("available".to_string(), 1, None))
        .count();
    let never_started = rows
        .iter()
        .filter(|r| **r == ("available".to_string(), 0, None))
        .count();
    assert_eq!(
        (interrupted, never_started),
        (2, 2),
        "running ones count their attempt, prefetched ones do not: {rows:?}"
    );
    let processes: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.processes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(processes, 0, "the worker removed its row");
    assert!(worker.logs().contains("released unfinished jobs"));
}

#[tokio::test]
async fn workers_rescue_expired_leases_without_a_scheduler() {
    // A dead worker's job (here: claimed directly, never heartbeated) comes back through
    // any live worker's upkeep, even if no scheduler runs.
    let db = TestDb::new().await;
    let id = factory::jobs(&db.pool, "noop", 1, json!({})).await[0];
    let request = postrunner_queue::claim::ClaimRequest::new(uuid::Uuid::new_v4(), 1, Duration::from_millis(300));
    postrunner_queue::claim::claim(&db.pool, request).await.unwrap();
    let recorder = Recorder::default();

    let running = spawn(
        &db.pool,
        crate::support::run::only("noop", recorder.clone()),
        fast_config(),
    );
    recorder.wait_for_runs(1, Duration::from_secs(5)).await;
    running.stop().await;

    assert_eq!(recorder.runs(), vec![(id, 2)]);
}

#[tokio::test]
async fn the_heartbeat_does_not_keep_alive_a_job_its_worker_lost_track_of() {
    // The reply to a claim was lost: the job is leased to this worker's id, but the
    // worker never saw it. Its heartbeat must not extend that lease.
    let db = TestDb::new().await;
    let id = factory::jobs(&db.pool, "noop", 1, json!({})).await[0];
    let recorder = Recorder::default();
    let worker_id = uuid::Uuid::new_v4();
    let request = postrunner_queue::claim::ClaimRequest::new(worker_id, 1, Duration::from_millis(800));
    postrunner_queue::claim::claim(&db.pool, request).await.unwrap();

    let executor = postrunner_queue::executor::Executor::new(
        db.pool.clone(),
        crate::support::run::only("noop", recorder.clone()),
        fast_config(),
        worker_id,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(executor.run(shutdown.clone()));
    recorder.wait_for_runs(1, Duration::from_secs(6)).await;
    shutdown.cancel();
    handle.await.unwrap();

    assert_eq!(
        recorder.runs(),
        vec![(id, 2)],
        "rescued after its lease ran out, then run again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_postgresql_restart() {
    // A private cluster, so restarting it disturbs no other test.
    let cluster = tokio::task::spawn_blocking(LocalCluster::start)
        .await
        .unwrap()
        .expect("a private cluster");
    let url = with_database(&cluster.admin_url(), "postgres");
    postrunner_schema::migrate::run(&url).await.unwrap();
    let pool = postrunner_schema::pool(&url, 3, "postrunner-test").unwrap();
    let mut worker = Process::spawn(&url, &["worker", "--concurrency", "4", "--poll-interval", "200ms"]);

    factory::jobs(&pool, "noop", 100, json!({})).await;
    wait_for_count(&pool, ALL_JOBS, 0, Duration::from_secs(15)).await;

    // Restart PostgreSQL under the running worker (keep the cluster: dropping it stops it).
    let _cluster = tokio::task::spawn_blocking({
        let stop = std::sync::Arc::new(cluster);
        move || {
            stop.stop_server().unwrap();
            // Longer than the pool's 5 s acquire timeout, so the worker's statements
            // really fail rather than wait.
            std::thread::sleep(Duration::from_secs(7));
            stop.start_server().unwrap();
            stop
        }
    })
    .await
    .unwrap();

    // The test's own pool reconnects too; the worker must pick up new work.
    eventually(Duration::from_secs(15), "the database accepts jobs again", || async {
        sqlx::query("INSERT INTO postrunner.jobs (kind) SELECT 'noop' FROM generate_series(1, 100)")
            .execute(&pool)
            .await
            .is_ok()
    })
    .await;
    wait_for_count(&pool, ALL_JOBS, 0, Duration::from_secs(30)).await;

    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is still running"
    );
    let logs = worker.logs();
    assert_eq!(
        logs.matches("database unreachable").count(),
        1,
        "the outage is logged once:\n{logs}"
    );
    assert_eq!(logs.matches("database reachable again").count(), 1, "{logs}");
    worker.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), worker.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_gives_back_the_capacity_of_sends_that_never_started() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.providers (name, kind, per_minute) VALUES ('p', 'log', 100);
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 'a' || i || '@acme.test', 'p', 'acme', 10 FROM generate_series(1, 20) i;",
    )
    .await;
    crate::support::factory::messages(pool, "acme", "d", 10).await;
    // One slot, nine prefetched: one send starts (and hangs), nine never start.
    let gate = Gate::closed();
    let registry = postrunner::kinds::registry(pool.clone(), Arc::new(gate.directory(pool)));
    let config = ExecutorConfig {
        concurrency: 1,
        prefetch: 9,
        grace: Duration::from_millis(300),
        ..fast_config()
    };
    let worker = spawn(pool, registry, config);
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status = 'sending'",
        10,
        Duration::from_secs(20),
    )
    .await;
    eventually(Duration::from_secs(10), "one send started", || async {
        gate.started() == 1
    })
    .await;

    worker.stop().await;

    let outcomes: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome::text, count(*) FROM postrunner.send_attempts GROUP BY 1 ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        outcomes,
        [("released".to_owned(), 9), ("uncertain".to_owned(), 1)],
        "the interrupted send may have gone; the nine others surely did not"
    );
    assert_eq!(
        crate::support::db::count(
            pool,
            "SELECT count(*) FROM postrunner.outbox WHERE status = 'uncertain'"
        )
        .await,
        1,
        "the interrupted one is held, not sent again at once"
    );
    let used_today =
        crate::support::db::count(pool, "SELECT sum(sent_on_day)::bigint FROM postrunner.address_usage").await;
    assert_eq!(used_today, 1, "only the started send uses a day's capacity");
    let in_minute = crate::support::db::count(
        pool,
        "SELECT sent_in_minute::bigint FROM postrunner.provider_usage WHERE provider = 'p'",
    )
    .await;
    assert_eq!(in_minute, 1, "only the started send uses the provider's minute");
    let paced = crate::support::db::count(
        pool,
        "SELECT count(*) FROM postrunner.address_usage WHERE next_slot_at > now()",
    )
    .await;
    assert_eq!(
        paced, 1,
        "the nine addresses whose send never started may send again at once"
    );
}
