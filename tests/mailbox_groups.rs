//! Throttles per recipient mailbox group (issue 10, part 7): a client's limits per hour
//! and per day for Gmail (and Google-hosted domains, found by their MX), Outlook,
//! Yahoo..., over all its addresses, directions and workers; held in the claim with the
//! `now` parameter at hour and day boundaries, with a claim that commits late, and in
//! real time with eight worker processes across a real hour boundary.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::dns_server::Dnsmasq;
use crate::support::routing::{addresses, at, drain_all_at, drain_at, provider};
use crate::support::run::{executor, fast_config, registry, Process};

/// Client acme (time zone `tz`) with directions d1 and d2, provider p and 40 addresses
/// whose limits never bind; example.org listed as in no group.
async fn acme(pool: &PgPool, tz: &str) {
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ('acme', '{tz}', false);
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd1'), ('acme', 'd2');
             INSERT INTO postrunner.recipient_domains (domain) VALUES ('example.org');"
        ),
    )
    .await;
    provider(pool, "p", 100).await;
    addresses(pool, "acme", "p", 40, 100_000_000).await;
}

/// `n` messages of acme/`direction` to distinct recipients at `domain`.
async fn messages_to(pool: &PgPool, direction: &str, domain: &str, n: i32) {
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
             SELECT 'acme', '{direction}', '{direction}-' || i || '@{domain}', 'Hello', 'Hi'
               FROM generate_series(1, {n}) AS i"
        ),
    )
    .await;
}

/// Reservations that count, per recipient domain.
async fn sent_to(pool: &PgPool, domain: &str) -> i64 {
    count(
        pool,
        &format!(
            "SELECT count(*) FROM postrunner.send_attempts a JOIN postrunner.outbox o ON o.id = a.message_id
              WHERE postrunner.counts_as_sent(a.outcome) AND o.to_address LIKE '%@{domain}'"
        ),
    )
    .await
}

/// report_blocked for acme's lanes of `group`: (waiting_for, until, detail) of the first.
async fn group_gate(pool: &PgPool, group: &str) -> (Option<String>, Option<DateTime<Utc>>, Option<String>) {
    sqlx::query_as(
        "SELECT waiting_for, until, detail FROM postrunner.report_blocked
          WHERE client = 'acme' AND mailbox_group = $1 ORDER BY direction LIMIT 1",
    )
    .bind(group)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Acme with a Google limit of 4 an hour, and two Gmail messages sent at 11:00:05: a
/// later claim may find the counter in 11:00. Returns the worker.
async fn google_four_an_hour_two_sent_at_eleven(pool: &PgPool) -> postrunner_queue::executor::Executor {
    acme(pool, "UTC").await;
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour) VALUES ('acme', 'google', 4)",
    )
    .await;
    messages_to(pool, "d1", "gmail.com", 2).await;
    let worker = executor(pool, registry(pool), fast_config());
    assert_eq!(drain_at(&worker, at("2027-01-04T11:00:05Z")).await, 2);
    worker
}

#[tokio::test]
async fn a_clients_google_limits_hold_per_hour_and_day_across_directions_and_workers() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme(pool, "UTC").await;
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour, per_day) VALUES ('acme', 'google', 5, 8)",
    )
    .await;
    messages_to(pool, "d1", "gmail.com", 10).await;
    messages_to(pool, "d2", "googlemail.com", 10).await;
    messages_to(pool, "d1", "outlook.com", 6).await;
    messages_to(pool, "d2", "example.org", 6).await;
    let workers: Vec<_> = (0..4).map(|_| executor(pool, registry(pool), fast_config())).collect();

    // 10:00: five to Google in all (both directions, both domains); the rest flows.
    drain_all_at(&workers, at("2027-01-04T10:00:00Z")).await;
    assert_eq!(
        sent_to(pool, "gmail.com").await + sent_to(pool, "googlemail.com").await,
        5
    );
    assert_eq!(sent_to(pool, "outlook.com").await, 6);
    assert_eq!(sent_to(pool, "example.org").await, 6);
    let (why, until, detail) = group_gate(pool, "google").await;
    assert_eq!(why.as_deref(), Some("mailbox_group"));
    assert_eq!(until, Some(at("2027-01-04T11:00:00Z")));
    assert!(detail.unwrap().contains("google: 5 an hour used"));

    assert_eq!(drain_all_at(&workers, at("2027-01-04T10:59:59Z")).await, 0);
    // 11:00: a new hour, but only 3 left of the day's 8.
    assert_eq!(drain_all_at(&workers, at("2027-01-04T11:00:00Z")).await, 3);
    let (why, until, _) = group_gate(pool, "google").await;
    assert_eq!(
        (why.as_deref(), until),
        (Some("mailbox_group"), Some(at("2027-01-05T00:00:00Z")))
    );
    assert_eq!(drain_all_at(&workers, at("2027-01-04T15:00:00Z")).await, 0);
    assert_eq!(drain_all_at(&workers, at("2027-01-05T00:00:00Z")).await, 5);
    assert_eq!(
        sent_to(pool, "gmail.com").await + sent_to(pool, "googlemail.com").await,
        13
    );
    let ledger = count(
        pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE mailbox_group = 'google'",
    )
    .await;
    assert_eq!(ledger, 13, "the ledger names the group");
}

