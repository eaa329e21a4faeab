//! Routing: which address a message goes out from, and when. Limits are checked in the
//! claim; time moves through the claim's `now`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use postrunner::kinds;
use postrunner_providers::log::LogProvider;
use postrunner_providers::{Accepted, Directory, OutgoingMessage, Provider, SendError};
use postrunner_queue::claim::{claim, ClaimRequest};
use postrunner_queue::heartbeat::rescue_expired;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory;
use crate::support::factory::messages;
use crate::support::routing::{
    acme_on_one_provider, addresses, at, blocked, drain_all_at, drain_at, no_jitter, provider, sent_by_provider,
};
use crate::support::run::{executor, fast_config, registry};

#[tokio::test]
async fn a_message_goes_out_only_from_an_eligible_address() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    factory::zoned_client(pool, "globex", "UTC", "d").await;
    for name in ["ok", "down", "off", "other"] {
        provider(pool, name, 100).await;
    }
    addresses(pool, "acme", "ok", 2, 1000).await;
    addresses(pool, "acme", "down", 2, 1000).await;
    addresses(pool, "acme", "off", 2, 1000).await;
    addresses(pool, "acme", "other", 2, 1000).await;
    addresses(pool, "globex", "ok", 2, 1000).await;
    exec(
        pool,
        "INSERT INTO postrunner.sender_addresses (address, provider, client, status) VALUES ('paused@acme.test', 'ok', 'acme', 'paused');
         INSERT INTO postrunner.direction_providers (client, direction, provider) VALUES ('acme', 'd', 'ok'), ('acme', 'd', 'down'), ('acme', 'd', 'off');
         UPDATE postrunner.provider_health SET state = 'down', since = '2027-01-05' WHERE provider = 'down';
         UPDATE postrunner.providers SET enabled = false WHERE name = 'off';",
    )
    .await;
    messages(pool, "acme", "d", 30).await;

    let worker = executor(pool, registry(pool), fast_config());
    let t = at("2027-01-04T10:00:00Z");
    assert_eq!(
        drain_at(&worker, t).await,
        2,
        "each eligible address sends once at this instant"
    );

    let used: Vec<String> =
        sqlx::query_scalar("SELECT from_address FROM postrunner.outbox WHERE status = 'sent' ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(used, ["ok-1@acme.test", "ok-2@acme.test"]);
    assert_eq!(blocked(pool, "acme", "d").await.0.as_deref(), Some("pacing"));

    // Without 'ok', what is left is down or disabled: the direction waits for health.
    exec(
        pool,
        "UPDATE postrunner.providers SET enabled = false WHERE name = 'ok'",
    )
    .await;
    assert_eq!(drain_at(&worker, t + Duration::hours(2)).await, 0);
    assert_eq!(
        blocked(pool, "acme", "d").await,
        (Some("provider_down".to_owned()), Some(at("2027-01-05T00:00:30Z")))
    );
}

#[tokio::test]
async fn a_waiting_backlog_costs_a_worker_almost_no_queries() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 10, 50, 5000).await;
    // A window that opened yesterday and will not open again for a week.
    let today = count(pool, "SELECT extract(isodow FROM now())::bigint").await;
    let yesterday = if today == 1 { 7 } else { today - 1 };
    exec(
        pool,
        &format!("UPDATE postrunner.directions SET send_days = '{{{yesterday}}}'"),
    )
    .await;
    // The defaults: poll every second, heartbeat every 5 s.
    let config = postrunner_queue::executor::ExecutorConfig::default();
    let worker = crate::support::run::spawn(pool, registry(pool), config);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await; // settled: the lane is gated
    let commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()";
    let before = count(pool, commits).await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let spent = count(pool, commits).await - before;
    worker.stop().await;
    assert_eq!(blocked(pool, "acme", "d").await.0.as_deref(), Some("window"));
    // Each of two fetchers claims, asks when the lane opens, and promotes and rescues
    // about once per poll interval: about 8 a second. A busy loop would be hundreds.
    assert!(spent < 60, "{spent} transactions in 5 s with 5,000 messages waiting");
}

