//! The hourly cleanup keeps the operational tables small: provider probes, the provider
//! health history and resolved alerts (with their notifications) go after their
//! retention settings; a firing alert stays however old. Messages final for longer than
//! their retention lose their bodies and headers, not their rows.

use serde_json::json;

use crate::support::db::{count, exec, TestDb};
use crate::support::factory;
use crate::support::run::{executor, fast_config, registry};

/// Runs the scheduler's hourly cleanup job once, as a worker would.
async fn run_cleanup(pool: &sqlx::PgPool) {
    factory::jobs(pool, "system.cleanup", 1, json!({})).await;
    let ran = executor(pool, registry(pool), fast_config()).drain(None).await.unwrap();
    assert_eq!(ran, 1);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.jobs WHERE kind = 'system.cleanup'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_cleanup_deletes_what_is_past_retention_and_keeps_the_rest() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::client(pool, "acme", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.provider_probes (provider, at, latency_ms, ok)
         SELECT 'log', now() - interval '20 days', 12, true FROM generate_series(1, 3);
         INSERT INTO postrunner.provider_probes (provider, at, latency_ms, ok)
         SELECT 'log', now() - interval '1 hour', 12, true FROM generate_series(1, 2);
         INSERT INTO postrunner.provider_health_history (provider, state, at) VALUES
             ('log', 'down', now() - interval '200 days'), ('log', 'up', now() - interval '1 day');
         INSERT INTO postrunner.notification_channels (name, kind, config)
         VALUES ('ops', 'webhook', '{\"url\": \"http://127.0.0.1:9/\"}');
         INSERT INTO postrunner.alerts (kind, subject, state, fired_at, resolved_at) VALUES
             ('provider_down', 'old-resolved', 'resolved', now() - interval '201 days', now() - interval '200 days'),
             ('provider_down', 'old-firing', 'firing', now() - interval '400 days', NULL),
             ('provider_down', 'new-resolved', 'resolved', now() - interval '2 days', now() - interval '1 day');
         INSERT INTO postrunner.notifications (channel, alert_id, transition)
         SELECT 'ops', id, 'fired' FROM postrunner.alerts ON CONFLICT DO NOTHING;",
    )
    .await;

    // A longer probe retention than the default keeps the 20-day-old probes.
    exec(
        pool,
        "UPDATE postrunner.settings SET value = '30' WHERE name = 'probe_retention_days'",
    )
    .await;
    run_cleanup(pool).await;
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.provider_probes").await, 5);

    exec(
        pool,
        "UPDATE postrunner.settings SET value = '14' WHERE name = 'probe_retention_days'",
    )
    .await;
    run_cleanup(pool).await;
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.provider_probes").await,
        2,
        "the recent probes stay"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.provider_health_history").await,
        1,
        "the recent health change stays"
    );
    let alerts: Vec<String> = sqlx::query_scalar("SELECT subject FROM postrunner.alerts ORDER BY subject")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(
        alerts,
        ["new-resolved", "old-firing"],
        "a firing alert stays however old"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.notifications n
              WHERE NOT EXISTS (SELECT 1 FROM postrunner.alerts a WHERE a.id = n.alert_id)"
        )
        .await,
        0
    );
    assert!(count(pool, "SELECT count(*) FROM postrunner.notifications").await >= 2);
}

#[tokio::test]
async fn a_backlog_is_deleted_ten_thousand_rows_a_run() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::client(pool, "acme", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.provider_probes (provider, at, latency_ms, ok)
         SELECT 'log', now() - interval '30 days' - i * interval '1 second', 12, true
           FROM generate_series(1, 10005) AS i",
    )
    .await;
    run_cleanup(pool).await;
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.provider_probes").await, 5);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.provider_probes WHERE at > now() - interval '30 days 6 seconds'"
        )
        .await,
        5,
        "the oldest go first"
    );
    run_cleanup(pool).await;
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.provider_probes").await, 0);
}

#[tokio::test]
async fn bodies_past_retention_are_cleared_and_such_a_message_is_not_redriven() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::client(pool, "acme", "d").await;
    let old_sent = factory::message(pool, "acme", "d", "old-sent@example.org").await;
    let recent_sent = factory::message(pool, "acme", "d", "recent-sent@example.org").await;
    let old_cancelled = factory::message(pool, "acme", "d", "old-cancelled@example.org").await;
    exec(
        pool,
        &format!("UPDATE postrunner.outbox SET status = 'cancelled' WHERE id = '{old_cancelled}'"),
    )
    .await;
    let waiting: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, send_after)
         VALUES ('acme', 'd', 'old-waiting@example.org', 'Later', 'Hi', now() + interval '1 day') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    executor(pool, registry(pool), fast_config()).drain(None).await.unwrap();
    // As if the old ones were written (and the sent one sent) 40 days ago.
    exec(
        pool,
        "UPDATE postrunner.outbox SET created_at = created_at - interval '40 days',
                                      sent_at = sent_at - interval '40 days'
          WHERE to_address LIKE 'old-%'",
    )
    .await;

    run_cleanup(pool).await;

    let bodies = |id: uuid::Uuid| async move {
        sqlx::query_as::<_, (String, String, Option<String>, bool)>(
            "SELECT status::text, subject, text_body, body_cleared_at IS NOT NULL FROM postrunner.outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    assert_eq!(
        bodies(old_sent).await,
        ("sent".into(), "Hello".into(), None, true),
        "cleared, status kept"
    );
    assert_eq!(
        bodies(old_cancelled).await,
        ("cancelled".into(), "Hello".into(), None, true)
    );
    assert_eq!(
        bodies(recent_sent).await,
        ("sent".into(), "Hello".into(), Some("Hi there".into()), false),
        "within retention"
    );
    assert_eq!(
        bodies(waiting).await,
        ("queued".into(), "Later".into(), Some("Hi".into()), false),
        "not final: kept however old"
    );

    let redriven = sqlx::query("SELECT postrunner.retry_message($1)")
        .bind(old_cancelled)
        .execute(pool)
        .await
        .unwrap_err();
    assert!(redriven.to_string().contains("past the body retention"), "{redriven}");
}
