//! Recipient addresses never reach the logs or the tables' error texts, even when a
//! provider's reply quotes them (issue 8: SMTP and HTTP providers' texts were stored in
//! `last_error` and logged as they came).

use std::time::Duration;

use crate::support::db::count;
use crate::support::db::TestDb;
use crate::support::fake_provider::{FakeProvider, Fault, Kind};
use crate::support::routing::acme_on_sendgrid;
use crate::support::run::Process;
use crate::support::wait_for_count;

const KEY: &str = "redaction-key";

async fn enqueue(pool: &sqlx::PgPool, to: &str) {
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body) VALUES ('acme', 'd', $1, 'Hi', 'x')",
    )
    .bind(to)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_reply_quoting_the_recipient_is_stored_and_logged_without_it() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let simulator = FakeProvider::start(Kind::SendGrid, KEY).await;
    let variable = acme_on_sendgrid(pool, &simulator.url).await;
    // Jane's send is refused with her address in the reply; then Joe's first try meets a
    // 503 that quotes his, and goes through. One message at a time, so that each reply
    // reaches the send it quotes.
    simulator.fail_next([Fault::Reply(
        400,
        r#"{"errors":[{"message":"Does not contain a valid address: jane.doe@example.org","field":"personalizations.0.to.0.email"}]}"#.into(),
        vec![],
    )]);
    enqueue(pool, "Jane.Doe@Example.org").await;
    let worker = Process::spawn_with_env(&db.url, &["worker"], &[(variable.as_str(), KEY)]);
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status = 'failed'",
        1,
        Duration::from_secs(30),
    )
    .await;
    simulator.fail_next([Fault::Reply(
        503,
        "backend busy delivering to <joe@example.net>, try later".into(),
        vec![],
    )]);
    enqueue(pool, "joe@example.net").await;
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'",
        1,
        Duration::from_secs(30),
    )
    .await;
    worker.signal("TERM");
    let mut worker = worker;
    let _ = worker.child.wait().await;

    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(last_error, '') FROM postrunner.outbox
         UNION ALL SELECT coalesce(error, '') FROM postrunner.send_attempts
         UNION ALL SELECT coalesce(last_error, '') FROM postrunner.provider_health
         UNION ALL SELECT coalesce(reason, '') FROM postrunner.provider_health_history
         UNION ALL SELECT errors::text FROM postrunner.jobs",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let logs = worker.logs();
    for (place, text) in texts
        .iter()
        .map(|t| ("a table", t.as_str()))
        .chain([("the logs", logs.as_str())])
    {
        let lower = text.to_lowercase();
        assert!(
            !lower.contains("jane.doe@example.org") && !lower.contains("joe@example.net"),
            "a recipient in {place}: {text}"
        );
    }
    assert!(
        texts.iter().any(|t| t.contains("<recipient>")),
        "the provider's words are kept, the address replaced: {texts:?}"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'").await,
        1
    );
}