#[tokio::test]
async fn the_daily_limit_holds_and_resets_at_midnight_in_the_clients_time_zone() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "nyc", "America/New_York", "d").await;
    provider(pool, "p", 100).await;
    addresses(pool, "nyc", "p", 1, 3).await;
    no_jitter(pool).await; // 3 a day: one slot every 8 hours
    messages(pool, "nyc", "d", 10).await;
    let worker = executor(pool, registry(pool), fast_config());

    // 2027-01-05 in New York runs from 05:00Z to 05:00Z the next day.
    assert_eq!(drain_at(&worker, at("2027-01-05T05:30:00Z")).await, 1);
    assert_eq!(
        drain_at(&worker, at("2027-01-05T13:00:00Z")).await,
        0,
        "before the pacing slot"
    );
    assert_eq!(drain_at(&worker, at("2027-01-05T13:31:00Z")).await, 1);
    assert_eq!(drain_at(&worker, at("2027-01-05T21:32:00Z")).await, 1);
    assert_eq!(
        drain_at(&worker, at("2027-01-06T04:59:00Z")).await,
        0,
        "3 sent: the day's limit"
    );

    // The next local day starts at 05:00Z, but pacing still spaces the next send 8
    // hours after the last one (21:32Z): the day's limit is what the lane waits for.
    let (why, until) = blocked(pool, "nyc", "d").await;
    assert_eq!(why.as_deref(), Some("daily_limit"));
    assert_eq!(until, Some(at("2027-01-06T05:32:00Z")));
    // Waiting burns no attempt and keeps the message queued.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.outbox WHERE status = 'queued' AND attempts = 0"
        )
        .await,
        7
    );

    assert_eq!(drain_at(&worker, at("2027-01-06T05:31:00Z")).await, 0);
    assert_eq!(
        drain_at(&worker, at("2027-01-06T05:32:00Z")).await,
        1,
        "a new day in New York"
    );
    let per_day: Vec<(String, i64)> = sqlx::query_as(
        "SELECT day::text, sum(sent)::bigint FROM postrunner.report_daily_volume GROUP BY day ORDER BY day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(per_day, [("2027-01-05".to_owned(), 3), ("2027-01-06".to_owned(), 1)]);
}

#[tokio::test]
async fn warm_up_ramps_the_limit_day_by_day_up_to_the_daily_limit() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "UPDATE postrunner.settings SET value = '2,4,8' WHERE name = 'warmup_schedule';
         UPDATE postrunner.settings SET value = '1.5' WHERE name = 'warmup_growth';",
    )
    .await;
    let limits: Vec<i32> = sqlx::query_scalar(
        "SELECT postrunner.effective_daily_limit(10, '2027-01-05', '2027-01-05'::date + d) FROM generate_series(-1, 5) AS d",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        limits,
        [2, 2, 4, 8, 10, 10, 10],
        "schedule, then growth, capped at daily_limit"
    );
    let grown: i32 = sqlx::query_scalar("SELECT postrunner.effective_daily_limit(100, '2027-01-05', '2027-01-09')")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(grown, 18, "8 x 1.5 x 1.5 after the schedule ends");

    factory::zoned_client(pool, "acme", "UTC", "d").await;
    provider(pool, "p", 100).await;
    exec(
        pool,
        "INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit, warmup_started_on)
         VALUES ('new@acme.test', 'p', 'acme', 10, '2027-01-05')",
    )
    .await;
    no_jitter(pool).await;
    messages(pool, "acme", "d", 20).await;
    let worker = executor(pool, registry(pool), fast_config());
    // Day 0: limit 2, a slot every 12 h. Day 1: limit 4, every 6 h.
    let mut sent = 0;
    for time in ["00:00:01", "12:00:02", "23:59:00"] {
        sent += drain_at(&worker, at(&format!("2027-01-05T{time}Z"))).await;
    }
    assert_eq!(sent, 2);
    // (The day's first slot is 12 h after the last send of day 0, at 00:00:02.)
    for time in ["00:00:00", "00:00:05", "06:00:06", "12:00:07", "18:00:08", "23:59:00"] {
        sent += drain_at(&worker, at(&format!("2027-01-06T{time}Z"))).await;
    }
    assert_eq!(sent, 6);
    let capacity: (i32, i64) =
        sqlx::query_as("SELECT effective_limit, sent_today::bigint FROM postrunner.report_capacity")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        capacity,
        (2, 0),
        "today (real clock) is before the warm-up starts: its first step"
    );
}

#[tokio::test]
async fn pacing_spreads_an_addresss_sends_with_jitter() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 48, 100).await; // a slot every 30 min, +-20%
    let worker = executor(pool, registry(pool), fast_config());
    let start = at("2027-01-04T00:00:00Z");
    for minute in 0..(6 * 60) {
        drain_at(&worker, start + Duration::minutes(minute)).await;
    }
    let times: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT reserved_at FROM postrunner.send_attempts ORDER BY reserved_at")
            .fetch_all(pool)
            .await
            .unwrap();
    let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0]).num_minutes()).collect();
    assert!(times.len() >= 10, "about 12 sends in 6 hours, got {}", times.len());
    assert!(
        gaps.iter().all(|&g| (24..=37).contains(&g)),
        "gaps in minutes: {gaps:?}"
    );
    assert!(gaps.iter().any(|&g| g != gaps[0]), "jitter varies the gaps: {gaps:?}");
}

