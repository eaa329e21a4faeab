//! The public SQL interface of postrunner.outbox: enqueue, validation, idempotency,
//! statuses, cancel and re-drive.

use std::sync::Arc;
use std::time::Duration;

use postrunner_queue::claim::{claim, ClaimRequest};

use crate::support::app::TestApp;
use crate::support::db::TestDb;
use crate::support::gated::Gate;
use crate::support::logins::Login;
use crate::support::run::{executor, fast_config, spawn};
use crate::support::{eventually, factory, wait_for_count};

/// Runs an INSERT into the outbox with the given column list and values; returns the
/// database error message, or None when it was accepted.
async fn insert_error(db: &TestDb, columns: &str, values: &str) -> Option<String> {
    let sql = format!("INSERT INTO postrunner.outbox ({columns}) VALUES ({values})");
    match sqlx::query(&sql).execute(&db.pool).await {
        Ok(_) => None,
        Err(e) => Some(e.as_database_error().expect("a database error").message().to_owned()),
    }
}

#[tokio::test]
async fn every_class_of_bad_insert_is_refused_with_a_clear_message() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let base = "client, direction, to_address, subject, text_body";
    let cases: &[(&str, &str, &str)] = &[
        (
            base,
            "'nope', 'q1', 'a@example.org', 'Hi', 'x'",
            "unknown client 'nope'",
        ),
        (
            base,
            "'acme', 'q9', 'a@example.org', 'Hi', 'x'",
            "unknown direction 'q9' for client 'acme'",
        ),
        (
            base,
            "'acme', 'q1', 'not-an-address', 'Hi', 'x'",
            "to_address 'not-an-address' is not a valid email address",
        ),
        (
            base,
            "'acme', 'q1', 'a@example', 'Hi', 'x'",
            "is not a valid email address",
        ),
        (
            base,
            "'acme', 'q1', 'a@example.org', '  ', 'x'",
            "subject must not be empty",
        ),
        (
            base,
            "'acme', 'q1', 'a@example.org', E'Hi\\r\\nBcc: x@evil.test', 'x'",
            "subject must be a single line",
        ),
        (
            base,
            "'acme', 'q1', 'a@example.org', 'Hi', ''",
            "a message needs a text_body or an html_body",
        ),
        (
            "client, direction, to_address, subject",
            "'acme', 'q1', 'a@example.org', 'Hi'",
            "a message needs a text_body or an html_body",
        ),
        (
            "client, direction, to_address, subject, text_body",
            "'acme', 'q1', 'a@example.org', 'Hi', repeat('x', 1048577)",
            "body is 1048577 bytes, over the limit of 1048576 bytes",
        ),
        (
            "client, direction, to_address, subject, text_body, headers",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '[1, 2]'",
            "headers must be a JSON object",
        ),
        (
            "client, direction, to_address, subject, text_body, headers",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"From\": \"ceo@acme.test\"}'",
            "header 'From' is set by postrunner",
        ),
        (
            "client, direction, to_address, subject, text_body, headers",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"message-id\": \"<x@y>\"}'",
            "header 'message-id' is set by postrunner",
        ),
        (
            "client, direction, to_address, subject, text_body, headers",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-Tag\": 5}'",
            "header 'X-Tag' must have a text value",
        ),
        (
            "client, direction, to_address, subject, text_body, headers",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-Tag\": \"a\\r\\nBcc: x@evil.test\"}'",
            "header 'X-Tag' must be a single line",
        ),
        (
            "client, direction, to_address, subject, text_body, headers",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"Bad Name\": \"v\"}'",
            "header name 'Bad Name' is not a valid header field name",
        ),
        (
            "client, direction, to_address, subject, text_body, metadata",
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '\"text\"'",
            "metadata must be a JSON object",
        ),
    ];
    for (columns, values, expected) in cases {
        let error = insert_error(db, columns, values)
            .await
            .unwrap_or_else(|| panic!("accepted: {values}"));
        assert!(
            error.contains(expected),
            "for ({values}) expected {expected:?}, got {error:?}"
        );
        assert!(error.starts_with("postrunner.outbox: "), "{error}");
    }
    let (messages, jobs): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM postrunner.outbox), (SELECT count(*) FROM postrunner.jobs)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((messages, jobs), (0, 0), "nothing was enqueued");

    // Good input with allowed extras is accepted.
    assert_eq!(
        insert_error(db, "client, direction, to_address, subject, html_body, headers, metadata",
            "'acme', 'q1', 'A.Person+tag@Example.org', 'Hi', '<p>x</p>', '{\"Reply-To\": \"owner@acme.test\"}', '{\"lead\": 7}'").await,
        None
    );
}

