//! Alert notifications (sql/definitions/430_alerts_notifications.sql, src/kinds/notify.rs): channels
//! checked by their INSERT, one notification per state change and channel however many
//! schedulers evaluate and dispatch, retries, digests, and each channel's wire format
//! (a JSON webhook, an SMTP server, Twilio's Messages API) at a real local server.

use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::receiver::Receiver;
use crate::support::run::{executor, fast_config, registry};
use crate::support::smtp_server::SmtpServer;
use crate::support::webhooks::secret_variable;

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap();
}

/// Runs the jobs due now (dispatch, then the notify jobs it enqueues).
async fn dispatch_and_send(pool: &PgPool) {
    exec(
        pool,
        "INSERT INTO postrunner.jobs (kind) VALUES ('system.dispatch_notifications')",
    )
    .await;
    executor(pool, registry(pool), fast_config()).drain(None).await.unwrap();
}

async fn webhook_channel(pool: &PgPool, name: &str, url: &str, kinds: Option<&[&str]>) {
    sqlx::query("INSERT INTO postrunner.notification_channels (name, kind, config, alert_kinds) VALUES ($1, 'webhook', jsonb_build_object('url', $2::text), $3)")
        .bind(name)
        .bind(url)
        .bind(kinds.map(|k| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()))
        .execute(pool)
        .await
        .unwrap();
}

async fn statuses(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT channel, transition, status FROM postrunner.notifications ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_channel_is_checked_by_its_insert() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind) VALUES ('smtp', 'log')",
    )
    .await;
    let refused = [
        ("a secret in the table", "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES ('s', 'sms', '+15551234567', '{\"account_sid\": \"AC1\", \"from\": \"+15557654321\", \"auth_token\": \"hunter2\"}')", "secret"),
        ("no token variable", "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES ('s', 'sms', '+15551234567', '{\"account_sid\": \"AC1\", \"from\": \"+15557654321\"}')", "auth_token_env"),
        ("a phone number that is not E.164", "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES ('s', 'sms', '555-1234', '{\"account_sid\": \"AC1\", \"from\": \"+15557654321\", \"auth_token_env\": \"T\"}')", "E.164"),
        ("a webhook without a URL", "INSERT INTO postrunner.notification_channels (name, kind) VALUES ('w', 'webhook')", "url"),
        ("a webhook URL that is not http", "INSERT INTO postrunner.notification_channels (name, kind, config) VALUES ('w', 'webhook', '{\"url\": \"ftp://x\"}')", "http"),
        ("an unknown provider", "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES ('e', 'email', 'ops@agency.test', '{\"provider\": \"nope\", \"from\": \"alerts@agency.test\"}')", "providers"),
        ("no sender", "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES ('e', 'email', 'ops@agency.test', '{\"provider\": \"smtp\"}')", "config.from"),
        ("a variable name that is not one", "INSERT INTO postrunner.notification_channels (name, kind, config) VALUES ('w', 'webhook', '{\"url_env\": \"$(rm)\"}')", "environment variable"),
    ];
    for (what, sql, says) in refused {
        let error = sqlx::raw_sql(sql).execute(pool).await.expect_err(what).to_string();
        assert!(error.contains(says), "{what}: {error}");
    }
    exec(
        pool,
        "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES
             ('e', 'email', 'ops@agency.test', '{\"provider\": \"smtp\", \"from\": \"alerts@agency.test\"}'),
             ('s', 'sms', '+15551234567', '{\"account_sid\": \"AC1\", \"from\": \"+15557654321\", \"auth_token_env\": \"TWILIO_AUTH_TOKEN\"}'),
             ('w', 'webhook', '', '{\"url_env\": \"SLACK_WEBHOOK_URL\"}')",
    )
    .await;
}

