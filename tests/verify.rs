//! `postrunner verify` (issue 18, part 5): each class of violation, seeded into a
//! database where every promise held, is reported with the rows involved; a duplicate
//! the uncertain path explains is listed as explained, not as a violation; and the
//! command exits 1 on a violation.

use crate::support::db::exec;
use crate::support::db::TestDb;
use crate::support::routing::drain_at;
use crate::support::run::{executor, fast_config, postrunner_output, registry};
use crate::support::{assert_promises_hold, factory};

/// Client acme on the log provider with 16 addresses, and four messages sent to
/// jane, joe, ann and bob @example.org, now.
async fn four_sent(db: &TestDb) {
    factory::client(&db.pool, "acme", "d").await;
    for to in ["jane", "joe", "ann", "bob"] {
        factory::message(&db.pool, "acme", "d", &format!("{to}@example.org")).await;
    }
    let worker = executor(&db.pool, registry(&db.pool), fast_config());
    assert_eq!(drain_at(&worker, chrono::Utc::now()).await, 4);
}

/// Jane's message's first attempt, as SQL (hers is the first message: the lowest job
/// id; found so even once her address is erased).
const JANE: &str = "(SELECT a.id FROM postrunner.send_attempts a JOIN postrunner.outbox o ON o.id = a.message_id
                     ORDER BY o.job_id, a.id LIMIT 1)";

/// Each violation class: a name, the SQL that seeds it into a database where every
/// promise held (four messages sent), and the promise verify must name.
const CASES: &[(&str, &str, &str)] = &[
    (
        "a recipient suppressed an hour before the send",
        "INSERT INTO postrunner.suppressions (client, address, reason, created_at)
         SELECT 'acme', 'jane@example.org', 'unsubscribe', reserved_at - interval '1 hour'
           FROM postrunner.send_attempts WHERE id = {JANE}",
        "suppressed_recipient_mailed",
    ),
    (
        "a person erased before the send",
        "SELECT postrunner.erase_recipient('acme', 'jane@example.org');
         UPDATE postrunner.erasures SET erased_at = now() - interval '1 day'",
        "suppressed_recipient_mailed",
    ),
    (
        "an erased address back in clear",
        "SELECT postrunner.erase_recipient('acme', 'jane@example.org');
         UPDATE postrunner.outbox SET to_address = 'Jane@example.org'
          WHERE id = (SELECT message_id FROM postrunner.send_attempts WHERE id = {JANE})",
        "erased_in_clear",
    ),
    (
        "an erased person's event keeping its payload",
        "SELECT postrunner.erase_recipient('acme', 'jane@example.org');
         INSERT INTO postrunner.events (provider, dedupe_key, kind, recipient, message_id, client, occurred_at, payload)
         SELECT 'log', 'e1', 'opened', o.to_address, o.id, 'acme', now(), '{\"email\": \"jane@example.org\"}'
           FROM postrunner.outbox o WHERE o.id = (SELECT message_id FROM postrunner.send_attempts WHERE id = {JANE})",
        "erased_in_clear",
    ),
    (
        "a message accepted twice",
        "INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address,
                                               day, reserved_at, outcome, finished_at)
         SELECT message_id, job_id, 2, client, direction, provider, from_address, day, reserved_at + interval '1 hour',
                'sent', now()
           FROM postrunner.send_attempts WHERE id = {JANE}",
        "duplicate_send",
    ),
    (
        "an address over its day",
        "UPDATE postrunner.sender_addresses SET daily_limit = 1
          WHERE address IN (SELECT from_address FROM postrunner.send_attempts);
         UPDATE postrunner.send_attempts SET from_address = (SELECT from_address FROM postrunner.send_attempts WHERE id = {JANE})",
        "address_day_limit",
    ),
    (
        "an address sending before its slot",
        "UPDATE postrunner.send_attempts SET from_address = (SELECT from_address FROM postrunner.send_attempts WHERE id = {JANE});
         UPDATE postrunner.sender_addresses SET daily_limit = 1000",
        "pacing",
    ),
    (
        "a provider over its rate",
        "UPDATE postrunner.providers SET per_minute = 1;
         UPDATE postrunner.send_attempts SET reserved_at = date_trunc('minute', reserved_at)",
        "provider_minute",
    ),
    (
        "a provider over its budget",
        "UPDATE postrunner.providers SET monthly_budget = 0.002, price_per_1000 = 1",
        "monthly_budget",
    ),
    (
        "a mailbox group over its hour",
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour) VALUES ('acme', 'google', 1);
         UPDATE postrunner.send_attempts SET mailbox_group = 'google', reserved_at = date_trunc('minute', reserved_at)",
        "mailbox_group_hour",
    ),
    (
        "a mailbox group over its day",
        "INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_day) VALUES ('acme', 'google', 2);
         UPDATE postrunner.send_attempts SET mailbox_group = 'google'",
        "mailbox_group_day",
    ),
    (
        "an uncertain attempt nobody holds",
        "UPDATE postrunner.send_attempts SET outcome = 'uncertain' WHERE id = {JANE}",
        "uncertain_unresolved",
    ),
    (
        "an email job without its message",
        "INSERT INTO postrunner.jobs (kind, lane) SELECT 'email.send', min(id) FROM postrunner.lanes",
        "job_without_message",
    ),
    (
        "a queued message without its job",
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'kim@example.org', 'Hi', 'x');
         DELETE FROM postrunner.jobs WHERE id = (SELECT job_id FROM postrunner.outbox WHERE to_address = 'kim@example.org')",
        "message_without_job",
    ),
    (
        "a status its job does not stand for",
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'kim@example.org', 'Hi', 'x');
         SET session_replication_role = replica;
         UPDATE postrunner.jobs SET state = 'discarded'
          WHERE id = (SELECT job_id FROM postrunner.outbox WHERE to_address = 'kim@example.org');
         SET session_replication_role = origin",
        "status_not_job_state",
    ),
    (
        "a status behind a delivery its provider reported",
        "INSERT INTO postrunner.events (provider, dedupe_key, kind, recipient, message_id, client, occurred_at)
         SELECT provider, 'd1', 'delivered', 'jane@example.org', message_id, client, now()
           FROM postrunner.send_attempts WHERE id = {JANE}",
        "status_behind_events",
    ),
    (
        "a lane parked with a message waiting",
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'kim@example.org', 'Hi', 'x');
         UPDATE postrunner.lanes SET queue_at = NULL;
         DELETE FROM postrunner.lane_wakeups",
        "lane_parked_with_work",
    ),
];