#[tokio::test]
async fn the_body_limit_is_an_operator_setting_not_a_session_one() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    sqlx::query("UPDATE postrunner.settings SET value = '10' WHERE name = 'max_body_bytes'")
        .execute(&db.pool)
        .await
        .unwrap();
    let insert = "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
                  VALUES ('acme', 'q1', 'a@example.org', 'Hi', 'eleven char')";

    let error = sqlx::query(insert).execute(&db.pool).await.unwrap_err();
    assert!(error.to_string().contains("over the limit of 10 bytes"), "{error}");

    // A session cannot raise it for itself.
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query("SET postrunner.max_body_bytes = '100000'")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(sqlx::query(insert).execute(&mut *conn).await.is_err());
}

#[tokio::test]
async fn a_repeated_idempotency_key_creates_no_second_message() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let insert = "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key)
                  VALUES ('acme', 'q1', 'jane@example.org', 'Hi', 'x', 'lead-42') ON CONFLICT DO NOTHING RETURNING id";

    let first: Option<uuid::Uuid> = sqlx::query_scalar(insert).fetch_optional(&db.pool).await.unwrap();
    let second: Option<uuid::Uuid> = sqlx::query_scalar(insert).fetch_optional(&db.pool).await.unwrap();

    assert!(first.is_some());
    assert_eq!(second, None);
    assert_eq!(factory::job_count(&db.pool).await, 1, "one job for one message");
    // Without ON CONFLICT the duplicate is an error naming the constraint.
    let err = sqlx::query(&insert.replace(" ON CONFLICT DO NOTHING", ""))
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outbox_idempotency"), "{err}");
}

#[tokio::test]
async fn an_inserted_message_is_sent_and_its_status_readable() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;
    assert_eq!(factory::status(&db.pool, id).await, "queued");

    postrunner.executor().drain(None).await.unwrap();

    let (status, attempts, provider, provider_message_id, sent): (String, i32, Option<String>, Option<String>, bool) = sqlx::query_as(
        "SELECT status::text, attempts, provider, provider_message_id, sent_at IS NOT NULL FROM postrunner.outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), attempts, provider.as_deref(), sent),
        ("sent", 1, Some("log"), true)
    );
    assert!(provider_message_id.unwrap().starts_with("log-"));
    assert_eq!(factory::job_count(&db.pool).await, 0);
}

#[tokio::test]
async fn a_claimed_message_reads_as_sending() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;
    let request = postrunner_queue::claim::ClaimRequest {
        worker: uuid::Uuid::new_v4(),
        limit: 1,
        lease: std::time::Duration::from_secs(30),
        now: None,
        after: None,
        signs_unsubscribe: false,
    };
    postrunner_queue::claim::claim(&db.pool, request).await.unwrap();
    assert_eq!(factory::status(&db.pool, id).await, "sending");
}

#[tokio::test]
async fn a_queued_message_is_cancelled_with_an_update_and_never_sent() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let keep = factory::message(&db.pool, "acme", "q1", "keep@example.org").await;
    let drop = factory::message(&db.pool, "acme", "q1", "drop@example.org").await;

    let cancelled = sqlx::query(
        "UPDATE postrunner.outbox SET status = 'cancelled' WHERE id = $1 AND status IN ('queued', 'retrying')",
    )
    .bind(drop)
    .execute(&db.pool)
    .await
    .unwrap()
    .rows_affected();
    postrunner.executor().drain(None).await.unwrap();

    assert_eq!(cancelled, 1);
    assert_eq!(factory::status(&db.pool, drop).await, "cancelled");
    assert_eq!(factory::status(&db.pool, keep).await, "sent");
    let job_state: String = sqlx::query_scalar(
        "SELECT j.state::text FROM postrunner.jobs j JOIN postrunner.outbox o ON o.job_id = j.id WHERE o.id = $1",
    )
    .bind(drop)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(job_state, "cancelled");
}