/// The real rule (provider_down) evaluated by eight schedulers at once, and the
/// dispatch by eight at once: each change reaches the channel once.
#[tokio::test]
async fn one_notification_per_change_across_dispatchers() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let hook = Receiver::start().await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind) VALUES ('sg', 'log')",
    )
    .await;
    webhook_channel(pool, "ops", &format!("{}/hook", hook.base), None).await;
    webhook_channel(
        pool,
        "budget-only",
        &format!("{}/budget", hook.base),
        Some(&["budget_80"]),
    )
    .await;
    let others = db.another_pool(16);

    let all_at_once = |sql: &'static str| {
        let others = others.clone();
        async move {
            let runs = (0..8).map(|_| {
                let others = others.clone();
                async move { sqlx::raw_sql(sql).execute(&others).await.unwrap() }
            });
            futures_util::future::join_all(runs).await;
        }
    };
    exec(pool, "UPDATE postrunner.provider_health SET state = 'down', since = now() - interval '6 minutes', last_error = '503 from sg' WHERE provider = 'sg'").await;
    all_at_once("SELECT postrunner.evaluate_alerts()").await;
    all_at_once("SELECT postrunner.dispatch_notifications()").await;
    dispatch_and_send(pool).await;
    dispatch_and_send(pool).await;
    let received = hook.received();
    assert_eq!(received.len(), 1, "one notification of the firing: {received:#?}");
    let fired = received[0].json();
    assert_eq!(
        received[0].path, "/hook",
        "the budget channel does not hear provider_down"
    );
    assert!(
        fired["text"]
            .as_str()
            .unwrap()
            .starts_with("postrunner: FIRING provider_down sg"),
        "{fired}"
    );
    assert!(fired["text"].as_str().unwrap().contains("503 from sg"), "{fired}");
    assert_eq!(fired["postrunner"]["changes"][0]["transition"], "fired");

    // Still down: evaluating again changes nothing, and nothing more is sent.
    all_at_once("SELECT postrunner.evaluate_alerts()").await;
    dispatch_and_send(pool).await;
    assert_eq!(hook.received().len(), 1);

    exec(
        pool,
        "UPDATE postrunner.provider_health SET state = 'up' WHERE provider = 'sg'",
    )
    .await;
    all_at_once("SELECT postrunner.evaluate_alerts()").await;
    all_at_once("SELECT postrunner.dispatch_notifications()").await;
    dispatch_and_send(pool).await;
    let received = hook.received();
    assert_eq!(received.len(), 2, "and one of the resolution: {received:#?}");
    assert!(received[1].json()["text"]
        .as_str()
        .unwrap()
        .starts_with("postrunner: RESOLVED provider_down sg"));
    assert_eq!(
        statuses(pool).await,
        [
            ("ops".to_owned(), "fired".to_owned(), "sent".to_owned()),
            ("ops".to_owned(), "resolved".to_owned(), "sent".to_owned())
        ]
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(DISTINCT job_id) FROM postrunner.notifications")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(jobs, 2, "one job per notification");
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_the_same_key_then_sent() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let hook = Receiver::start().await;
    webhook_channel(pool, "ops", &hook.base, None).await;
    hook.answer(&[503]);
    exec(
        pool,
        "INSERT INTO postrunner.alerts (kind, subject, detail) VALUES ('queue_depth', 'all', 'deep')",
    )
    .await;
    dispatch_and_send(pool).await;
    assert_eq!(hook.received().len(), 1);
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM postrunner.notifications")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(status, "queued", "retries remain");
    assert!(error.unwrap().contains("503"));
    let run_at_in: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - now())::float8 FROM postrunner.jobs WHERE kind = 'system.notify'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        (50.0..=61.0).contains(&run_at_in),
        "retried after a minute: {run_at_in}"
    );

    // The retry, a minute later.
    exec(
        pool,
        "UPDATE postrunner.jobs SET run_at = now() WHERE kind = 'system.notify'",
    )
    .await;
    dispatch_and_send(pool).await;
    let received = hook.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].headers["idempotency-key"],
        received[1].headers["idempotency-key"]
    );
    assert_eq!(statuses(pool).await[0].2, "sent");
}

#[tokio::test]
async fn a_delivery_that_fails_every_attempt_is_marked_failed() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let hook = Receiver::start().await;
    webhook_channel(pool, "ops", &hook.base, None).await;
    hook.answer(&[500, 500]);
    exec(
        pool,
        "INSERT INTO postrunner.alerts (kind, subject) VALUES ('queue_depth', 'all')",
    )
    .await;
    exec(pool, "SELECT postrunner.dispatch_notifications(); UPDATE postrunner.jobs SET max_attempts = 2 WHERE kind = 'system.notify'").await;
    dispatch_and_send(pool).await;
    exec(
        pool,
        "UPDATE postrunner.jobs SET run_at = now() WHERE kind = 'system.notify' AND state <> 'discarded'",
    )
    .await;
    dispatch_and_send(pool).await;
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM postrunner.report_notifications")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), hook.received().len()), ("failed", 2));
    assert!(error.contains("500"), "{error}");
}