#[tokio::test]
async fn each_broken_promise_is_reported_with_the_rows_involved() {
    let mut seen = std::collections::BTreeSet::new();
    for (name, seed, promise) in CASES {
        let db = TestDb::new().await;
        four_sent(&db).await;
        assert_promises_hold(&db.pool).await;

        exec(&db.pool, &seed.replace("{JANE}", JANE)).await;
        let report = postrunner::verify::verify(&db.pool).await.unwrap();
        let found: Vec<_> = report.violations().filter(|f| f.promise == *promise).collect();
        assert!(!found.is_empty(), "{name}: no {promise} reported:\n{report}");
        assert!(
            found.iter().all(|f| !f.detail.is_empty() && !f.involved.is_null()),
            "{name}: {found:#?}"
        );
        // Every promise the SQL reports is one the summary counts (src/verify.rs).
        for finding in &report.findings {
            assert!(
                postrunner::verify::PROMISES.contains(&finding.promise.as_str()),
                "{} is not in PROMISES",
                finding.promise
            );
        }
        seen.insert(*promise);
    }
    // Every promise has its seeded case.
    for promise in postrunner::verify::PROMISES {
        assert!(seen.contains(promise), "no case seeds {promise}");
    }
}

#[tokio::test]
async fn a_duplicate_the_uncertain_path_explains_is_listed_but_not_a_violation() {
    let db = TestDb::new().await;
    four_sent(&db).await;
    // Jane's first attempt was uncertain, resent after its wait (duplicate_policy
    // resend), and its provider reported it delivered after all.
    exec(
        &db.pool,
        &"UPDATE postrunner.send_attempts SET outcome = 'failed', resolution = 'resent' WHERE id = {JANE};
          INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address,
                                                day, reserved_at, outcome, finished_at)
          SELECT message_id, job_id, 2, client, direction, provider, from_address, day,
                 reserved_at + interval '1 day', 'sent', now()
            FROM postrunner.send_attempts WHERE id = {JANE};
          INSERT INTO postrunner.events (provider, dedupe_key, kind, recipient, message_id, client, occurred_at)
          SELECT provider, 'd1', 'delivered', 'jane@example.org', message_id, client, now()
            FROM postrunner.send_attempts WHERE id = {JANE};
          UPDATE postrunner.outbox SET status = 'delivered'
           WHERE id = (SELECT message_id FROM postrunner.send_attempts WHERE id = {JANE})"
            .replace("{JANE}", JANE),
    )
    .await;
    let report = postrunner::verify::verify(&db.pool).await.unwrap();
    assert!(report.holds(), "{report}");
    assert_eq!(report.explained(), 1, "{report}");
    let explained = &report.findings[0];
    assert_eq!(explained.promise, "duplicate_send");
    assert!(
        explained.detail.contains("resent after its wait"),
        "{}",
        explained.detail
    );
}

#[tokio::test]
async fn the_command_exits_1_on_a_violation_and_names_it() {
    let db = TestDb::new().await;
    four_sent(&db).await;
    let clean = postrunner_output(&db.url, &["verify"], &[]).await;
    assert!(clean.contains("every promise holds"), "{clean}");

    exec(
        &db.pool,
        "UPDATE postrunner.providers SET monthly_budget = 0.002, price_per_1000 = 1",
    )
    .await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
        .arg("verify")
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("monthly_budget") && stdout.contains("VIOLATIONS"),
        "{stdout}"
    );
}

#[test]
fn every_limit_promise_is_a_promise() {
    for limit in postrunner::verify::LIMIT_PROMISES {
        assert!(
            postrunner::verify::PROMISES.contains(limit),
            "{limit} is not in PROMISES"
        );
    }
}
