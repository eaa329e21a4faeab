//! Limits hold at every boundary: a claim whose "now" is still in the previous minute
//! (or day, or month) when it reaches a counter that a later claim has already moved on
//! must not count from zero, nor move the counter back (issue 8). Checked with the
//! claim's `now` parameter (a late claim after an early one), and in real time with
//! eight worker processes across minute boundaries.

use chrono::DurationRound as _;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory;
use crate::support::factory::messages;
use crate::support::routing::{addresses, at, drain_at};
use crate::support::run::{executor, fast_config, registry, Process};

/// Reservations per (provider, minute of reserved_at) above the provider's per_minute.
const MINUTES_OVER_RATE: &str = "
    SELECT count(*) FROM (
        SELECT s.provider, date_trunc('minute', s.reserved_at) AS minute, count(*) AS sends
          FROM postrunner.send_attempts s WHERE postrunner.counts_as_sent(s.outcome)
         GROUP BY 1, 2) x
      JOIN postrunner.providers p ON p.name = x.provider
     WHERE x.sends > p.per_minute";

/// Opens every lane's gate, as any configuration change does.
async fn open_gates(pool: &sqlx::PgPool) {
    exec(
        pool,
        "UPDATE postrunner.lanes SET ready_at = '-infinity', queue_at = least(queue_at, now())",
    )
    .await;
}

#[tokio::test]
async fn a_late_claim_counts_against_the_minute_a_later_claim_already_started() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, per_minute) VALUES ('p', 'log', 5)",
    )
    .await;
    addresses(pool, "acme", "p", 40, 100_000_000).await;
    messages(pool, "acme", "d", 40).await;
    let worker = executor(pool, registry(pool), fast_config());

    assert_eq!(
        drain_at(&worker, at("2027-01-04T12:01:00Z")).await,
        5,
        "12:01 takes its 5"
    );
    // A claim whose transaction began at 12:00:59.9 reaches the counter after that,
    // with the lane's gate open (any configuration change opens every gate, and a gate
    // is not set while another claim holds a counter).
    open_gates(pool).await;
    assert_eq!(
        drain_at(&worker, at("2027-01-04T12:00:59.900Z")).await,
        0,
        "12:01 is full: the late claim may not count from zero"
    );
    assert_eq!(drain_at(&worker, at("2027-01-04T12:01:30Z")).await, 0, "still 12:01");
    assert_eq!(
        drain_at(&worker, at("2027-01-04T12:02:00Z")).await,
        5,
        "12:02 takes its 5"
    );

    assert_eq!(
        count(pool, MINUTES_OVER_RATE).await,
        0,
        "no minute over the rate in the ledger"
    );
    let minute: String = sqlx::query_scalar("SELECT minute::text FROM postrunner.provider_usage WHERE provider = 'p'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(minute, "2027-01-04 12:02:00+00", "the counter never moved back");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_late_claim_counts_against_the_month_a_later_claim_already_started() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    // Budget for exactly 10 messages a month (1 per 1,000 at 100 per 1,000).
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, price_per_1000, monthly_budget) VALUES ('p', 'log', 100, 1)",
    )
    .await;
    addresses(pool, "acme", "p", 40, 100_000_000).await;
    messages(pool, "acme", "d", 40).await;
    let worker = executor(pool, registry(pool), fast_config());

    assert_eq!(
        drain_at(&worker, at("2027-02-01T00:00:00Z")).await,
        10,
        "February's budget"
    );
    open_gates(pool).await;
    let late = drain_at(&worker, at("2027-01-31T23:59:59.900Z")).await as i64;
    let after = drain_at(&worker, at("2027-02-01T00:00:30Z")).await;
    assert_eq!(after, 0, "February stays at its budget after a late January claim");
    let february = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE reserved_at >= '2027-02-01T00:00:00Z'",
    )
    .await;
    assert!(
        february + late <= 10,
        "at most one month's budget across the boundary: {february} + {late}"
    );
    let month: String = sqlx::query_scalar("SELECT month::text FROM postrunner.provider_usage WHERE provider = 'p'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(month, "2027-02-01", "the month never moved back");
    crate::support::assert_promises_hold(&db.pool).await;
}

#[tokio::test]
async fn a_late_claim_counts_against_the_day_a_later_claim_already_started() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind) VALUES ('p', 'log')",
    )
    .await;
    // Two a day: one slot every 12 hours.
    addresses(pool, "acme", "p", 1, 2).await;
    messages(pool, "acme", "d", 10).await;
    let worker = executor(pool, registry(pool), fast_config());

    assert_eq!(
        drain_at(&worker, at("2027-01-05T00:00:01Z")).await,
        1,
        "the 5th's first"
    );
    // The limit is raised: the slot comes back (sender_addresses_sync_usage), while the
    // counter already says the 5th.
    exec(pool, "UPDATE postrunner.sender_addresses SET daily_limit = 3").await;
    open_gates(pool).await;
    drain_at(&worker, at("2027-01-04T23:59:59Z")).await;
    drain_at(&worker, at("2027-01-05T12:00:00Z")).await;
    drain_at(&worker, at("2027-01-05T20:00:00Z")).await;

    let over = count(
        pool,
        "SELECT count(*) FROM (SELECT day, count(*) AS n FROM postrunner.send_attempts GROUP BY day) d WHERE n > 3",
    )
    .await;
    assert_eq!(over, 0, "no day above the (raised) limit in the ledger");
    let day: String = sqlx::query_scalar("SELECT day::text FROM postrunner.address_usage")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(day, "2027-01-05", "the day never moved back");
    crate::support::assert_promises_hold(&db.pool).await;
}

/// Eight `postrunner worker` processes on one provider limited to 30 a minute, in real
/// time across at least three minute boundaries: every wall-clock minute of the ledger
/// holds at most 30, and the provider is kept busy (no minute after the first is empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy (8 worker processes for over three minutes): bin/test runs it after the rest, alone"]
async fn eight_workers_hold_a_per_minute_rate_across_real_minute_boundaries() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, per_minute) VALUES ('p', 'log', 30)",
    )
    .await;
    addresses(pool, "acme", "p", 200, 100_000_000).await;
    messages(pool, "acme", "d", 2000).await;

    let workers: Vec<Process> = (0..8)
        .map(|_| Process::spawn(&db.url, &["worker", "--concurrency", "8", "--prefetch", "16"]))
        .collect();
    // Run until three minute boundaries have passed since the first send.
    let start: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await.unwrap();
    let first_boundary = start.duration_trunc(chrono::Duration::minutes(1)).unwrap() + chrono::Duration::minutes(1);
    let end = first_boundary + chrono::Duration::minutes(2) + chrono::Duration::seconds(20);
    tokio::time::sleep((end - start).to_std().unwrap()).await;
    drop(workers);

    let per_minute: Vec<(String, i64)> = sqlx::query_as(
        "SELECT to_char(date_trunc('minute', reserved_at), 'HH24:MI'), count(*)
           FROM postrunner.send_attempts WHERE postrunner.counts_as_sent(outcome)
          GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(per_minute.len() >= 4, "sends in at least four minutes: {per_minute:?}");
    for (minute, sends) in &per_minute {
        assert!(
            *sends <= 30,
            "{sends} sends in minute {minute} (limit 30): {per_minute:?}"
        );
    }
    for (minute, sends) in &per_minute[1..per_minute.len() - 1] {
        assert!(*sends >= 25, "minute {minute} kept the provider busy: {per_minute:?}");
    }
    crate::support::assert_promises_hold(&db.pool).await;
}
