//! The big one: 1,200 addresses over 4 providers and 3 clients in 3 time zones, a
//! backlog several times the day's capacity, 8 workers claiming concurrently (each with
//! its own connections) while simulated time moves in irregular steps across two days.
//! Afterwards the ledger must show every limit held exactly.
//!
//! `bin/test` runs it after the other tests, alone (it is `#[ignore]`d in the parallel
//! run so that its load does not slow the timing-sensitive tests); repeatedly:
//! `bin/test-routing-scale 20`.

use chrono::Duration;
use rand::Rng;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::routing::{at, drain_all_at};
use crate::support::run::{executor, fast_config, registry};

const SETUP: &str = "
INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES
    ('c1', 'UTC', false), ('c2', 'America/New_York', false), ('c3', 'Asia/Tokyo', false);
INSERT INTO postrunner.directions (client, name) VALUES
    ('c1', 'all'), ('c1', 'only-p2'), ('c2', 'all'), ('c3', 'all');
-- Office hours in New York, Monday to Friday.
INSERT INTO postrunner.directions (client, name, send_days, window_start, window_end, time_zone) VALUES
    ('c2', 'office', '{1,2,3,4,5}', '09:00', '17:00', 'America/New_York');
INSERT INTO postrunner.providers (name, kind, weight, per_minute) VALUES
    ('p1', 'log', 100, NULL), ('p2', 'log', 200, NULL), ('p3', 'log', 100, NULL), ('p4', 'log', 100, 20);
INSERT INTO postrunner.direction_providers (client, direction, provider) VALUES ('c1', 'only-p2', 'p2');
-- 100 addresses per client and provider, limit 10 a day; every tenth warming up from
-- the first simulated day (5 on day one, 8 on day two).
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit, warmup_started_on)
SELECT 'a' || i || '@' || p || '.' || c || '.test', p, c, 10, CASE WHEN i % 10 = 0 THEN date '2027-01-04' END
  FROM unnest(ARRAY['c1', 'c2', 'c3']) AS c, unnest(ARRAY['p1', 'p2', 'p3', 'p4']) AS p, generate_series(1, 100) AS i;
INSERT INTO postrunner.suppressions (client, address, reason)
SELECT c, 'to' || i || '@example.org', 'hard_bounce'
  FROM unnest(ARRAY['c1', 'c2', 'c3']) AS c, generate_series(7, 7000, 700) AS i;
-- About 8,000 messages a day of capacity; 34,000 waiting.
INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
SELECT d.client, d.direction, 'to' || i || '@example.org', 'Hello', 'Hi'
  FROM (VALUES ('c1', 'all', 8000), ('c1', 'only-p2', 3000), ('c2', 'all', 8000), ('c2', 'office', 3000),
               ('c3', 'all', 12000)) AS d(client, direction, n),
       LATERAL generate_series(1, d.n) AS i;
";