#[tokio::test]
async fn applications_cannot_write_other_statuses_or_cancel_sent_messages() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let app = Login::create(db, "postrunner_app", &[Some("acme")]).await;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;

    let err = app
        .run(&format!(
            "UPDATE postrunner.outbox SET status = 'sent' WHERE id = '{id}'"
        ))
        .await
        .unwrap_err();
    assert!(err.contains("status is managed by postrunner"), "{err}");

    postrunner.executor().drain(None).await.unwrap();
    let err = app
        .run(&format!(
            "UPDATE postrunner.outbox SET status = 'cancelled' WHERE id = '{id}'"
        ))
        .await
        .unwrap_err();
    assert!(err.contains("is sent and can no longer be cancelled"), "{err}");
    assert_eq!(factory::status(&db.pool, id).await, "sent");
    app.remove(db).await;
}

#[tokio::test]
async fn a_message_being_sent_cannot_be_cancelled() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;
    // A worker holds the job's row lock (mid-claim); the outbox still says queued.
    let mut worker_tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM postrunner.jobs FOR UPDATE")
        .execute(&mut *worker_tx)
        .await
        .unwrap();

    let err = sqlx::query(
        "UPDATE postrunner.outbox SET status = 'cancelled' WHERE id = $1 AND status IN ('queued', 'retrying')",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap_err();

    assert!(
        err.to_string().contains("is being sent and can no longer be cancelled"),
        "{err}"
    );
    worker_tx.rollback().await.unwrap();
    assert_eq!(factory::status(&db.pool, id).await, "queued");
}

#[tokio::test]
async fn retries_show_on_the_message_and_a_failed_message_can_be_redriven() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;
    // Fail the carrying job as the queue would after a transient provider error.
    let exec = executor(
        &db.pool,
        crate::support::run::only("email.send", AlwaysTransient),
        fast_config(),
    );
    exec.drain(None).await.unwrap();

    let (status, attempts, last_error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT status::text, attempts, last_error FROM postrunner.outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("retrying", 1));
    assert_eq!(last_error.as_deref(), Some("provider unavailable"));

    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded' WHERE kind = 'email.send'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(factory::status(&db.pool, id).await, "failed");

    let was: String = sqlx::query_scalar("SELECT postrunner.retry_message($1)::text")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(was, "failed");
    postrunner.executor().drain(None).await.unwrap();
    assert_eq!(factory::status(&db.pool, id).await, "sent");
}

struct AlwaysTransient;

#[async_trait::async_trait]
impl postrunner_queue::handler::Handler for AlwaysTransient {
    async fn run(
        &self,
        _: &postrunner_queue::ClaimedJob,
    ) -> Result<Option<serde_json::Value>, postrunner_queue::handler::JobError> {
        Err(postrunner_queue::handler::JobError::Retry(
            "provider unavailable".into(),
        ))
    }
}

#[tokio::test]
async fn a_message_with_send_after_waits() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, send_after)
         VALUES ('acme', 'q1', 'jane@example.org', 'Hi', 'x', now() + interval '1 hour') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await.unwrap();
    let exec = postrunner.executor();

    assert_eq!(exec.drain(Some(now + chrono::Duration::minutes(59))).await.unwrap(), 0);
    assert_eq!(factory::status(&db.pool, id).await, "queued");
    assert_eq!(exec.drain(Some(now + chrono::Duration::minutes(61))).await.unwrap(), 1);
    assert_eq!(factory::status(&db.pool, id).await, "sent");
}

#[tokio::test]
async fn one_insert_statement_sends_one_notification() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    let channel = postrunner_queue::wake::channel(&db.pool).await.unwrap();
    listener.listen(&channel).await.unwrap();

    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'acme', 'q1', 'p' || i || '@example.org', 'Hi', 'x' FROM generate_series(1, 500) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let mut received = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await {
        received += 1;
    }
    assert_eq!(received, 1, "500 rows, one statement, one NOTIFY");
}

