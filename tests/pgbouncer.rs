//! postrunner through a real PgBouncer 1.18 in transaction mode (issue 20, section 3):
//! with two server connections per database and login for a dozen client connections,
//! consecutive transactions of one client land on different server connections, which
//! breaks named prepared statements, a prepare and its execution split over two
//! exchanges, session settings, LISTEN and session locks (`postrunner_schema::pooling`).
//! The processes run with `--pooling transaction`; the limits still hold exactly and
//! `verify` passes. The chaos suite runs through PgBouncer with `bin/chaos --pgbouncer`.

use std::time::Duration;

use postrunner_test_db::pgbouncer::PgBouncer;

use crate::support::db::{count, exec, server_url, TestDb};
use crate::support::factory::{self, messages};
use crate::support::routing::addresses;
use crate::support::run::{postrunner_output_result, Process};

/// The environment of a process behind PgBouncer: transaction pooling, and the direct
/// URL for LISTEN (`None`: it polls).
fn through(direct: Option<&str>) -> Vec<(&'static str, &str)> {
    let mut env = vec![("POSTRUNNER_POOLING", "transaction")];
    if let Some(direct) = direct {
        env.push(("DATABASE_DIRECT_URL", direct));
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_through_pgbouncer_in_transaction_mode_sends_exactly_its_limits() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let bouncer = PgBouncer::start(server_url().await, 2);
    let url = bouncer.url(&db.url);

    // migrate needs a session of its own: refused through PgBouncer alone, run with the
    // direct URL beside it.
    let refused = postrunner_output_result(&url, &["migrate"], &through(None))
        .await
        .unwrap_err();
    assert!(refused.contains("DATABASE_DIRECT_URL"), "{refused}");
    postrunner_output_result(&url, &["migrate"], &through(Some(&db.url)))
        .await
        .expect("migrate with DATABASE_DIRECT_URL");

    // A provider whose monthly budget buys 300 messages (1.00 each), at most 600 a
    // minute: 300 of the 400 messages go, the rest wait for next month.
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, per_minute, price_per_1000, monthly_budget)
         VALUES ('p', 'log', 600, 1000, 300)",
    )
    .await;
    addresses(pool, "acme", "p", 200, 100_000_000).await;
    messages(pool, "acme", "d", 400).await;

    let worker =
        |direct: Option<&str>| Process::spawn_with_env(&url, &["worker", "--concurrency", "8"], &through(direct));
    // Two workers LISTEN on the direct URL, two poll; a scheduler and a web replica.
    let processes = [
        worker(Some(&db.url)),
        worker(Some(&db.url)),
        worker(None),
        worker(None),
        Process::spawn_with_env(&url, &["scheduler"], &through(None)),
        Process::spawn_with_env(
            &url,
            &["web", "--bind", &format!("127.0.0.1:{}", crate::support::free_port())],
            &through(None),
        ),
    ];

    let sent = "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'";
    crate::support::wait_for_count(pool, sent, 300, Duration::from_secs(60)).await;
    crate::support::wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.processes WHERE role IN ('worker', 'scheduler', 'web')",
        6,
        Duration::from_secs(20),
    )
    .await;
    // Give the workers time to overshoot, if they could.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(pool, sent).await, 300, "the budget buys 300");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.send_attempts WHERE postrunner.counts_as_sent(outcome)"
        )
        .await,
        300
    );
    for process in &processes {
        let logs = process.logs();
        assert!(!logs.contains("ERROR"), "an error through PgBouncer:\n{logs}");
        assert!(!logs.contains("prepared statement"), "{logs}");
    }
    crate::support::assert_promises_hold(pool).await;
    drop(processes);
    drop(bouncer);
}
