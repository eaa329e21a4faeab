//! A failover as postrunner sees it through a proxy (HAProxy in front of Patroni):
//! connections cut, new ones accepted and closed while no primary is up, a claim that
//! commits but whose reply never arrives. Nothing that postrunner can know the outcome of
//! may be left uncertain, and nothing is sent twice.

use std::time::Duration;

use postrunner_queue::executor::ExecutorConfig;
use postrunner_test_db::proxy::{Accept, TcpProxy};

use crate::support::db::{count, TestDb};
use crate::support::factory::messages;
use crate::support::routing::{acme_on_one_provider, addresses};
use crate::support::run::{fast_config, registry, spawn};
use crate::support::{assert_promises_hold, wait_for_count};

const SENT: &str = "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'";
const UNCERTAIN: &str = "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'uncertain'";
const SENT_TWICE: &str = "SELECT count(*) FROM (SELECT message_id FROM postrunner.send_attempts
                           WHERE outcome = 'sent' GROUP BY 1 HAVING count(*) > 1) twice";

/// A proxy in front of the test's database, and a pool of postrunner's through it.
async fn behind_a_proxy(db: &TestDb) -> (TcpProxy, sqlx::PgPool) {
    let proxy = TcpProxy::in_front_of(&db.url).await;
    let pool = postrunner_schema::pool(&proxy.url(&db.url), 4, "postrunner-test").unwrap();
    (proxy, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_was_lost_gives_its_messages_back_unstarted() {
    let db = TestDb::new().await;
    acme_on_one_provider(&db.pool, 4, 1_000_000, 0).await;
    // Waiting before the worker starts, so that its first routed claim takes them.
    messages(&db.pool, "acme", "d", 5).await;
    let (proxy, pool) = behind_a_proxy(&db).await;
    // The routed claims commit; their replies are lost and the connections closed (the
    // first claim of each of the executor's two fetch loops: either may take them).
    proxy.lose_reply_to(b"claim_messages", 2);
    let worker = spawn(&pool, registry(&pool), fast_config());

    // Sent well within the uncertain wait (900 s), which is where they would otherwise be.
    wait_for_count(&db.pool, SENT, 5, Duration::from_secs(20)).await;
    worker.stop().await;
    assert!(proxy.replies_lost(), "the claims' replies were lost");
    let released = count(
        &db.pool,
        "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'released'",
    )
    .await;
    assert!(
        released >= 5,
        "the lost claims' reservations are given back: {released} of 5"
    );
    assert_eq!(count(&db.pool, UNCERTAIN).await, 0, "nothing held as uncertain");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM postrunner.outbox WHERE attempts <> 1").await,
        0,
        "the lost claim's attempt does not count"
    );
    assert_eq!(count(&db.pool, SENT_TWICE).await, 0);
    assert_promises_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_while_outcomes_are_written_leaves_nothing_uncertain_and_nothing_sent_twice() {
    let db = TestDb::new().await;
    acme_on_one_provider(&db.pool, 4, 1_000_000, 0).await;
    messages(&db.pool, "acme", "d", 20).await;
    let (proxy, pool) = behind_a_proxy(&db).await;
    // The primary goes while it writes the first completion (its transaction is lost),
    // and for 3 s no server answers: the completer must keep trying, not give up and
    // leave sends the provider took to be rescued as uncertain.
    proxy.fail_over_during(b"Complete a batch of email jobs", Duration::from_secs(3));
    // Leases longer than the outage, as in production (30 s by default).
    let config = ExecutorConfig {
        lease: Duration::from_secs(15),
        ..fast_config()
    };
    let worker = spawn(&pool, registry(&pool), config);

    wait_for_count(&db.pool, SENT, 20, Duration::from_secs(30)).await;
    worker.stop().await;
    assert!(proxy.replies_lost(), "the failover happened");
    assert_eq!(count(&db.pool, UNCERTAIN).await, 0, "nothing held as uncertain");
    assert_eq!(count(&db.pool, SENT_TWICE).await, 0, "nothing sent twice");
    assert_promises_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_through_a_failover_window_leaves_nothing_uncertain_and_nothing_sent_twice() {
    let db = TestDb::new().await;
    // 4 addresses paced at 5 sends a second each: 200 messages take about 10 s, so the
    // window below falls while sends and their completions are flowing.
    acme_on_one_provider(&db.pool, 0, 0, 0).await;
    addresses(&db.pool, "acme", "p", 4, 432_000).await;
    messages(&db.pool, "acme", "d", 200).await;
    let (proxy, pool) = behind_a_proxy(&db).await;
    // Leases longer than the window, as in production (the window is a failover's).
    let config = ExecutorConfig {
        lease: Duration::from_secs(15),
        ..fast_config()
    };
    let worker = spawn(&pool, registry(&pool), config);
    crate::support::eventually(Duration::from_secs(20), "sending has begun", || async {
        count(&db.pool, SENT).await >= 20
    })
    .await;

    // No primary for 3 s: every connection drops, new ones are accepted and closed.
    proxy.accept(Accept::Close);
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.accept(Accept::Forward);

    wait_for_count(&db.pool, SENT, 200, Duration::from_secs(60)).await;
    worker.stop().await;
    assert_eq!(count(&db.pool, UNCERTAIN).await, 0, "nothing held as uncertain");
    assert_eq!(count(&db.pool, SENT_TWICE).await, 0, "nothing sent twice");
    assert_promises_hold(&db.pool).await;
}
