//! The job engine: claim exclusivity, retries, unique keys, priorities, delays, leases,
//! wake-ups. PostgreSQL is all these tests need (`bin/test --fast`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postrunner_queue::claim::{claim, ClaimRequest};
use postrunner_queue::enqueue::{enqueue, NewJob};
use postrunner_queue::finish::{finish, Finished, Outcome};
use postrunner_queue::handler::Registry;
use postrunner_queue::heartbeat::rescue_expired;
use postrunner_queue::JobState;
use serde_json::json;
use uuid::Uuid;

use postrunner_queue::noop::{Noop, KIND as NOOP};
use postrunner_queue::testing::{self as factory, executor, fast_config, only, spawn, Recorder};
use postrunner_test_db::{wait_for_count, TestDb};

const ALL_JOBS: &str = "SELECT count(*) FROM postrunner.jobs";

/// The kinds these tests run: `noop` alone.
fn registry(_: &sqlx::PgPool) -> Registry {
    only(NOOP, Noop)
}

async fn db_now(db: &TestDb) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await.unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_claimers_take_disjoint_jobs() {
    // Arrange: 4,000 jobs; eight claimers, each with its own pool (as separate processes).
    let db = TestDb::new().await;
    let ids: HashSet<i64> = factory::jobs(&db.pool, "noop", 4000, json!({}))
        .await
        .into_iter()
        .collect();

    // Act: all claim batches of 25 concurrently until nothing is left; nobody completes,
    // so every lease stays live for the whole test.
    let mut claimers = Vec::new();
    for _ in 0..8 {
        let pool = db.another_pool(2);
        claimers.push(tokio::spawn(async move {
            let worker = Uuid::new_v4();
            let mut mine = Vec::new();
            loop {
                let request = ClaimRequest {
                    worker,
                    limit: 25,
                    lease: Duration::from_secs(300),
                    now: None,
                    after: None,
                    signs_unsubscribe: false,
                };
                let batch = claim(&pool, request).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    let mut busy_claimers = 0;
    for c in claimers {
        let mine = c.await.unwrap();
        busy_claimers += usize::from(!mine.is_empty());
        claimed.extend(mine);
    }

    // Assert: every job claimed exactly once, by one claimer.
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 4000, "no job was claimed twice");
    assert_eq!(unique, ids, "every job was claimed");
    assert!(busy_claimers > 1, "the claimers really ran concurrently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_executors_run_every_job_exactly_once() {
    let db = TestDb::new().await;
    factory::jobs(&db.pool, "noop", 3000, json!({})).await;
    let recorder = Recorder::default();

    let running: Vec<_> = (0..8)
        .map(|_| spawn(&db.another_pool(5), only("noop", recorder.clone()), fast_config()))
        .collect();
    wait_for_count(&db.pool, ALL_JOBS, 0, Duration::from_secs(60)).await;
    for r in running {
        r.stop().await;
    }

    let counts = recorder.counts();
    assert_eq!(counts.len(), 3000);
    assert!(counts.values().all(|&n| n == 1), "a job ran more than once");
}

#[tokio::test]
async fn failed_attempts_retry_after_one_five_and_fifteen_minutes_then_fail() {
    let db = TestDb::new().await;
    let exec = executor(&db.pool, registry(&db.pool), fast_config());
    let id = factory::jobs(&db.pool, "noop", 1, json!({"fail": "retry"})).await[0];
    let t0 = db_now(&db).await;

    assert_eq!(exec.tick(Some(t0)).await.unwrap(), 1);
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Retryable, 1)));

    // Not before one minute; then the second attempt.
    assert_eq!(exec.tick(Some(t0 + secs(59))).await.unwrap(), 0);
    assert_eq!(exec.tick(Some(t0 + secs(61))).await.unwrap(), 1);
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Retryable, 2)));

    // Five minutes after the second failure.
    let t2 = t0 + secs(61);
    assert_eq!(exec.tick(Some(t2 + secs(299))).await.unwrap(), 0);
    assert_eq!(exec.tick(Some(t2 + secs(301))).await.unwrap(), 1);

    // Fifteen minutes after the third; the fourth attempt is the last.
    let t3 = t2 + secs(301);
    assert_eq!(exec.tick(Some(t3 + secs(899))).await.unwrap(), 0);
    assert_eq!(exec.tick(Some(t3 + secs(901))).await.unwrap(), 1);
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Discarded, 4)));
    assert_eq!(
        exec.tick(Some(t3 + secs(100_000))).await.unwrap(),
        0,
        "a failed job is not retried"
    );

    // The error history is kept: one entry per attempt.
    let (errors, last_error): (serde_json::Value, String) =
        sqlx::query_as("SELECT errors, last_error FROM postrunner.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(errors.as_array().unwrap().len(), 4);
    assert_eq!(last_error, "asked to fail (attempt 4)");
}