#[tokio::test]
async fn a_claim_that_commits_after_a_later_hours_claim_counts_in_that_hour() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let worker = google_four_an_hour_two_sent_at_eleven(pool).await;
    // A claim that began at 10:59:59 reaches the counter only now, with more messages
    // waiting: it may take what 11:00 has left (2), and counts them in 11:00, never
    // resetting the counter to 10:00 (which would give 11:00 four more).
    messages_to(pool, "d2", "gmail.com", 10).await;
    assert_eq!(drain_at(&worker, at("2027-01-04T10:59:59Z")).await, 2);
    let counter: (String, i32) = sqlx::query_as("SELECT hour::text, sent_in_hour FROM postrunner.mailbox_group_usage")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        counter,
        ("2027-01-04 11:00:00".to_owned(), 4),
        "the counter never moved back"
    );
    exec(
        pool,
        "UPDATE postrunner.lanes SET ready_at = '-infinity', queue_at = least(queue_at, now())",
    )
    .await;
    assert_eq!(drain_at(&worker, at("2027-01-04T11:30:00Z")).await, 0);
    assert_eq!(drain_at(&worker, at("2027-01-04T12:00:00Z")).await, 4);
}

#[tokio::test]
async fn capacity_given_back_returns_to_the_group() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme(pool, "UTC").await;
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour) VALUES ('acme', 'google', 2)",
    )
    .await;
    messages_to(pool, "d1", "gmail.com", 3).await;
    // Claimed but never started (a stopping worker's prefetch): released.
    let jobs: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM postrunner.claim_messages(2, gen_random_uuid(), gen_random_uuid(), '1 minute',
                                                 '2027-01-04T10:00:00Z', false)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(jobs.len(), 2);
    let tokens: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT lease_token FROM postrunner.jobs WHERE id = ANY($1) ORDER BY array_position($1, id)",
    )
    .bind(&jobs)
    .fetch_all(pool)
    .await
    .unwrap();
    sqlx::query("SELECT postrunner.release_jobs($1, $2, $3)")
        .bind(&jobs)
        .bind(&tokens)
        .bind(vec![false; jobs.len()])
        .execute(pool)
        .await
        .unwrap();
    let used = count(pool, "SELECT sent_in_hour::bigint FROM postrunner.mailbox_group_usage").await;
    assert_eq!(used, 0, "the releases gave the hour back");
    let worker = executor(pool, registry(pool), fast_config());
    assert_eq!(drain_at(&worker, at("2027-01-04T10:00:30Z")).await, 2);
}

