//! Provider health and failover: a provider that breaks mid-run is taken out of the
//! rotation by its circuit breaker, its messages go out through the healthy ones
//! without using attempts, and it comes back once it heals.

use std::sync::Arc;
use std::time::Duration;

use postrunner::kinds;
use postrunner_providers::postmark::Postmark;
use postrunner_providers::resend::Resend;
use postrunner_providers::secret::Secret;
use postrunner_providers::sendgrid::SendGrid;
use postrunner_providers::{http, Directory, Provider};
use postrunner_queue::claim::{claim, ClaimRequest};
use postrunner_queue::executor::ExecutorConfig;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory::messages;
use crate::support::fake_provider::{FakeProvider, Fault, Kind};
use crate::support::routing::acme_on_sendgrid;
use crate::support::run::{fast_config, spawn};
use crate::support::wait_for_count;

const KEY: &str = "failover-key";

struct Fakes {
    sg: FakeProvider,
    pm: FakeProvider,
    rs: FakeProvider,
}

/// Three providers of three kinds, 20 addresses each, adapters pointed at the fakes.
async fn three_providers(db: &TestDb) -> (Fakes, Directory) {
    let fakes = Fakes {
        sg: FakeProvider::start(Kind::SendGrid, KEY).await,
        pm: FakeProvider::start(Kind::Postmark, KEY).await,
        rs: FakeProvider::start(Kind::Resend, KEY).await,
    };
    exec(
        &db.pool,
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.providers (name, kind) VALUES ('sg', 'sendgrid'), ('pm', 'postmark'), ('rs', 'resend');
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT p || i || '@acme.test', p, 'acme', 10000000 FROM unnest(ARRAY['sg', 'pm', 'rs']) p, generate_series(1, 20) i;
         UPDATE postrunner.settings SET value = '2' WHERE name = 'breaker_cooldown_secs';",
    )
    .await;
    let urls = (fakes.sg.url.clone(), fakes.pm.url.clone(), fakes.rs.url.clone());
    let client = http::client(Duration::from_millis(300));
    let directory = Directory::with_builder(db.pool.clone(), move |name| {
        let key = Secret::new(KEY.to_owned());
        let adapter: Arc<dyn Provider> = match name {
            "sg" => Arc::new(SendGrid::new(name, &urls.0, key, client.clone())),
            "pm" => Arc::new(Postmark::new(name, &urls.1, key, client.clone())),
            "rs" => Arc::new(Resend::new(name, &urls.2, key, client.clone())),
            _ => return None,
        };
        Some(adapter)
    });
    (fakes, directory)
}

const SENT: &str = "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'";

