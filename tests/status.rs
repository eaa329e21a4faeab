//! The operator's summary: `postrunner.status_summary()`, `postrunner status` (text and
//! --json) and the web role's `/status` page, behind its token, looked at in a real
//! browser over a deployment with sends in the last hours, a provider down, bounces and
//! capacity used.

use chrono::{DurationRound as _, Utc};
use postrunner_providers::secret::Secret;
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::run::postrunner_output;
use crate::support::webhooks::{get, serve_with};

const TOKEN: &str = "status-token-0123456789";

/// Two providers (sg up, mg down for 10 minutes, alerted), client acme with three sg
/// addresses that sent 20 of their 100 today, and in the ledger: sg sent 10 × (h + 1)
/// in the hour h hours ago (h = 0..5), mg 7 two hours ago; all but the current hour
/// rolled up. Three of sg's messages bounced hard.
async fn busy_deployment(pool: &PgPool) {
    sqlx::raw_sql(
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'main');
         INSERT INTO postrunner.providers (name, kind, price_per_1000, monthly_fee, monthly_budget)
              VALUES ('sg', 'log', 0.375, 15, 400), ('mg', 'log', 0.70, 35, NULL);
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
              SELECT 's' || i || '@acme.test', 'sg', 'acme', 100 FROM generate_series(1, 3) i;
         UPDATE postrunner.address_usage SET day = postrunner.local_day(now(), 'UTC'), sent_on_day = 20;
         UPDATE postrunner.provider_health SET state = 'down', since = now() - interval '10 minutes', last_error = '503' WHERE provider = 'mg';
         SELECT postrunner.evaluate_alerts();
         BEGIN;
         SET LOCAL session_replication_role = replica;
         INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address, day, reserved_at, outcome, finished_at)
         SELECT gen_random_uuid(), 0, 1, 'acme', 'main', p.provider, 's1@acme.test', current_date, t.at, 'sent', t.at
           FROM (SELECT 'sg' AS provider, h, generate_series(1, 10 * (h + 1)) FROM generate_series(0, 5) h
                 UNION ALL SELECT 'mg', 2, generate_series(1, 7)) p,
                LATERAL (SELECT CASE WHEN p.h = 0 THEN now()
                                     ELSE date_trunc('hour', now()) - make_interval(hours => p.h) + interval '5 minutes' END AS at) t;
         INSERT INTO postrunner.outbox (id, job_id, client, direction, to_address, subject, text_body, status, provider, from_address, sent_at)
         SELECT gen_random_uuid(), -i, 'acme', 'main', 'r' || i || '@example.org', 'Hi', 'Hi', 'sent', 'sg', 's1@acme.test', now() - interval '2 hours'
           FROM generate_series(1, 3) i;
         INSERT INTO postrunner.events (provider, dedupe_key, message_id, client, kind, bounce_class, occurred_at)
         SELECT 'sg', 'b' || o.id, o.id, 'acme', 'bounced', 'hard', now() - interval '1 hour' FROM postrunner.outbox o;
         COMMIT;
         SELECT postrunner.rollup_sends();",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_summary_counts_what_happened() {
    let db = TestDb::new().await;
    busy_deployment(&db.pool).await;
    let summary = postrunner::status::read(&db.pool).await.unwrap();
    let sg = summary.providers.iter().find(|p| p.name == "sg").unwrap();
    let mg = summary.providers.iter().find(|p| p.name == "mg").unwrap();
    assert_eq!((sg.state.as_deref(), mg.state.as_deref()), (Some("up"), Some("down")));
    assert_eq!(sg.sends_today, 60.0, "three addresses, 20 each");
    let rate = sg.bounce_rate_24h.unwrap();
    assert!((rate - 3.0 / 210.0).abs() < 1e-9, "3 hard bounces of 210 sends: {rate}");
    let hourly: i64 = summary
        .sends_per_hour
        .iter()
        .filter(|h| h.provider == "sg")
        .map(|h| h.sent)
        .sum();
    assert_eq!(hourly, 210, "rolled-up hours and the current one");
    assert_eq!(summary.sends_per_hour.iter().filter(|h| h.provider == "sg").count(), 6);
    assert_eq!(
        (summary.capacity[0].capacity_today, summary.capacity[0].left_today),
        (300.0, 240.0)
    );
    assert_eq!(summary.alerts.len(), 1);
    assert_eq!(
        (summary.alerts[0].kind.as_str(), summary.alerts[0].subject.as_str()),
        ("provider_down", "mg")
    );
    // 15 $ fee + 210 sends at 0.375 $ per 1000 (the ledger's rows are this month's
    // unless the month began within the last six hours).
    let spend = sg.month_spend.unwrap();
    assert!(
        (15.0..=15.0 + 210.0 * 0.375 / 1000.0 + 1e-9).contains(&spend),
        "{spend}"
    );
}