#[tokio::test]
async fn a_direction_waits_for_its_sending_window() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "office-hours").await;
    exec(
        pool,
        "UPDATE postrunner.directions SET send_days = '{1,2,3,4,5}', window_start = '09:00', window_end = '17:00',
                time_zone = 'Europe/Paris'",
    )
    .await;
    provider(pool, "p", 100).await;
    addresses(pool, "acme", "p", 3, 1000).await;
    messages(pool, "acme", "office-hours", 2).await;
    let worker = executor(pool, registry(pool), fast_config());

    // Saturday 2027-01-09 10:00 in Paris.
    assert_eq!(drain_at(&worker, at("2027-01-09T09:00:00Z")).await, 0);
    let (why, until) = blocked(pool, "acme", "office-hours").await;
    assert_eq!(why.as_deref(), Some("window"));
    assert_eq!(until, Some(at("2027-01-11T08:00:00Z")), "Monday 09:00 in Paris");
    assert_eq!(drain_at(&worker, at("2027-01-11T07:59:00Z")).await, 0);
    assert_eq!(drain_at(&worker, at("2027-01-11T08:00:00Z")).await, 2);
    // And it closes again at 17:00.
    messages(pool, "acme", "office-hours", 1).await;
    assert_eq!(drain_at(&worker, at("2027-01-11T16:00:00Z")).await, 0);
}

#[tokio::test]
async fn the_provider_rate_holds_per_minute_across_workers() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 40, 100000, 60).await;
    exec(pool, "UPDATE postrunner.providers SET per_minute = 5").await;
    let workers: Vec<_> = (0..4).map(|_| executor(pool, registry(pool), fast_config())).collect();

    assert_eq!(drain_all_at(&workers, at("2027-01-04T12:00:10Z")).await, 5);
    assert_eq!(drain_all_at(&workers, at("2027-01-04T12:00:50Z")).await, 0);
    assert_eq!(
        blocked(pool, "acme", "d").await,
        (Some("provider_rate".to_owned()), Some(at("2027-01-04T12:01:00Z")))
    );
    assert_eq!(drain_all_at(&workers, at("2027-01-04T12:01:00Z")).await, 5);
    let busiest: i64 = count(
        pool,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM postrunner.send_attempts GROUP BY date_trunc('minute', reserved_at)) m",
    )
    .await;
    assert_eq!(busiest, 5);
}

#[tokio::test]
async fn the_monthly_budget_is_a_hard_limit() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 10, 100000, 10).await;
    // 1.00 a message plus 10.00 a month, budget 13.00: three messages this month.
    exec(
        pool,
        "UPDATE postrunner.providers SET price_per_1000 = 1000, monthly_fee = 10, monthly_budget = 13",
    )
    .await;
    let worker = executor(pool, registry(pool), fast_config());

    // The real clock here, so that report_cost's "this month" is the ledger's.
    assert_eq!(worker.drain(None).await.unwrap(), 3);
    assert_eq!(blocked(pool, "acme", "d").await.0.as_deref(), Some("budget"));
    let (spend, reached): (String, bool) = sqlx::query_as(
        "SELECT spend::text, budget_reached FROM postrunner.report_cost WHERE level = 'provider' AND provider = 'p'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(spend, "13.00");
    assert!(reached);

    // A bigger budget takes effect at once (the change opens the gate).
    exec(pool, "UPDATE postrunner.providers SET monthly_budget = 15").await;
    assert_eq!(worker.drain(None).await.unwrap(), 2);
}

#[tokio::test]
async fn suppressed_recipients_are_never_sent() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    crate::support::factory::client(pool, "acme", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'Bob@Example.org', 'unsubscribe');
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body) VALUES
             ('acme', 'd', 'alice@example.org', 'Hi', 'x'),
             ('acme', 'd', 'bob@EXAMPLE.org', 'Hi', 'x'),
             ('acme', 'd', 'carol@example.org', 'Hi', 'x');",
    )
    .await;
    let worker = executor(pool, registry(pool), fast_config());
    worker.drain(None).await.unwrap();

    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT to_address, status::text FROM postrunner.outbox ORDER BY to_address")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        [
            ("alice@example.org".to_owned(), "sent".to_owned()),
            ("bob@EXAMPLE.org".to_owned(), "suppressed".to_owned()),
            ("carol@example.org".to_owned(), "sent".to_owned()),
        ]
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.send_attempts WHERE message_id IN (SELECT id FROM postrunner.outbox WHERE status = 'suppressed')").await,
        0,
        "a suppressed message reserves nothing"
    );
}