#[tokio::test]
async fn a_domain_on_google_workspace_is_found_by_its_mx_and_counts_as_google() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme(pool, "UTC").await;
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour) VALUES ('acme', 'google', 2)",
    )
    .await;
    let dns = Dnsmasq::start(
        &[],
        &[("corp.test", "aspmx.l.google.com"), ("small.test", "mail.small.test")],
    )
    .await;
    messages_to(pool, "d1", "gmail.com", 1).await;
    messages_to(pool, "d1", "corp.test", 3).await;
    messages_to(pool, "d2", "small.test", 2).await;
    let worker = executor(pool, registry(pool), fast_config());

    // Before the lookup: gmail.com goes; the unknown domains wait for it.
    assert_eq!(drain_at(&worker, at("2027-01-04T10:00:00Z")).await, 1);
    let (why, _, _) = group_gate(pool, "?").await;
    assert_eq!(why.as_deref(), Some("mailbox_lookup"));
    let pending = count(
        pool,
        "SELECT count(*) FROM postrunner.recipient_domains WHERE source = 'pending'",
    )
    .await;
    assert_eq!(pending, 2);

    let resolver = postrunner::compliance::domains::resolver(Some(dns.address)).unwrap();
    let done = postrunner::compliance::recipient_domains::classify_pending(pool, &resolver)
        .await
        .unwrap();
    assert_eq!((done.looked_up, done.failed, done.moved), (2, 0, 5));
    let groups: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT domain, mailbox_group FROM postrunner.recipient_domains WHERE source = 'mx' ORDER BY domain",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        groups,
        [
            ("corp.test".to_owned(), Some("google".to_owned())),
            ("small.test".to_owned(), None)
        ]
    );
    // corp.test shares gmail.com's hour: one more of its three; small.test flows.
    assert_eq!(drain_at(&worker, at("2027-01-04T10:00:10Z")).await, 3);
    assert_eq!(
        (sent_to(pool, "corp.test").await, sent_to(pool, "small.test").await),
        (1, 2)
    );
    assert_eq!(drain_at(&worker, at("2027-01-04T11:00:00Z")).await, 2);
}

#[tokio::test]
async fn a_limit_set_mid_day_counts_what_was_sent_and_holds_the_waiting_messages() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme(pool, "UTC").await;
    messages_to(pool, "d1", "gmail.com", 3).await;
    let worker = executor(pool, registry(pool), fast_config());
    // Real time here: the limit's counter starts from today's ledger.
    assert_eq!(drain_at(&worker, chrono::Utc::now()).await, 3);
    messages_to(pool, "d2", "gmail.com", 5).await;
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_day) VALUES ('acme', 'google', 4)",
    )
    .await;
    let used = count(pool, "SELECT sent_on_day::bigint FROM postrunner.mailbox_group_usage").await;
    assert_eq!(used, 3, "what was sent today before the limit counts");
    assert_eq!(drain_at(&worker, chrono::Utc::now()).await, 1);
    assert_eq!(sent_to(pool, "gmail.com").await, 4);
}

/// A POSIX time zone whose clock hour turns `secs` seconds from now: the client's
/// hours are its own, so the test crosses a real hour boundary without waiting for one.
fn zone_turning_in(secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let into_hour = now.rem_euclid(3600);
    // local = utc + offset, and local's second of the hour = 3600 - secs.
    let offset = (3600 - secs - into_hour).rem_euclid(3600);
    // POSIX signs are inverted: "XYZ-00:10:00" is ten minutes east of UTC.
    format!("XYZ-00:{:02}:{:02}", offset / 60, offset % 60)
}

/// Eight `postrunner worker` processes, one client limited to 12 messages an hour to
/// Google, in real time across a real hour boundary of the client's clock: no hour of
/// the ledger holds more than 12, both hours hold exactly 12, and other mail flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy (8 worker processes for about a minute): bin/test runs it after the rest, alone"]
async fn eight_workers_hold_a_mailbox_group_limit_across_a_real_hour_boundary() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let zone = zone_turning_in(25);
    acme(pool, &zone).await;
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour) VALUES ('acme', 'google', 12)",
    )
    .await;
    messages_to(pool, "d1", "gmail.com", 40).await;
    messages_to(pool, "d2", "gmail.com", 40).await;
    messages_to(pool, "d1", "outlook.com", 30).await;
    let workers: Vec<Process> = (0..8)
        .map(|_| Process::spawn(&db.url, &["worker", "--concurrency", "4", "--prefetch", "8"]))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while sent_to(pool, "gmail.com").await < 24 || sent_to(pool, "outlook.com").await < 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "gmail {} outlook {} after 90 s",
            sent_to(pool, "gmail.com").await,
            sent_to(pool, "outlook.com").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A little longer: nothing more may go in the second hour.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    drop(workers);

    let per_hour: Vec<(String, i64)> = sqlx::query_as(
        "SELECT to_char(date_trunc('hour', a.reserved_at AT TIME ZONE c.time_zone), 'HH24:MI'), count(*)
           FROM postrunner.send_attempts a JOIN postrunner.clients c ON c.name = a.client
          WHERE postrunner.counts_as_sent(a.outcome) AND a.mailbox_group = 'google'
          GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(per_hour.len(), 2, "two hours of the client's clock: {per_hour:?}");
    assert!(
        per_hour.iter().all(|(_, n)| *n == 12),
        "exactly 12 in each hour: {per_hour:?}"
    );
    assert_eq!(sent_to(pool, "gmail.com").await, 24);
    crate::support::assert_promises_hold(&db.pool).await;
}