#[tokio::test]
async fn a_failed_job_is_redriven_with_one_sql_call() {
    let db = TestDb::new().await;
    let recorder = Recorder::default();
    let exec = executor(&db.pool, only("noop", recorder.clone()), fast_config());
    let id = factory::jobs(&db.pool, "noop", 1, json!({})).await[0];
    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded', attempts = 4, last_error = 'boom' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(exec.drain(None).await.unwrap(), 0);

    sqlx::query("SELECT postrunner.retry_job($1)")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(exec.drain(None).await.unwrap(), 1);
    assert_eq!(
        recorder.runs(),
        vec![(id, 1)],
        "it ran again with a fresh attempt budget"
    );
    assert_eq!(factory::job(&db.pool, id).await, None, "completed jobs are deleted");
}

#[tokio::test]
async fn permanent_failures_are_discarded_at_once() {
    let db = TestDb::new().await;
    let exec = executor(&db.pool, registry(&db.pool), fast_config());
    let id = factory::jobs(&db.pool, "noop", 1, json!({"fail": "permanent"})).await[0];
    exec.drain(None).await.unwrap();
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Discarded, 1)));
}

#[tokio::test]
async fn a_unique_key_allows_one_live_job() {
    let db = TestDb::new().await;
    let job = NewJob {
        unique_key: Some("report:acme".into()),
        ..NewJob::new("noop", json!({}))
    };

    let first = enqueue(&db.pool, &job).await.unwrap();
    let second = enqueue(&db.pool, &job).await.unwrap();
    assert!(first.is_some());
    assert_eq!(second, None, "a second live job with the key is not created");

    // Once the first has completed, the key is free again.
    executor(&db.pool, registry(&db.pool), fast_config())
        .drain(None)
        .await
        .unwrap();
    assert!(enqueue(&db.pool, &job).await.unwrap().is_some());

    // A discarded job does not hold the key either.
    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded' WHERE unique_key = 'report:acme'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(enqueue(&db.pool, &job).await.unwrap().is_some());
}

#[tokio::test]
async fn higher_priority_jobs_are_claimed_first() {
    let db = TestDb::new().await;
    for priority in [0i16, 5, -3, 10] {
        enqueue(
            &db.pool,
            &NewJob {
                priority,
                ..NewJob::new("noop", json!({ "p": priority }))
            },
        )
        .await
        .unwrap();
    }
    let claim_two = || claim(&db.pool, ClaimRequest::new(Uuid::new_v4(), 2, Duration::from_secs(30)));

    let first: Vec<i16> = claim_two().await.unwrap().iter().map(|j| j.priority).collect();
    let second: Vec<i16> = claim_two().await.unwrap().iter().map(|j| j.priority).collect();

    assert_eq!(first, vec![10, 5], "the two most urgent, most urgent first");
    assert_eq!(second, vec![0, -3]);
}