/// Providers `big` (weight 300) and `small` (100), 50 addresses each, `n` messages.
async fn big_and_small(pool: &sqlx::PgPool, n: i32) {
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    provider(pool, "big", 300).await;
    provider(pool, "small", 100).await;
    addresses(pool, "acme", "big", 50, 1000).await;
    addresses(pool, "acme", "small", 50, 1000).await;
    messages(pool, "acme", "d", n).await;
}

#[tokio::test]
async fn providers_share_by_weight_and_an_exhausted_provider_hands_over() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    big_and_small(pool, 400).await;
    let worker = executor(pool, registry(pool), fast_config());
    let t = at("2027-01-04T10:00:00Z");
    for _ in 0..5 {
        worker.tick(Some(t)).await.unwrap();
    }
    let shares = sent_by_provider(pool).await;
    assert_eq!((shares["big"], shares["small"]), (30, 10), "3:1 over the first 40");

    // big's addresses may send once a day from now on: once they have, small takes all.
    exec(
        pool,
        "UPDATE postrunner.sender_addresses SET daily_limit = 1 WHERE provider = 'big'",
    )
    .await;
    for minute in 0..30 {
        drain_at(&worker, t + Duration::minutes(2 * minute + 1)).await;
    }
    let shares = sent_by_provider(pool).await;
    assert_eq!(shares["big"], 50, "one per big address today, no more");
    assert_eq!(shares["big"] + shares["small"], 400, "small carried the rest");
}

#[tokio::test]
async fn providers_share_by_weight_even_one_message_at_a_time() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    big_and_small(pool, 100).await;
    let config = postrunner_queue::executor::ExecutorConfig {
        concurrency: 1,
        ..fast_config()
    };
    let worker = executor(pool, registry(pool), config);
    for _ in 0..40 {
        worker.tick(Some(at("2027-01-04T10:00:00Z"))).await.unwrap();
    }
    let shares = sent_by_provider(pool).await;
    assert_eq!(
        (shares["big"], shares["small"]),
        (30, 10),
        "a provider passed over keeps its turn"
    );
}

#[tokio::test]
async fn a_degraded_provider_gets_half_its_weight() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    provider(pool, "steady", 100).await;
    provider(pool, "shaky", 100).await;
    addresses(pool, "acme", "steady", 50, 1000).await;
    addresses(pool, "acme", "shaky", 50, 1000).await;
    messages(pool, "acme", "d", 100).await;
    exec(
        pool,
        "UPDATE postrunner.provider_health SET state = 'degraded' WHERE provider = 'shaky'",
    )
    .await;
    // One claim (a success would bring shaky back up): its routes, by provider.
    let request = ClaimRequest {
        now: Some(at("2027-01-04T10:00:00Z")),
        ..ClaimRequest::new(Uuid::new_v4(), 12, std::time::Duration::from_secs(30))
    };
    let claimed = claim(pool, request).await.unwrap();
    let on_shaky = claimed.iter().filter(|job| job.args["provider"] == "shaky").count();
    assert_eq!(
        (claimed.len() - on_shaky, on_shaky),
        (8, 4),
        "2:1 for equal weights, one degraded"
    );
}

#[tokio::test]
async fn a_big_direction_does_not_starve_a_small_one() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "big").await;
    exec(
        pool,
        "INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'small')",
    )
    .await;
    provider(pool, "p", 100).await;
    addresses(pool, "acme", "p", 10, 1000).await;
    messages(pool, "acme", "big", 200).await; // enqueued first
    messages(pool, "acme", "small", 10).await;
    let worker = executor(pool, registry(pool), fast_config());

    // Ten addresses: ten sends at this instant, to be shared.
    assert_eq!(drain_at(&worker, at("2027-01-04T10:00:00Z")).await, 10);
    let small: i64 = count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE direction = 'small' AND status = 'sent'",
    )
    .await;
    assert!(small >= 4, "the small direction got {small} of 10");
}

