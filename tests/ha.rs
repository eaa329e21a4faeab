//! PostgreSQL high availability, for real: a Patroni cluster (bin/ha-cluster), workers and a
//! scheduler through HAProxy, an application inserting all along; the leader killed, then
//! a switchover. Every INSERT the application saw committed is there afterwards, sending
//! resumes within 30 s, every message is sent once within 2 minutes, nothing is left
//! uncertain, and `verify` passes. Afterwards a reporting login reads every `report_*`
//! example of sql/reports.sql on the streaming standby.

use std::time::{Duration, Instant};

use crate::support::assert_promises_hold;
use crate::support::chaos::{until_a_send, Application};
use crate::support::db::count;
use crate::support::factory;
use crate::support::ha_cluster::HaCluster;
use crate::support::logins::Login;
use crate::support::run::Process;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy (a Patroni cluster, two failovers under load): bin/test runs it after the rest, alone"]
async fn a_failover_under_load_loses_no_insert_sends_each_message_once_and_leaves_nothing_uncertain() {
    let cluster = tokio::task::block_in_place(HaCluster::up);
    postrunner_schema::migrate::run(&cluster.url).await.unwrap();
    let pool = postrunner_schema::pool(&cluster.url, 4, "postrunner-test").unwrap();
    factory::client(&pool, "acme", "d").await;
    let workers: Vec<Process> = (0..2)
        .map(|_| Process::spawn(&cluster.url, &["worker", "--concurrency", "16"]))
        .collect();
    let scheduler = Process::spawn(&cluster.url, &["scheduler"]);

    let app = Application::start(pool.clone(), &["acme"], Duration::from_millis(6));
    tokio::time::sleep(Duration::from_secs(5)).await;

    let killed_at = Instant::now();
    let killed = tokio::task::block_in_place(|| cluster.kill_leader());
    let after_kill =
        killed_at.elapsed().as_secs_f64() + until_a_send(&pool, Duration::from_secs(60)).await.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(10)).await;

    let before = cluster.leader();
    let switched_at = Instant::now();
    tokio::task::block_in_place(|| cluster.switchover());
    let after_switchover =
        switched_at.elapsed().as_secs_f64() + until_a_send(&pool, Duration::from_secs(60)).await.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let acknowledged = app.stop().await;
    // The acknowledged messages themselves, and every other row too (an INSERT whose
    // reply was lost may have committed: it is sent like the rest).
    let deadline = Instant::now() + Duration::from_secs(120);
    let unsent = || async {
        let acknowledged_unsent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM postrunner.outbox WHERE id = ANY ($1) AND status <> 'sent'")
                .bind(&acknowledged)
                .fetch_one(&pool)
                .await
                .unwrap();
        acknowledged_unsent + count(&pool, "SELECT count(*) FROM postrunner.outbox WHERE status <> 'sent'").await
    };
    while unsent().await > 0 {
        assert!(Instant::now() < deadline, "every message sent within 2 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{} messages acknowledged; leader {killed} killed: first send after {after_kill:.1} s; \
         switchover from {before}: first send after {after_switchover:.1} s",
        acknowledged.len()
    );

    let present: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.outbox WHERE id = ANY ($1)")
        .bind(&acknowledged)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(present, acknowledged.len() as i64, "every acknowledged INSERT survived");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'uncertain'"
        )
        .await,
        0,
        "nothing left uncertain"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM (SELECT message_id FROM postrunner.send_attempts
              WHERE outcome = 'sent' GROUP BY 1 HAVING count(*) > 1) twice"
        )
        .await,
        0,
        "nothing sent twice"
    );
    assert!(
        after_kill < 30.0 && after_switchover < 30.0,
        "sending resumes within 30 s"
    );
    assert_promises_hold(&pool).await;
    reports_read_on_the_standby(&cluster, &pool).await;
    for worker in &workers {
        assert!(
            !worker.logs().contains("could not record outcomes"),
            "{}",
            worker.logs()
        );
    }
    drop((workers, scheduler));
}

/// A login of `postrunner_reader` (every client) runs each `report_*` query of
/// sql/reports.sql on the standby: the views read, never write, so dashboards can be
/// pointed at a replica.
async fn reports_read_on_the_standby(cluster: &HaCluster, primary: &sqlx::PgPool) {
    let reader = Login::create_on(primary, &cluster.standby_url(), "postrunner_reader", &[None]).await;
    // Synchronous replication: the role and its binding are on the standby once committed.
    assert_eq!(
        reader.count("SELECT pg_is_in_recovery()::int::int8").await,
        Ok(1),
        "connected to the standby"
    );
    let queries: Vec<&str> = postrunner_schema::REPORT_EXAMPLES
        .split(";\n")
        .filter(|q| q.contains("report_"))
        .collect();
    assert!(queries.len() >= 5, "sql/reports.sql has its report queries");
    for query in queries {
        reader
            .run(query)
            .await
            .unwrap_or_else(|e| panic!("on the standby: {query}: {e}"));
    }
    reader.remove_on(primary).await;
}