#[tokio::test]
async fn delayed_jobs_wait_until_their_time() {
    let db = TestDb::new().await;
    let now = db_now(&db).await;
    let id = enqueue(
        &db.pool,
        &NewJob {
            run_at: Some(now + secs(120)),
            ..NewJob::new("noop", json!({}))
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        factory::job(&db.pool, id).await,
        Some((JobState::Scheduled, 0)),
        "kept out of the claim index"
    );

    let exec = executor(&db.pool, registry(&db.pool), fast_config());
    assert_eq!(exec.tick(Some(now + secs(119))).await.unwrap(), 0);
    assert_eq!(exec.tick(Some(now + secs(121))).await.unwrap(), 1);
    assert_eq!(factory::job(&db.pool, id).await, None);
}

#[tokio::test]
async fn a_worker_whose_lease_was_rescued_cannot_complete_the_job() {
    let db = TestDb::new().await;
    let id = factory::jobs(&db.pool, "noop", 1, json!({})).await[0];
    let now = db_now(&db).await;
    let lease = Duration::from_secs(30);

    // Worker A claims, then stalls past its lease; the job is rescued and B claims it.
    let a = claim(
        &db.pool,
        ClaimRequest {
            worker: Uuid::new_v4(),
            limit: 1,
            lease,
            now: Some(now),
            after: None,
            signs_unsubscribe: false,
        },
    )
    .await
    .unwrap();
    let rescued = rescue_expired(&db.pool, Some(now + secs(31))).await.unwrap();
    assert_eq!(rescued.requeued, 1);
    let b = claim(
        &db.pool,
        ClaimRequest {
            worker: Uuid::new_v4(),
            limit: 1,
            lease,
            now: Some(now + secs(32)),
            after: None,
            signs_unsubscribe: false,
        },
    )
    .await
    .unwrap();
    assert_eq!((a[0].id, b[0].id), (id, id));
    assert_eq!(b[0].attempts, 2, "the lost attempt counts");

    // A wakes up and reports failure, then success: neither touches B's job.
    let reg = Registry::new();
    let as_finished = |job: &postrunner_queue::ClaimedJob, outcome| Finished {
        id: job.id,
        lease_token: job.lease_token,
        kind: job.kind.clone(),
        outcome,
    };
    let fail = Outcome::Failed {
        error: "late".into(),
        decision: postrunner_queue::retry::Decision::Discard,
    };
    let report = finish(&db.pool, &reg, &[as_finished(&a[0], fail)], None).await.unwrap();
    assert_eq!(report.lost, 1);
    let report = finish(&db.pool, &reg, &[as_finished(&a[0], Outcome::Completed(None))], None)
        .await
        .unwrap();
    assert_eq!(report.lost, 1);
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Running, 2)));

    // B completes it.
    let report = finish(&db.pool, &reg, &[as_finished(&b[0], Outcome::Completed(None))], None)
        .await
        .unwrap();
    assert_eq!(report.completed, 1);
    assert_eq!(factory::job(&db.pool, id).await, None);
}