#[tokio::test]
async fn a_worker_that_dies_after_reserving_cannot_cause_an_overshoot() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1, 1).await;
    let t = at("2027-01-04T10:00:00Z");

    // A worker claims (and so reserves) the message, then dies before sending.
    let request = ClaimRequest {
        now: Some(t),
        ..ClaimRequest::new(Uuid::new_v4(), 10, std::time::Duration::from_secs(30))
    };
    assert_eq!(claim(pool, request).await.unwrap().len(), 1);
    let rescued = rescue_expired(pool, Some(t + Duration::seconds(31))).await.unwrap();
    assert_eq!(rescued.held, 1, "its send may have gone: held, not requeued");
    // No evidence within the wait (15 minutes): resent, by the client's default policy.
    let (resent,): (i32,) = sqlx::query_as("SELECT resent FROM postrunner.settle_uncertain($1)")
        .bind(t + Duration::minutes(16))
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(resent, 1);

    // The lost attempt may have reached the provider: it still counts.
    let worker = executor(pool, registry(pool), fast_config());
    assert_eq!(drain_at(&worker, t + Duration::minutes(20)).await, 0);
    assert_eq!(blocked(pool, "acme", "d").await.0.as_deref(), Some("daily_limit"));
    // Tomorrow, once the pacing slot after the lost attempt has passed too.
    assert_eq!(drain_at(&worker, at("2027-01-05T12:00:00Z")).await, 1);

    let outcomes: Vec<(String, String)> =
        sqlx::query_as("SELECT day::text, outcome::text FROM postrunner.send_attempts ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        outcomes,
        [
            ("2027-01-04".to_owned(), "failed".to_owned()),
            ("2027-01-05".to_owned(), "sent".to_owned())
        ]
    );
}

/// Refuses the first `failures` messages as a temporary failure, then accepts.
struct FlakyProvider {
    failures: usize,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Provider for FlakyProvider {
    fn name(&self) -> &str {
        "p"
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(SendError::Transient {
                provider: "p".into(),
                detail: "421 try again later".into(),
            });
        }
        LogProvider::new("p").send(message).await
    }
}

#[tokio::test]
async fn a_send_the_provider_did_not_take_gives_its_capacity_back() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1, 1).await;
    let flaky: Arc<dyn Provider> = Arc::new(FlakyProvider {
        failures: 1,
        calls: AtomicUsize::new(0),
    });
    let providers = Directory::with_builder(pool.clone(), move |_| Some(flaky.clone()));
    let worker = executor(pool, kinds::registry(pool.clone(), Arc::new(providers)), fast_config());
    let t = at("2027-01-04T10:00:00Z");

    assert_eq!(drain_at(&worker, t).await, 1);
    assert_eq!(crate::support::factory::status_of_only_message(pool).await, "retrying");
    // The retry, a minute later, finds the address's one send of the day still free.
    assert_eq!(drain_at(&worker, t + Duration::seconds(61)).await, 1);
    assert_eq!(crate::support::factory::status_of_only_message(pool).await, "sent");
    let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome::text FROM postrunner.send_attempts ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(outcomes, ["released", "sent"]);
}

#[tokio::test]
async fn a_configuration_change_reopens_a_waiting_direction() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 1, 1, 3).await;
    let worker = executor(pool, registry(pool), fast_config());
    let t = at("2027-01-04T10:00:00Z");
    assert_eq!(drain_at(&worker, t).await, 1);
    assert_eq!(blocked(pool, "acme", "d").await.0.as_deref(), Some("daily_limit"));

    // A second address: capacity now, no need to wait for tomorrow.
    exec(
        pool,
        "INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit) VALUES ('more@acme.test', 'p', 'acme', 1)",
    )
    .await;
    assert_eq!(blocked(pool, "acme", "d").await.0, None);
    assert_eq!(drain_at(&worker, t + Duration::seconds(1)).await, 1);
}

#[tokio::test]
async fn an_open_lane_whose_messages_an_application_holds_costs_a_worker_almost_no_queries() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_on_one_provider(pool, 10, 50, 200).await;
    // The application holds every message row: the lane is open, nothing can be routed.
    let mut app = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM postrunner.outbox FOR UPDATE")
        .execute(&mut *app)
        .await
        .unwrap();
    let config = postrunner_queue::executor::ExecutorConfig::default();
    let worker = crate::support::run::spawn(pool, registry(pool), config);
    // Settled: the workers' retries have backed off to the poll interval, and the
    // statistics of their first tries are flushed (PostgreSQL flushes them within 1 s).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()";
    let before = count(pool, commits).await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let spent = count(pool, commits).await - before;
    worker.stop().await;
    app.rollback().await.unwrap();
    // The same budget as a gated lane's (above): a busy loop would be hundreds a second.
    assert!(spent < 60, "{spent} transactions in 5 s with every message held");
}