/// Issue 18, 4.2: a claim that began at 10:59:59 and reaches the group's counter after
/// an 11:00 claim counts in 11:00 (its instant is 11:00 too); when that reservation is
/// released (the provider surely did not take it), its capacity goes back to 11:00.
#[tokio::test]
async fn a_release_gives_back_to_the_later_hour_its_claim_was_counted_in() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    google_four_an_hour_two_sent_at_eleven(pool).await;
    messages_to(pool, "d2", "gmail.com", 1).await;
    // Claimed "at 10:59:59", never started (a stopping worker's prefetch): released.
    let claimed: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM postrunner.claim_messages(1, gen_random_uuid(), gen_random_uuid(), '1 minute',
                                                 '2027-01-04T10:59:59Z', false)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let jobs: Vec<(i64, uuid::Uuid)> = sqlx::query_as("SELECT id, lease_token FROM postrunner.jobs WHERE id = ANY($1)")
        .bind(&claimed)
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let reserved_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT reserved_at FROM postrunner.send_attempts ORDER BY id DESC LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        reserved_at,
        at("2027-01-04T11:00:00Z"),
        "its instant is the counter's hour"
    );
    assert_eq!(
        count(pool, "SELECT sent_in_hour::bigint FROM postrunner.mailbox_group_usage").await,
        3
    );
    sqlx::query("SELECT postrunner.release_jobs($1, $2, $3)")
        .bind(jobs.iter().map(|j| j.0).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.1).collect::<Vec<_>>())
        .bind(vec![false])
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        count(pool, "SELECT sent_in_hour::bigint FROM postrunner.mailbox_group_usage").await,
        2,
        "11:00 got it back"
    );
}

/// Issue 18, 4.1: sends made before a recipient domain was known to be Google-hosted
/// (the client had no group limits then, so the domain was never looked up) count once
/// the MX lookup places it in the group: with per_day = 5, five such sends leave none
/// for the day, instead of five more.
#[tokio::test]
async fn a_limit_holds_for_sends_made_before_their_domain_was_known() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme(pool, "UTC").await;
    messages_to(pool, "d1", "corp.test", 5).await;
    let worker = executor(pool, registry(pool), fast_config());
    assert_eq!(drain_at(&worker, chrono::Utc::now()).await, 5);
    exec(
        pool,
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_day) VALUES ('acme', 'google', 5)",
    )
    .await;
    assert_eq!(
        count(pool, "SELECT sent_on_day::bigint FROM postrunner.mailbox_group_usage").await,
        0,
        "corp.test is not known to be Google's yet"
    );
    messages_to(pool, "d2", "corp.test", 5).await;
    // The lookup (as system.classify_recipient_domains records it): Google Workspace.
    let moved: i64 = sqlx::query_scalar(
        "SELECT postrunner.record_recipient_domains(ARRAY['corp.test'], ARRAY['aspmx.l.google.com'], ARRAY[false])",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(moved, 5);
    assert_eq!(
        count(pool, "SELECT sent_on_day::bigint FROM postrunner.mailbox_group_usage").await,
        5,
        "today's earlier sends to it count"
    );
    assert_eq!(drain_at(&worker, chrono::Utc::now()).await, 0);
    assert_eq!(sent_to(pool, "corp.test").await, 5);
    crate::support::assert_promises_hold(pool).await;
}