#[tokio::test]
async fn a_claim_skips_a_message_an_application_holds_instead_of_waiting() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let held = factory::message(&db.pool, "acme", "q1", "held@example.org").await;
    let free = factory::message(&db.pool, "acme", "q1", "free@example.org").await;
    let mut app = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM postrunner.outbox WHERE id = $1 FOR UPDATE")
        .bind(held)
        .execute(&mut *app)
        .await
        .unwrap();

    let sent = tokio::time::timeout(std::time::Duration::from_secs(5), postrunner.executor().drain(None))
        .await
        .expect("the claim does not wait for the application's lock")
        .unwrap();

    assert_eq!(sent, 1);
    assert_eq!(factory::status(&db.pool, free).await, "sent");
    app.rollback().await.unwrap();
    assert_eq!(factory::status(&db.pool, held).await, "queued");
    postrunner.executor().drain(None).await.unwrap();
    assert_eq!(
        factory::status(&db.pool, held).await,
        "sent",
        "sent once the application let go"
    );
}

#[tokio::test]
async fn a_cancel_from_an_application_trigger_cancels_the_job() {
    // Applications may cancel from their own triggers (a campaign is stopped): the
    // message and its job are both cancelled and nothing is sent.
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;
    sqlx::raw_sql(
        "CREATE TABLE campaigns (name text PRIMARY KEY, stopped boolean NOT NULL DEFAULT false);
         CREATE FUNCTION stop_campaign() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             UPDATE postrunner.outbox SET status = 'cancelled'
              WHERE direction = NEW.name AND status IN ('queued', 'retrying');
             RETURN NULL;
         END $$;
         CREATE TRIGGER stop_campaign AFTER UPDATE ON campaigns FOR EACH ROW EXECUTE FUNCTION stop_campaign();
         INSERT INTO campaigns (name) VALUES ('q1');",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    sqlx::query("UPDATE campaigns SET stopped = true")
        .execute(&db.pool)
        .await
        .unwrap();
    let ran = postrunner.executor().drain(None).await.unwrap();

    assert_eq!(ran, 0);
    assert_eq!(factory::status(&db.pool, id).await, "cancelled");
}

#[tokio::test]
async fn a_failed_message_whose_job_was_cleaned_up_can_be_redriven() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let id = factory::message(&db.pool, "acme", "q1", "jane@example.org").await;
    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded', finalized_at = now() - interval '60 days'")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM postrunner.jobs")
        .execute(&db.pool)
        .await
        .unwrap(); // what cleanup does
    assert_eq!(factory::status(&db.pool, id).await, "failed");

    sqlx::query("SELECT postrunner.retry_message($1)")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(factory::status(&db.pool, id).await, "queued");
    postrunner.executor().drain(None).await.unwrap();
    assert_eq!(factory::status(&db.pool, id).await, "sent");
}