#[tokio::test]
async fn a_rescued_job_that_used_its_last_attempt_fails() {
    let db = TestDb::new().await;
    let id = factory::jobs(&db.pool, "noop", 1, json!({})).await[0];
    sqlx::query("UPDATE postrunner.jobs SET max_attempts = 1 WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    let now = db_now(&db).await;
    claim(
        &db.pool,
        ClaimRequest {
            worker: Uuid::new_v4(),
            limit: 1,
            lease: Duration::from_secs(5),
            now: Some(now),
            after: None,
            signs_unsubscribe: false,
        },
    )
    .await
    .unwrap();

    let rescued = rescue_expired(&db.pool, Some(now + secs(6))).await.unwrap();

    assert_eq!((rescued.requeued, rescued.discarded), (0, 1));
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Discarded, 1)));
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_from_being_rescued() {
    // A job runs for three lease lengths while a rescuer runs all the time.
    let db = TestDb::new().await;
    let recorder = Recorder::sleeping(Duration::from_millis(1500));
    let config = postrunner_queue::executor::ExecutorConfig {
        lease: Duration::from_millis(500),
        heartbeat: Duration::from_millis(100),
        ..fast_config()
    };
    let running = spawn(&db.pool, only("noop", recorder.clone()), config);
    factory::jobs(&db.pool, "noop", 1, json!({})).await;
    let rescues = async {
        let mut total = 0;
        for _ in 0..30 {
            total += rescue_expired(&db.pool, None).await.unwrap().requeued;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        total
    };

    assert_eq!(rescues.await, 0, "the lease never expired");
    running.stop().await;
    assert_eq!(recorder.runs().len(), 1);
    assert_eq!(factory::job_count(&db.pool).await, 0);
}

#[tokio::test]
async fn a_notification_wakes_an_idle_worker_without_polling() {
    let db = TestDb::new().await;
    let recorder = Recorder::default();
    // Polling every minute: only the NOTIFY can explain a quick pickup.
    let config = postrunner_queue::executor::ExecutorConfig {
        poll_interval: Duration::from_secs(60),
        ..fast_config()
    };
    let running = spawn(&db.pool, only("noop", recorder.clone()), config);
    // Idle: its first claim found nothing (it then sleeps for the poll interval).
    postrunner_test_db::eventually(Duration::from_secs(10), "the worker's first claim", || async {
        running.stats.claim_us.load(std::sync::atomic::Ordering::Relaxed) > 0
    })
    .await;

    factory::jobs(&db.pool, "noop", 3, json!({})).await;

    recorder.wait_for_runs(3, Duration::from_secs(3)).await;
    running.stop().await;
}

#[tokio::test]
async fn polling_picks_up_jobs_when_notifications_are_lost() {
    let db = TestDb::new().await;
    sqlx::query("ALTER TABLE postrunner.jobs DISABLE TRIGGER jobs_notify_insert")
        .execute(&db.pool)
        .await
        .unwrap();
    let recorder = Recorder::default();
    let running = spawn(&db.pool, only("noop", recorder.clone()), fast_config()); // polls every 200 ms
    tokio::time::sleep(Duration::from_millis(500)).await;

    factory::jobs(&db.pool, "noop", 2, json!({})).await;

    recorder.wait_for_runs(2, Duration::from_secs(3)).await;
    running.stop().await;
}

#[tokio::test]
async fn cancelled_jobs_do_not_run() {
    let db = TestDb::new().await;
    let recorder = Recorder::default();
    let ids = factory::jobs(&db.pool, "noop", 2, json!({})).await;
    let cancelled: bool = sqlx::query_scalar("SELECT postrunner.cancel_job($1)")
        .bind(ids[0])
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(cancelled);

    executor(&db.pool, only("noop", recorder.clone()), fast_config())
        .drain(None)
        .await
        .unwrap();

    assert_eq!(recorder.runs(), vec![(ids[1], 1)]);
    assert_eq!(factory::job(&db.pool, ids[0]).await, Some((JobState::Cancelled, 0)));
}

#[tokio::test]
async fn a_panicking_handler_fails_the_attempt_instead_of_losing_the_job() {
    struct Panics;
    #[async_trait::async_trait]
    impl postrunner_queue::handler::Handler for Panics {
        async fn run(
            &self,
            _: &postrunner_queue::ClaimedJob,
        ) -> Result<Option<serde_json::Value>, postrunner_queue::handler::JobError> {
            panic!("bug in a handler")
        }
    }
    let db = TestDb::new().await;
    let id = factory::jobs(&db.pool, "noop", 1, json!({})).await[0];
    executor(&db.pool, only("noop", Panics), fast_config())
        .drain(None)
        .await
        .unwrap();
    assert_eq!(factory::job(&db.pool, id).await, Some((JobState::Retryable, 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_the_jobs_it_claimed_in_claim_order() {
    // One slot and a deep prefetch: the whole batch is claimed at once and waits in the
    // worker; it must run in claim order (priority, then age), not in the order the
    // batch's tasks happen to be first scheduled.
    let db = TestDb::new().await;
    let recorder = Recorder::sleeping(Duration::from_millis(1));
    let config = postrunner_queue::executor::ExecutorConfig {
        concurrency: 1,
        prefetch: 64,
        ..fast_config()
    };
    let mut ids = Vec::new();
    for priority in [0, 5, 10] {
        ids.push(
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO postrunner.jobs (kind, args, priority) SELECT 'noop', '{}', $1 FROM generate_series(1, 20) RETURNING id",
            )
            .bind(priority)
            .fetch_all(&db.pool)
            .await
            .unwrap(),
        );
    }
    let running = spawn(&db.pool, only("noop", recorder.clone()), config);
    recorder.wait_for_runs(60, Duration::from_secs(20)).await;
    running.stop().await;
    let order: Vec<i64> = recorder.runs().into_iter().map(|(id, _)| id).collect();
    let expected: Vec<i64> = ids.into_iter().rev().flatten().collect();
    assert_eq!(
        order, expected,
        "highest priority first, oldest first within a priority"
    );
}

#[tokio::test]
async fn job_state_mirrors_the_database_enum() {
    let db = TestDb::new().await;
    let labels: Vec<String> = sqlx::query_scalar(
        "SELECT enumlabel::text FROM pg_enum WHERE enumtypid = 'postrunner.job_state'::regtype ORDER BY enumsortorder",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let every_state = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Held,
        JobState::Discarded,
        JobState::Cancelled,
    ];
    // A variant missing from the list above stops this match from compiling.
    for state in every_state {
        match state {
            JobState::Scheduled
            | JobState::Available
            | JobState::Running
            | JobState::Retryable
            | JobState::Held
            | JobState::Discarded
            | JobState::Cancelled => {}
        }
    }
    let ours: Vec<String> = every_state
        .iter()
        .map(|state| serde_json::to_value(state).unwrap().as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ours, labels, "JobState against postrunner.job_state, in order");
    // Each label decodes into its variant (sqlx's mapping, not only serde's).
    for (state, label) in every_state.iter().zip(&labels) {
        let decoded: JobState = sqlx::query_scalar(&format!("SELECT '{label}'::postrunner.job_state"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(decoded, *state);
    }
}