#[tokio::test]
async fn the_status_command_prints_text_and_json() {
    let db = TestDb::new().await;
    busy_deployment(&db.pool).await;
    let run = |args: &'static [&'static str]| postrunner_output(&db.url, args, &[]);
    let text = run(&["status"]).await;
    assert!(text.contains("FIRING provider_down mg"), "{text}");
    let sg_line = text.lines().find(|l| l.trim_start().starts_with("sg ")).unwrap();
    assert!(
        sg_line.contains(" up ") && sg_line.contains("60") && sg_line.contains("1.43 %"),
        "{sg_line}"
    );
    assert!(text.contains("240 left of      300"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run(&["status", "--json"]).await).unwrap();
    assert_eq!(json["alerts"][0]["subject"], "mg");
    assert_eq!(json["providers"].as_array().unwrap().len(), 2);
}

async fn status_page(pool: &PgPool, token: Option<&str>) -> String {
    serve_with(
        pool,
        postrunner::web::WebConfig {
            status_token: token.map(|t| Secret::new(t.to_owned())),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn the_status_page_needs_its_token() {
    let db = TestDb::new().await;
    let base = status_page(&db.pool, Some(TOKEN)).await;
    assert_eq!(get(&format!("{base}/status")).await.status, 401);
    assert_eq!(
        get(&format!("{base}/status?token=wrong-token-0123456789")).await.status,
        401
    );
    let page = get(&format!("{base}/status?token={TOKEN}")).await;
    assert_eq!(page.status, 200);
    let bearer = crate::support::http()
        .get(format!("{base}/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(bearer.headers()["cache-control"], "no-store");

    let without = status_page(&db.pool, None).await;
    assert_eq!(
        get(&format!("{without}/status?token={TOKEN}")).await.status,
        404,
        "no token configured: no page"
    );
}

#[tokio::test]
async fn the_status_page_shows_the_deployment_in_a_real_browser() {
    let db = TestDb::new().await;
    busy_deployment(&db.pool).await;
    let base = status_page(&db.pool, Some(TOKEN)).await;
    // Kept as the test's artifact: target/test-artifacts/status/status-page.png
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/status");
    let request =
        serde_json::json!({"url": format!("{base}/status?token={TOKEN}"), "dir": dir, "name": "status-page.png"});
    let seen = tokio::task::spawn_blocking(move || crate::support::python::run("status_page.py", &request))
        .await
        .unwrap();

    let headings: Vec<&str> = seen["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(
        headings,
        [
            "postrunner status",
            "Queue",
            "Sends per hour (UTC), last 24 hours",
            "Providers",
            "Bounce rates, last 24 hours",
            "Capacity left today",
            "Open alerts"
        ]
    );
    assert_eq!(seen["scripts"], 0, "no JavaScript");
    let text = seen["text"].as_str().unwrap();
    assert!(text.contains("1 alert firing."), "{text}");
    assert!(
        text.contains("provider_down") && text.contains("mg down since"),
        "{text}"
    );

    let charts = seen["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 3, "sends, bounces, capacity");
    for chart in charts {
        assert!(
            chart["width"].as_f64().unwrap() > 600.0 && chart["height"].as_f64().unwrap() > 20.0,
            "laid out: {chart}"
        );
    }
    let sends = &charts[0];
    assert!(sends["title"].as_str().unwrap().ends_with("217 in all"), "{sends}");
    let bars: Vec<&str> = sends["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert_eq!(bars.len(), 7, "six hours of sg, one of mg: {bars:?}");
    let two_hours_ago = (Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap() - chrono::Duration::hours(2))
        .format("%H:00")
        .to_string();
    assert!(
        bars.contains(&format!("{two_hours_ago} sg: 30 sent").as_str()),
        "{bars:?}"
    );
    assert!(
        bars.contains(&format!("{two_hours_ago} mg: 7 sent").as_str()),
        "{bars:?}"
    );
    let bounce_bars = charts[1]["bars"].as_array().unwrap();
    assert!(
        bounce_bars.contains(&serde_json::json!("sg: 1.43 % hard bounces, 0.000 % complaints")),
        "{bounce_bars:?}"
    );
    assert!(
        bounce_bars.contains(&serde_json::json!("mg: 0.00 % hard bounces, 0.000 % complaints")),
        "{bounce_bars:?}"
    );
    assert_eq!(charts[2]["bars"][0], "acme: 240 left of 300");

    let png = std::fs::read(dir.join("status-page.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}