#[tokio::test]
async fn the_gaps_a_review_found_in_insert_validation_are_refused_by_the_insert() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    let with = |extra: &str| format!("client, direction, to_address, subject, text_body{extra}");
    let many_headers = format!(
        "'{{{}}}'",
        (0..60)
            .map(|i| format!("\"X-H{i}\": \"v\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let long_header = format!("'{{\"X-Long\": \"{}\"}}'", "v".repeat(10_000));
    let cases: Vec<(String, String, &str)> = vec![
        (
            with(""),
            "'acme', 'q1', 'a@example.org', E'\\t \\n', 'x'".into(),
            "subject must not be empty",
        ),
        (
            with(""),
            "'acme', 'q1', 'a@example.org', 'Hi', E' \\t\\r\\n '".into(),
            "a message needs a text_body or an html_body",
        ),
        (
            with(""),
            "'acme', 'q1', 'a@example.org', E'Hi \\x1b[31m', 'x'".into(),
            "subject must not contain control characters",
        ),
        (
            with(""),
            "'acme', 'q1', 'a@example.org', E'Hi\\x0b', 'x'".into(),
            "subject must not contain control characters",
        ),
        (
            with(""),
            "'acme', 'q1', 'a..b@example.org', 'Hi', 'x'".into(),
            "is not a valid email address",
        ),
        (
            with(""),
            "'acme', 'q1', '.a@example.org', 'Hi', 'x'".into(),
            "is not a valid email address",
        ),
        (
            with(""),
            "'acme', 'q1', E'a\\x01b@example.org', 'Hi', 'x'".into(),
            "is not a valid email address",
        ),
        (
            with(", headers"),
            format!("'acme', 'q1', 'a@example.org', 'Hi', 'x', {many_headers}"),
            "headers: 60 of them, more than max_headers (50)",
        ),
        (
            with(", headers"),
            format!("'acme', 'q1', 'a@example.org', 'Hi', 'x', {long_header}"),
            "header 'X-Long' is 10000 bytes, over max_header_bytes (998)",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-Tag\": \"a\", \"x-tag\": \"b\"}'".into(),
            "header 'x-tag' is given twice",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-Tag\": \"a\\u0007\"}'".into(),
            "header 'X-Tag' must not contain control characters",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-SMTPAPI\": \"{}\"}'".into(),
            "header 'X-SMTPAPI' is set by postrunner",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-SES-CONFIGURATION-SET\": \"c\"}'".into(),
            "header 'X-SES-CONFIGURATION-SET' is set by postrunner",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"X-Mailgun-Variables\": \"{}\"}'".into(),
            "header 'X-Mailgun-Variables' is set by postrunner",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"DKIM-Signature\": \"v=1\"}'".into(),
            "header 'DKIM-Signature' is set by postrunner",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"Received\": \"from x\"}'".into(),
            "header 'Received' is set by postrunner",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"Resent-From\": \"x@y.test\"}'".into(),
            "header 'Resent-From' is set by postrunner",
        ),
        (
            with(", headers"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"Return-Path\": \"<x@y.test>\"}'".into(),
            "header 'Return-Path' is set by postrunner",
        ),
        (
            with(", metadata"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', jsonb_build_object('blob', repeat('x', 20000))".into(),
            "metadata is 20012 bytes, over max_metadata_bytes (16384)",
        ),
        (
            with(", send_after"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', '-infinity'".into(),
            "send_after must be a finite time",
        ),
        (
            with(", send_after"),
            "'acme', 'q1', 'a@example.org', 'Hi', 'x', 'infinity'".into(),
            "send_after must be a finite time",
        ),
    ];
    for (columns, values, expected) in &cases {
        let error = insert_error(db, columns, values)
            .await
            .unwrap_or_else(|| panic!("accepted: {}", &values[..values.len().min(200)]));
        assert!(error.contains(expected), "expected {expected:?}, got {error:?}");
        assert!(error.starts_with("postrunner.outbox: "), "{error}");
    }
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(messages, 0, "nothing was enqueued");
}

#[tokio::test]
async fn a_claim_carries_only_what_a_send_needs() {
    let postrunner = TestApp::with_client("acme", "q1").await;
    let db = &postrunner.db;
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, metadata)
         VALUES ('acme', 'q1', 'a@example.org', 'Hi', 'x', '{\"lead\": 7}')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let request = ClaimRequest::new(uuid::Uuid::new_v4(), 10, std::time::Duration::from_secs(30));
    let jobs = claim(&db.pool, request).await.unwrap();
    let message = &jobs[0].args["message"];
    assert!(
        message.get("metadata").is_none(),
        "metadata stays in the outbox: {message}"
    );
    assert_eq!(message["to"], "a@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_goes_around_a_message_an_application_holds_instead_of_waiting() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::client(pool, "acme", "q1").await;
    let ids = [
        factory::message(pool, "acme", "q1", "one@example.org").await,
        factory::message(pool, "acme", "q1", "held@example.org").await,
        factory::message(pool, "acme", "q1", "three@example.org").await,
    ];
    let gate = Gate::closed();
    let registry = postrunner::kinds::registry(pool.clone(), Arc::new(gate.directory(pool)));
    let worker = spawn(pool, registry, fast_config());
    wait_for_count(
        pool,
        "SELECT count(*) FROM postrunner.outbox WHERE status = 'sending'",
        3,
        Duration::from_secs(20),
    )
    .await;

    // The application holds the second message's row while the sends complete.
    let mut app = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM postrunner.outbox WHERE id = $1 FOR UPDATE")
        .bind(ids[1])
        .execute(&mut *app)
        .await
        .unwrap();
    gate.open();
    let others = "SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'";
    wait_for_count(pool, others, 2, Duration::from_secs(5)).await;
    // The worker keeps working meanwhile.
    let later = factory::message(pool, "acme", "q1", "later@example.org").await;
    eventually(Duration::from_secs(5), "a later message is sent", || async {
        factory::status(pool, later).await == "sent"
    })
    .await;
    assert_eq!(factory::status(pool, ids[1]).await, "sending");

    app.commit().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the held message is recorded once let go",
        || async { factory::status(pool, ids[1]).await == "sent" },
    )
    .await;
    worker.stop().await;
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.send_attempts")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(attempts, 4, "each message sent once");
}