/// Each check is a query that counts violations.
const CHECKS: &[(&str, &str)] = &[
    (
        "an address above its effective limit on some day",
        "SELECT count(*) FROM (
             SELECT s.from_address, s.day, count(*) AS sends,
                    postrunner.effective_daily_limit(a.daily_limit, a.warmup_started_on, s.day) AS day_limit
               FROM postrunner.send_attempts s JOIN postrunner.sender_addresses a ON a.address = s.from_address
              WHERE postrunner.counts_as_sent(s.outcome)
              GROUP BY s.from_address, s.day, a.daily_limit, a.warmup_started_on) x
          WHERE sends > day_limit",
    ),
    (
        "a provider above its per-minute rate in some minute",
        "SELECT count(*) FROM (
             SELECT s.provider, count(*) AS sends FROM postrunner.send_attempts s
              WHERE postrunner.counts_as_sent(s.outcome)
              GROUP BY s.provider, date_trunc('minute', s.reserved_at)) x
           JOIN postrunner.providers p ON p.name = x.provider
          WHERE x.sends > p.per_minute",
    ),
    (
        "two sends of an address closer than its pacing slot minus jitter",
        "SELECT count(*) FROM (
             SELECT s.*, lag(s.reserved_at) OVER w AS prev_at, lag(s.day) OVER w AS prev_day,
                    lag(s.direction) OVER w AS prev_direction
               FROM postrunner.send_attempts s WHERE postrunner.counts_as_sent(s.outcome)
             WINDOW w AS (PARTITION BY s.from_address ORDER BY s.reserved_at, s.id)) s
           JOIN postrunner.sender_addresses a ON a.address = s.from_address
           JOIN postrunner.directions d ON (d.client, d.name) = (s.client, s.prev_direction)
          WHERE s.prev_at IS NOT NULL
            AND s.reserved_at - s.prev_at < make_interval(secs =>
                    extract(epoch FROM d.window_end - d.window_start)
                    / postrunner.effective_daily_limit(a.daily_limit, a.warmup_started_on, s.prev_day) * 0.8 - 1)",
    ),
    (
        "a send of the windowed direction outside its window",
        "SELECT count(*) FROM postrunner.send_attempts s JOIN postrunner.directions d
              ON (d.client, d.name) = (s.client, s.direction)
          WHERE s.direction = 'office'
            AND NOT postrunner.window_is_open(d.send_days, d.window_start, d.window_end, d.time_zone, s.reserved_at)",
    ),
    (
        "a send of the restricted direction through another provider",
        "SELECT count(*) FROM postrunner.send_attempts WHERE direction = 'only-p2' AND provider <> 'p2'",
    ),
    (
        "an address of another client",
        "SELECT count(*) FROM postrunner.send_attempts s JOIN postrunner.sender_addresses a ON a.address = s.from_address
          WHERE a.client <> s.client",
    ),
    (
        "a message neither sent once, nor queued, nor suppressed",
        "SELECT count(*) FROM postrunner.outbox WHERE status NOT IN ('sent', 'queued', 'suppressed')",
    ),
    (
        "a message sent twice",
        "SELECT count(*) FROM (SELECT message_id FROM postrunner.send_attempts WHERE outcome = 'sent'
                                 GROUP BY message_id HAVING count(*) > 1) x",
    ),
    (
        "a sent message without its ledger row, or the reverse",
        "SELECT abs((SELECT count(*) FROM postrunner.outbox WHERE status = 'sent')
                  - (SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'sent'))",
    ),
    (
        "an attempt not closed as sent",
        "SELECT count(*) FROM postrunner.send_attempts WHERE outcome <> 'sent'",
    ),
    (
        "a suppressed recipient sent",
        "SELECT count(*) FROM postrunner.send_attempts s JOIN postrunner.outbox o ON o.id = s.message_id
           JOIN postrunner.suppressions x ON x.client = o.client AND lower(x.address) = lower(o.to_address)",
    ),
    (
        // The spread: on each client's first complete local day (the backlog never runs
        // dry), every active address used at least 70% of its effective limit.
        "an address that sent under 70% of its limit on a complete day",
        "SELECT count(*) FROM postrunner.sender_addresses a
           JOIN (VALUES ('c1', date '2027-01-04'), ('c2', date '2027-01-04'), ('c3', date '2027-01-05')) AS f(client, day)
             ON f.client = a.client
          WHERE (SELECT count(*) FROM postrunner.send_attempts s WHERE s.from_address = a.address AND s.day = f.day)
                < 0.7 * postrunner.effective_daily_limit(a.daily_limit, a.warmup_started_on, f.day)",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy (about a minute of both cores): bin/test runs it after the rest, alone"]
async fn every_limit_holds_exactly_with_eight_workers_over_two_days() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(pool, SETUP).await;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let own = db.another_pool(3);
            let config = postrunner_queue::executor::ExecutorConfig {
                concurrency: 32,
                ..fast_config()
            };
            executor(&own, registry(&own), config)
        })
        .collect();

    // Irregular steps of 1 to 6 minutes, from Monday 00:00 UTC for 48 hours: every
    // client's midnight passes twice, the office window opens and closes twice.
    let start = at("2027-01-04T00:00:00Z");
    let end = start + Duration::hours(48);
    let mut now = start;
    let mut rng = rand::thread_rng();
    while now < end {
        drain_all_at(&workers, now).await;
        now += Duration::seconds(rng.gen_range(60..=360));
    }

    let sent = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'sent'",
    )
    .await;
    let dry = count(
        pool,
        "SELECT count(*) FROM postrunner.directions d
          WHERE NOT EXISTS (SELECT 1 FROM postrunner.outbox o
                             WHERE (o.client, o.direction) = (d.client, d.name) AND o.status = 'queued')",
    )
    .await;
    let mut failures = Vec::new();
    if sent < 12_000 {
        failures.push(format!(
            "two days of about 8,000 should send well over 12,000; sent {sent}"
        ));
    }
    if dry > 0 {
        failures.push(format!(
            "the backlog should outlast the two days; {dry} directions ran dry"
        ));
    }
    for (what, sql) in CHECKS {
        let violations = count(pool, sql).await;
        if violations != 0 {
            failures.push(format!("{violations} x {what}"));
        }
    }
    assert!(failures.is_empty(), "after {sent} sends: {failures:#?}");
    crate::support::assert_promises_hold(&db.pool).await;
}