#[tokio::test]
async fn many_changes_at_once_become_one_digest() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let hook = Receiver::start().await;
    webhook_channel(pool, "ops", &hook.base, None).await;
    exec(
        pool,
        "INSERT INTO postrunner.alerts (kind, subject) SELECT 'provider_down', 'p' || i FROM generate_series(1, 5) i;
         UPDATE postrunner.alerts SET state = 'resolved', resolved_at = now() WHERE subject = 'p1'",
    )
    .await;
    dispatch_and_send(pool).await;
    let received = hook.received();
    assert_eq!(
        received.len(),
        1,
        "one digest (more than notification_digest_after = 3 due)"
    );
    let digest = received[0].json();
    assert!(
        digest["text"]
            .as_str()
            .unwrap()
            .starts_with("postrunner: 6 alert changes (5 firing, 1 resolved)"),
        "{digest}"
    );
    assert_eq!(digest["postrunner"]["changes"].as_array().unwrap().len(), 6);
    assert!(statuses(pool).await.iter().all(|(_, _, status)| status == "sent"));

    // Three at once stay three notifications.
    exec(
        pool,
        "INSERT INTO postrunner.alerts (kind, subject) SELECT 'budget_80', 'p' || i FROM generate_series(1, 3) i",
    )
    .await;
    dispatch_and_send(pool).await;
    assert_eq!(hook.received().len(), 4);
}

#[tokio::test]
async fn an_email_channel_sends_through_an_smtp_provider() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let server = SmtpServer::start();
    sqlx::query("INSERT INTO postrunner.providers (name, kind, endpoint) VALUES ('relay', 'smtp', $1)")
        .bind(format!("smtp://127.0.0.1:{}?tls=none", server.port))
        .execute(pool)
        .await
        .unwrap();
    exec(
        pool,
        "INSERT INTO postrunner.notification_channels (name, kind, target, config)
              VALUES ('ops-mail', 'email', 'ops@agency.test', '{\"provider\": \"relay\", \"from\": \"alerts@agency.test\"}');
         INSERT INTO postrunner.alerts (kind, subject, detail) VALUES ('budget_reached', 'sg', 'sg has spent 400 of its 400 budget');",
    )
    .await;
    dispatch_and_send(pool).await;
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].contains("Subject: postrunner: FIRING budget_reached sg"),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains("To: ops@agency.test"), "{}", messages[0]);
    assert!(messages[0].contains("sg has spent 400 of its 400 budget"));
    assert_eq!(statuses(pool).await[0].2, "sent");
}

#[tokio::test]
async fn an_sms_channel_posts_to_twilio_with_its_account_and_token() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let twilio = Receiver::start().await;
    twilio.answer(&[201]);
    let token = secret_variable("twilio-token-1");
    sqlx::query(
        "INSERT INTO postrunner.notification_channels (name, kind, target, config) VALUES ('pager', 'sms', '+15551234567',
             jsonb_build_object('account_sid', 'AC0123', 'from', '+15557654321', 'auth_token_env', $1::text, 'api_base', $2::text))",
    )
    .bind(&token)
    .bind(&twilio.base)
    .execute(pool)
    .await
    .unwrap();
    exec(
        pool,
        "INSERT INTO postrunner.alerts (kind, subject) VALUES ('provider_down', 'ses')",
    )
    .await;
    dispatch_and_send(pool).await;
    let received = twilio.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/2010-04-01/Accounts/AC0123/Messages.json");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("AC0123:twilio-token-1");
    assert_eq!(received[0].headers["authorization"], format!("Basic {basic}"));
    let form = received[0].form();
    assert_eq!(form["To"], "+15551234567");
    assert_eq!(form["From"], "+15557654321");
    assert!(
        form["Body"].starts_with("postrunner: FIRING provider_down ses"),
        "{form:?}"
    );
    let stored: String = sqlx::query_scalar("SELECT config::text FROM postrunner.notification_channels")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(!stored.contains("twilio-token-1"));
}