/// A provider's health state.
async fn health(pool: &sqlx::PgPool, provider: &str) -> String {
    sqlx::query_scalar("SELECT state::text FROM postrunner.provider_health WHERE provider = $1")
        .bind(provider)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy (1,100 sends through three fake providers): bin/test runs it after the rest, alone"]
async fn a_provider_failing_mid_run_is_taken_out_and_every_message_still_goes_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fakes, directory) = three_providers(&db).await;
    // Alert after a second down, so that the test sees it fire and resolve.
    exec(
        pool,
        "UPDATE postrunner.settings SET value = '1' WHERE name = 'alert_provider_down_secs'",
    )
    .await;
    let registry_directory = Arc::new(directory);
    let registry = kinds::registry(pool.clone(), registry_directory.clone());
    let config = ExecutorConfig {
        concurrency: 16,
        ..fast_config()
    };
    let worker = spawn(pool, registry, config);

    messages(pool, "acme", "d", 300).await;
    wait_for_count(pool, SENT, 300, Duration::from_secs(30)).await;
    assert!(fakes.pm.received().len() > 50, "pm took its share while healthy");

    // pm breaks: 503s, then timeouts, then dropped connections, in turn.
    fakes.pm.fail_always(vec![
        Fault::Reply(503, "Service Unavailable".into(), vec![]),
        Fault::Slow(Duration::from_secs(1)),
        Fault::Drop,
    ]);
    messages(pool, "acme", "d", 600).await;
    // The 503s went elsewhere at once; the timed-out and dropped sends may have been
    // taken by pm, so they are held until pm's outbound search finds them (the
    // resolver's lookup): sent once, by pm.
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status IN ('queued', 'sending', 'retrying')",
        0,
        Duration::from_secs(60),
    )
    .await;
    let held = count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status = 'uncertain'",
    )
    .await;
    let resolver = kinds::uncertain::ResolveUncertain::new(pool.clone(), registry_directory.clone(), None);
    let settled = resolver.pass(None).await.unwrap();
    assert_eq!(i64::from(settled.looked_up), held, "pm has every one it took");
    wait_for_count(pool, SENT, 900, Duration::from_secs(60)).await;

    let pm_state = health(pool, "pm").await;
    assert_eq!(pm_state, "down");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(
        pool,
        "INSERT INTO postrunner.jobs (kind) VALUES ('system.evaluate_alerts')",
    )
    .await;
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.alerts WHERE subject = 'pm' AND state = 'firing'",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status <> 'sent'").await,
        0,
        "nothing failed or was lost"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT message_id FROM postrunner.send_attempts WHERE outcome = 'sent'
                                    GROUP BY 1 HAVING count(*) > 1) x"
        )
        .await,
        0,
        "each message sent once"
    );
    // Messages whose pm attempt failed went out through another provider, without
    // using an attempt for the failure.
    let rerouted = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE provider = 'pm' AND outcome = 'released'",
    )
    .await;
    assert!(rerouted >= 1, "pm failed {rerouted} sends before its breaker opened");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.send_attempts s JOIN postrunner.outbox o ON o.id = s.message_id
              WHERE s.provider = 'pm' AND s.outcome = 'released' AND o.provider = 'pm'"
        )
        .await,
        0
    );
    // What pm may have taken was never sent elsewhere.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.send_attempts s JOIN postrunner.outbox o ON o.id = s.message_id
              WHERE s.resolution = 'lookup' AND (o.provider <> 'pm' OR s.provider <> 'pm')"
        )
        .await,
        0
    );

    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE attempts > 1").await,
        0,
        "a provider failure uses no attempt"
    );
    // While down (before its first trial), pm got no traffic; claims already under
    // way when it went down (health is read without a lock) get half a second.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.send_attempts s, postrunner.provider_health_history h
              WHERE h.provider = 'pm' AND h.state = 'down' AND s.provider = 'pm'
                AND s.reserved_at > h.at + interval '0.5 seconds' AND s.reserved_at < h.at + interval '1.9 seconds'"
        )
        .await,
        0
    );

    // pm heals: after its cool-down a trial succeeds and it is up again.
    fakes.pm.fail_always(vec![]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    messages(pool, "acme", "d", 200).await;
    wait_for_count(pool, SENT, 1100, Duration::from_secs(60)).await;
    exec(
        pool,
        "INSERT INTO postrunner.jobs (kind) VALUES ('system.evaluate_alerts')",
    )
    .await;
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.alerts WHERE subject = 'pm' AND state = 'resolved'",
        1,
        Duration::from_secs(10),
    )
    .await;
    worker.stop().await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.alerts").await,
        1,
        "fired once, resolved once"
    );
    let history: Vec<String> = sqlx::query_scalar(
        "SELECT state::text FROM postrunner.provider_health_history WHERE provider = 'pm' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(history.first().map(String::as_str), Some("degraded"));
    assert!(history.contains(&"down".to_owned()), "{history:?}");
    assert_eq!(history.last().map(String::as_str), Some("up"), "{history:?}");
    let pm_after_heal = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE provider = 'pm' AND outcome = 'sent'
            AND reserved_at > (SELECT max(at) FROM postrunner.provider_health_history WHERE provider = 'pm' AND state = 'down')",
    )
    .await;
    assert!(pm_after_heal > 0, "pm carries traffic again");
    let report: String =
        sqlx::query_scalar("SELECT state::text FROM postrunner.report_provider_health WHERE provider = 'pm'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(report, "up");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_refused_recipient_fails_the_message_and_is_suppressed() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fakes, directory) = three_providers(&db).await;
    exec(pool, "UPDATE postrunner.providers SET enabled = (name = 'pm')").await;
    fakes.pm.fail_next([Fault::Reply(
        422,
        r#"{"ErrorCode": 406, "Message": "You tried to send to a recipient that has been marked as inactive."}"#.into(),
        vec![],
    )]);
    exec(
        pool,
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body) VALUES ('acme', 'd', 'Gone@Example.org', 'Hi', 'x')",
    )
    .await;
    let worker = crate::support::run::executor(pool, kinds::registry(pool.clone(), Arc::new(directory)), fast_config());
    worker.drain(None).await.unwrap();

    let (status, attempts): (String, i32) = sqlx::query_as("SELECT status::text, attempts FROM postrunner.outbox")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("failed", 1),
        "no retry for a refused recipient"
    );
    let reason: String = sqlx::query_scalar(
        "SELECT reason::text FROM postrunner.suppressions WHERE lower(address) = 'gone@example.org'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(reason, "hard_bounce");
    // A refusal of one recipient says nothing about the provider's health.
    let state = health(pool, "pm").await;
    assert_eq!(state, "up");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_429_pauses_its_provider_for_the_time_it_asks() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fakes, directory) = three_providers(&db).await;
    exec(pool, "UPDATE postrunner.providers SET enabled = (name IN ('sg', 'rs'))").await;
    fakes.rs.fail_next([Fault::Reply(
        429,
        r#"{"statusCode":429,"name":"rate_limit_exceeded","message":"Too many requests"}"#.into(),
        vec![("retry-after", "30".into())],
    )]);
    messages(pool, "acme", "d", 40).await;
    let worker = crate::support::run::executor(pool, kinds::registry(pool.clone(), Arc::new(directory)), fast_config());
    worker.drain(None).await.unwrap();

    assert_eq!(count(pool, SENT).await, 40, "sg carried what rs could not");
    let paused_for = count(
        pool,
        "SELECT extract(epoch FROM paused_until - now())::bigint FROM postrunner.provider_health WHERE provider = 'rs'",
    )
    .await;
    assert!(
        (25..=30).contains(&paused_for),
        "rs paused for about 30 s: {paused_for}"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.send_attempts
              WHERE provider = 'rs' AND reserved_at > (SELECT last_failure_at FROM postrunner.provider_health WHERE provider = 'rs')"
        )
        .await,
        0,
        "no traffic to rs after it asked for a pause"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_provider_down_for_five_minutes_fires_one_alert_that_resolves_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind) VALUES ('p', 'log'), ('q', 'log')",
    )
    .await;
    let worker = crate::support::run::executor(pool, crate::support::run::registry(pool), fast_config());
    let evaluate = || async {
        exec(
            pool,
            "INSERT INTO postrunner.jobs (kind) VALUES ('system.evaluate_alerts')",
        )
        .await;
        worker.drain(None).await.unwrap();
    };
    let alerts = || async {
        sqlx::query_as::<_, (String, String)>("SELECT subject, state FROM postrunner.alerts ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    };

    // q has been down for a minute only: no alert yet.
    exec(
        pool,
        "UPDATE postrunner.provider_health SET state = 'down', since = now() - interval '6 minutes', last_error = '503'
          WHERE provider = 'p';
         UPDATE postrunner.provider_health SET state = 'down', since = now() - interval '1 minute' WHERE provider = 'q';",
    )
    .await;
    evaluate().await;
    evaluate().await;
    assert_eq!(
        alerts().await,
        [("p".to_owned(), "firing".to_owned())],
        "once, while it stays down"
    );

    exec(
        pool,
        "UPDATE postrunner.provider_health SET state = 'up' WHERE provider = 'p'",
    )
    .await;
    evaluate().await;
    evaluate().await;
    assert_eq!(alerts().await, [("p".to_owned(), "resolved".to_owned())]);
    let detail: String = sqlx::query_scalar("SELECT detail FROM postrunner.report_alerts")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(detail.contains("503"), "{detail}");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn probes_take_a_failing_provider_down_and_bring_it_back() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fakes, directory) = three_providers(&db).await;
    let worker = crate::support::run::executor(pool, kinds::registry(pool.clone(), Arc::new(directory)), fast_config());
    let probe = || async {
        exec(
            pool,
            "INSERT INTO postrunner.jobs (kind) VALUES ('system.probe_providers')",
        )
        .await;
        worker.drain(None).await.unwrap();
    };

    probe().await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.provider_probes WHERE ok").await,
        3
    );
    assert!(
        fakes.sg.received().iter().any(|r| r.path == "/v3/scopes"),
        "an authenticated GET, no send"
    );

    fakes
        .pm
        .fail_always(vec![Fault::Reply(503, "Service Unavailable".into(), vec![])]);
    for _ in 0..3 {
        probe().await;
    }
    assert_eq!(health(pool, "pm").await, "down", "three failed probes open the breaker");
    assert_eq!(health(pool, "sg").await, "up");

    fakes.pm.fail_always(vec![]);
    probe().await;
    assert_eq!(
        health(pool, "pm").await,
        "down",
        "a good probe during the cool-down proves nothing"
    );
    // Past the cool-down (2 s here), good probes count as trial successes: three close it.
    exec(
        pool,
        "UPDATE postrunner.provider_health SET since = since - interval '3 seconds' WHERE provider = 'pm'",
    )
    .await;
    for _ in 0..2 {
        probe().await;
        assert_eq!(health(pool, "pm").await, "down");
    }
    probe().await;
    assert_eq!(
        health(pool, "pm").await,
        "up",
        "three good probes past the cool-down close it"
    );
    let p50: Option<f64> = sqlx::query_scalar(
        "SELECT latency_p50_ms::float8 FROM postrunner.report_provider_health WHERE provider = 'sg'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(p50.is_some_and(|ms| ms > 0.0), "probe latency is reported: {p50:?}");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_worker_killed_during_a_send_holds_the_message_then_resends_it_after_the_wait() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let simulator = FakeProvider::start(Kind::SendGrid, KEY).await;
    // The first send hangs: the worker is killed while it waits for the answer.
    simulator.fail_next([Fault::Slow(Duration::from_secs(30))]);
    let variable = acme_on_sendgrid(pool, &simulator.url).await;
    exec(
        pool,
        "UPDATE postrunner.settings SET value = '1' WHERE name = 'uncertain_wait_secs'",
    )
    .await;
    messages(pool, "acme", "d", 1).await;
    let mut worker = crate::support::run::Process::spawn_with_env(
        &db.url,
        &["worker", "--lease", "2s", "--heartbeat", "500ms"],
        &[(variable.as_str(), KEY)],
    );
    crate::support::eventually(Duration::from_secs(20), "the send in flight", || async {
        !simulator.received().is_empty()
    })
    .await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'sending'").await,
        1,
        "marked sending before the call"
    );
    worker.signal("KILL");
    let _ = worker.child.wait().await;

    // Another worker rescues it once the lease expires: the provider may have taken
    // it, so it is held, not sent again at once.
    std::env::set_var(&variable, KEY);
    let directory = Arc::new(Directory::new(pool.clone()));
    let rescuer = spawn(pool, kinds::registry(pool.clone(), directory.clone()), fast_config());
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status = 'uncertain'",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(simulator.received().len(), 1);
    // No evidence within the wait: the client's policy (resend) sends it again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    kinds::uncertain::ResolveUncertain::new(pool.clone(), directory, None)
        .pass(None)
        .await
        .unwrap();
    wait_for_count(pool, SENT, 1, Duration::from_secs(30)).await;
    rescuer.stop().await;
    let history: Vec<(i32, String, Option<String>)> =
        sqlx::query_as("SELECT attempt, outcome::text, resolution FROM postrunner.send_attempts ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        history,
        [
            (1, "failed".to_owned(), Some("resent".to_owned())),
            (2, "sent".to_owned(), None)
        ],
        "policy: resend"
    );
    assert_eq!(
        simulator.received().len(),
        2,
        "the duplicate window is one in-flight attempt"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn an_error_rate_over_the_window_takes_a_provider_down_without_a_streak() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind) VALUES ('p', 'log');
         -- 24 sends in the last minute, half of them failed, never three in a row.
         INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address, day, reserved_at, outcome)
         SELECT gen_random_uuid(), i, 1, 'c', 'd', 'p', 'a@b.test', current_date, now() - interval '10 seconds',
                CASE WHEN i % 2 = 0 THEN 'sent' ELSE 'released' END::postrunner.attempt_outcome
           FROM generate_series(1, 24) AS i;
         UPDATE postrunner.send_attempts SET fault = 'provider' WHERE outcome = 'released';",
    )
    .await;
    let state: String = sqlx::query_scalar("SELECT postrunner.record_provider_failure('p', '503')::text")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(state, "down", "50% failed over the window");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn refused_recipients_do_not_count_against_the_providers_health() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let (fakes, directory) = three_providers(&db).await;
    exec(pool, "UPDATE postrunner.providers SET enabled = (name = 'pm')").await;
    let inactive = Fault::Reply(
        422,
        r#"{"ErrorCode": 406, "Message": "You tried to send to a recipient that has been marked as inactive."}"#.into(),
        vec![],
    );
    // Ten hard bounces and ten good sends within the breaker's window (20 attempts, the
    // minimum for the error rate to count) ...
    fakes.pm.fail_next(std::iter::repeat_n(inactive, 10));
    messages(pool, "acme", "d", 20).await;
    let worker = crate::support::run::executor(pool, kinds::registry(pool.clone(), Arc::new(directory)), fast_config());
    worker.drain(None).await.unwrap();
    assert_eq!(count(pool, SENT).await, 10);
    // ... then one provider failure.
    fakes
        .pm
        .fail_next([Fault::Reply(503, "Service Unavailable".into(), vec![])]);
    exec(
        pool,
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body) VALUES ('acme', 'd', 'one@example.org', 'Hi', 'x')",
    )
    .await;
    worker.drain(None).await.unwrap();

    // One provider fault in 21 attempts: degraded, then up again when the rerouted
    // message went out; never down.
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state::text FROM postrunner.provider_health_history WHERE provider = 'pm' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(states, ["degraded", "up"], "never down");
    let faults: Vec<(String, i64)> =
        sqlx::query_as("SELECT coalesce(fault, 'none'), count(*) FROM postrunner.send_attempts GROUP BY 1 ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        faults,
        [
            ("none".to_owned(), 11),
            ("provider".to_owned(), 1),
            ("recipient".to_owned(), 10)
        ],
        "each attempt's failure class is on the ledger"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

/// A down provider whose cool-down has passed, with plenty of messages and addresses.
async fn a_down_provider_past_its_cool_down(pool: &sqlx::PgPool) {
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.providers (name, kind) VALUES ('p', 'log');
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 'p' || i || '@acme.test', 'p', 'acme', 10000000 FROM generate_series(1, 100) i;
         UPDATE postrunner.provider_health SET state = 'down', since = now() - interval '1 minute', consecutive_failures = 3
          WHERE provider = 'p';",
    )
    .await;
    messages(pool, "acme", "d", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_down_provider_gets_a_bounded_number_of_trial_sends_across_all_workers() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    a_down_provider_past_its_cool_down(pool).await;

    // Four workers claim at once, nobody completes: together they may try 5 sends
    // (breaker_trial_sends), not one batch each.
    let claims = (0..4).map(|_| {
        let pool = db.another_pool(2);
        async move {
            let request = ClaimRequest::new(uuid::Uuid::new_v4(), 50, Duration::from_secs(60));
            claim(&pool, request).await.unwrap().len()
        }
    });
    let claimed: usize = futures_util::future::join_all(claims).await.into_iter().sum();
    assert_eq!(claimed, 5, "trial sends admitted across all workers");
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.send_attempts WHERE trial").await,
        5,
        "the ledger marks them as trials"
    );
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn trial_successes_close_the_breaker_and_one_good_probe_does_not() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    a_down_provider_past_its_cool_down(pool).await;
    exec(
        pool,
        "UPDATE postrunner.settings SET value = '1' WHERE name = 'breaker_trial_sends'",
    )
    .await;
    let worker = crate::support::run::executor(pool, crate::support::run::registry(pool), fast_config());

    // One good probe is not enough (probes record their success this way).
    exec(pool, "SELECT postrunner.record_provider_successes(ARRAY['p'])").await;
    assert_eq!(health(pool, "p").await, "down", "a probe alone does not close it");

    // One trial send per cool-down period: the first goes and succeeds ...
    assert_eq!(worker.tick(None).await.unwrap(), 1);
    assert_eq!(health(pool, "p").await, "down", "two successes of three");
    assert_eq!(worker.tick(None).await.unwrap(), 0, "the period's trial is used");
    // ... the next period admits one more, whose success closes the breaker.
    // (Thirty seconds later: the lane's gate, set until the next period, opens too.)
    exec(
        pool,
        "UPDATE postrunner.provider_health SET since = since - interval '30 seconds', trial_window_at = trial_window_at - interval '30 seconds';
         UPDATE postrunner.lanes SET ready_at = '-infinity', queue_at = least(queue_at, now());",
    )
    .await;
    assert_eq!(worker.tick(None).await.unwrap(), 1);
    assert_eq!(
        health(pool, "p").await,
        "up",
        "three successes (a probe and two trial sends)"
    );
    assert!(worker.tick(None).await.unwrap() > 1, "full traffic again");
    crate::support::assert_promises_hold(&db.pool).await;
}