/// Issue 18, 1.2: a client with 100,000 messages waiting over 10,000 lanes (25
/// directions whose window follows the recipient, times 400 time zones) does not keep
/// another client's single lane waiting. Its addresses are paced, so each claim can send
/// little of its backlog and finds most of its lanes with no address ready: once, every
/// such lane kept its place at the front (new lanes started at -infinity), and in 40
/// claims over 400 seconds the small client was never served. Now the small client's
/// first message goes in the first claim (within its first pacing slot), and the big
/// client's lanes go to the back of the line as they are examined.
#[tokio::test]
async fn a_client_with_ten_thousand_lanes_does_not_keep_another_waiting() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ('big', 'UTC', false), ('small', 'UTC', false);
         INSERT INTO postrunner.directions (client, name, window_basis)
         SELECT 'big', 'd' || i, 'recipient' FROM generate_series(0, 24) i;
         INSERT INTO postrunner.providers (name, kind) VALUES ('p', 'log');
         -- 50 a day each: one send per address every ~29 minutes.
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 's' || i || '@big.test', 'p', 'big', 50 FROM generate_series(1, 40) i;
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         VALUES ('s@small.test', 'p', 'small', 50);
         -- (Canonical names, read from the server as migration V29 reads them.)
         WITH z AS (SELECT array_agg(name ORDER BY name) AS names
                      FROM (SELECT name FROM pg_timezone_names
                             WHERE name ~ '^(Africa|America|Antarctica|Asia|Atlantic|Australia|Europe|Indian|Pacific)/'
                             ORDER BY name LIMIT 400) t)
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, recipient_time_zone)
         SELECT 'big', 'd' || (i % 10000) / 400, 'r' || i || '@example.org', 'Hello', 'Hi', z.names[1 + (i % 10000) % 400]
           FROM z, generate_series(0, 99999) i;
         -- The small client's direction (and so its lane) comes last.
         INSERT INTO postrunner.directions (client, name) VALUES ('small', 'only');
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'small', 'only', 'm' || i || '@example.org', 'Hello', 'Hi' FROM generate_series(1, 10) i;",
    )
    .await;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.lanes WHERE client = 'big' AND recipient_zone <> ''"
        )
        .await,
        10_000
    );

    // 40 committed claims of 16 over 400 seconds, as a worker makes them.
    let start = at("2027-01-04T10:00:00Z");
    let mut small = Vec::new();
    for k in 0..40 {
        let claimed: Vec<String> = sqlx::query_scalar(
            "SELECT args -> 'message' ->> 'client'
               FROM postrunner.claim_messages(16, gen_random_uuid(), gen_random_uuid(), '1 hour', $1, false)",
        )
        .bind(start + Duration::seconds(10 * k))
        .fetch_all(pool)
        .await
        .unwrap();
        small.push(claimed.iter().filter(|c| *c == "small").count());
    }
    assert_eq!(small[0], 1, "the small client is served by the first claim: {small:?}");
    assert_eq!(
        small.iter().sum::<usize>(),
        1,
        "and then waits for its address's next slot: {small:?}"
    );
    let big = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE client = 'big'",
    )
    .await;
    assert_eq!(big, 40, "one send per big address in its first slot");
}

/// A claim parks a lane it finds with nothing waiting (sql/definitions/130_routing_lane_wakeups.sql).
/// An application whose transaction began before the lane was parked (at READ
/// COMMITTED, or at REPEATABLE READ, whose snapshot never sees the park) inserts a
/// message into it and commits afterwards: the lane comes back and the message goes.
#[tokio::test]
async fn a_lane_parked_while_a_message_was_being_inserted_comes_back() {
    for isolation in ["READ COMMITTED", "REPEATABLE READ"] {
        let db = TestDb::new().await;
        let pool = &db.pool;
        crate::support::factory::client(pool, "acme", "d").await;
        crate::support::factory::message(pool, "acme", "d", "first@example.org").await;
        let parked = "SELECT count(*) FROM postrunner.lanes WHERE client = 'acme' AND queue_at IS NULL";
        assert_eq!(count(pool, parked).await, 0);

        let mut app = pool.begin().await.unwrap();
        sqlx::raw_sql(&format!("SET TRANSACTION ISOLATION LEVEL {isolation}; SELECT 1"))
            .execute(&mut *app)
            .await
            .unwrap();
        let worker = executor(pool, registry(pool), fast_config());
        assert_eq!(worker.drain(None).await.unwrap(), 1);
        assert_eq!(count(pool, parked).await, 1, "{isolation}: found empty, parked");

        sqlx::query(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
             VALUES ('acme', 'd', 'second@example.org', 'Hi', 'x')",
        )
        .execute(&mut *app)
        .await
        .unwrap();
        app.commit().await.unwrap();
        assert_eq!(worker.drain(None).await.unwrap(), 1, "{isolation}: the lane came back");
        assert_eq!(
            count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'").await,
            2
        );
        crate::support::assert_promises_hold(pool).await;
    }
}
