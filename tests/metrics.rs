//! Prometheus metrics (issue 11, part 1): every series the contract (docs/metrics.md)
//! names, from a live process and a live database; `promtool check metrics` on real
//! scrapes; the database endpoint read once per cache period however many scrapes
//! come; the ledger rolled up without counting a send twice.

use std::sync::Arc;
use std::time::Duration;

use postrunner::metrics::database::DatabaseMetrics;
use sqlx::PgPool;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::factory;
use crate::support::factory::messages;
use crate::support::routing::addresses;
use crate::support::run::{executor, fast_config, registry};
use crate::support::webhooks::serve_with;

/// The web role with the database metrics; its base URL and the metrics object.
async fn web(pool: &PgPool, cache: Duration) -> (String, Arc<DatabaseMetrics>) {
    let database = Arc::new(DatabaseMetrics::new(pool.clone(), cache));
    let base = serve_with(
        pool,
        postrunner::web::WebConfig {
            database_metrics: Some(database.clone()),
            ..Default::default()
        },
    )
    .await;
    (base, database)
}

async fn scrape(url: &str) -> (u16, String, String) {
    let response = crate::support::get(url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// `promtool check metrics` on a scrape: its complaints (empty when clean).
fn promtool(text: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (bin/setup installs Debian's prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        String::new()
    } else {
        said
    }
}

/// The value of the series `name{labels}` (labels as the text has them), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Client acme (UTC) sending through provider p (kind log, $0.50 per 1,000, $10 a month,
/// budget $20) from 20 addresses of 5 a day (pacing lets each send once now); `sent`
/// messages (at most 20) sent now.
async fn acme_sent(pool: &PgPool, sent: i32) {
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, price_per_1000, monthly_fee, monthly_budget)
         VALUES ('p', 'log', 0.50, 10, 20)",
    )
    .await;
    addresses(pool, "acme", "p", 20, 5).await;
    messages(pool, "acme", "d", sent).await;
    let worker = executor(pool, registry(pool), fast_config());
    worker.drain(None).await.unwrap();
}

#[tokio::test]
async fn the_database_endpoint_says_what_the_tables_hold() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_sent(pool, 10).await;
    // Two hard bounces and a complaint among the ten.
    exec(
        pool,
        "INSERT INTO postrunner.events (provider, dedupe_key, message_id, client, kind, bounce_class, occurred_at)
         SELECT 'p', 'e' || n, id, 'acme', CASE WHEN n <= 2 THEN 'bounced' ELSE 'complained' END::postrunner.event_kind,
                CASE WHEN n <= 2 THEN 'hard' END::postrunner.bounce_class, now()
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM postrunner.outbox LIMIT 3) m;
         UPDATE postrunner.provider_health SET state = 'degraded';
         INSERT INTO postrunner.alerts (kind, subject) VALUES ('provider_down', 'p');",
    )
    .await;
    messages(pool, "acme", "d", 3).await;
    let (base, _) = web(pool, Duration::from_secs(10)).await;

    let (status, content_type, text) = scrape(&format!("{base}/metrics/database")).await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let openmetrics = crate::support::http()
        .get(format!("{base}/metrics/database"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(openmetrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(openmetrics.text().await.unwrap().ends_with("# EOF\n"));
    let expect = [
        ("postrunner_queue_jobs{kind=\"email.send\",state=\"available\"}", 3.0),
        ("postrunner_provider_sends_today{provider=\"p\"}", 10.0),
        ("postrunner_client_sends_today{client=\"acme\"}", 10.0),
        ("postrunner_capacity_today{client=\"acme\",provider=\"p\"}", 100.0),
        ("postrunner_capacity_left_today{client=\"acme\",provider=\"p\"}", 90.0),
        ("postrunner_provider_up{provider=\"p\"}", 0.5),
        ("postrunner_provider_health{provider=\"p\",state=\"degraded\"}", 1.0),
        (
            "postrunner_bounce_rate{level=\"provider\",name=\"p\",window=\"24h\"}",
            0.2,
        ),
        (
            "postrunner_complaint_rate{level=\"client\",name=\"acme\",window=\"7d\"}",
            0.1,
        ),
        ("postrunner_month_spend_dollars{provider=\"p\"}", 10.005),
        ("postrunner_month_budget_dollars{provider=\"p\"}", 20.0),
        ("postrunner_alerts_firing{kind=\"provider_down\"}", 1.0),
        ("postrunner_workers_live{role=\"worker\"}", 0.0),
        ("postrunner_backup_last_success_timestamp_seconds", 0.0),
    ];
    for (series, expected) in expect {
        let got = value(&text, series).unwrap_or_else(|| panic!("{series} missing in\n{text}"));
        assert!((got - expected).abs() < 1e-9, "{series}: {got}, expected {expected}");
    }
    let address_series = text
        .lines()
        .filter(|l| l.starts_with("postrunner_address_sends_today{"))
        .count();
    assert_eq!(address_series, 20);
    assert!(value(&text, "postrunner_queue_oldest_waiting_seconds{kind=\"email.send\"}").unwrap() >= 0.0);
    assert_eq!(promtool(&text), "", "promtool check metrics:\n{text}");
}

#[tokio::test]
async fn the_process_endpoint_counts_sends_and_passes_promtool() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    postrunner::metrics::process::set_role("worker");
    let (base, _) = web(pool, Duration::from_secs(10)).await;
    let before = value(
        &scrape(&format!("{base}/metrics")).await.2,
        "postrunner_sends_total{provider=\"p\",outcome=\"sent\"}",
    )
    .unwrap_or(0.0);
    acme_sent(pool, 5).await;
    let (status, _, text) = scrape(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    // Other tests in this process send through other providers; "p" of this client
    // may be shared by name, so at least five more.
    let after = value(&text, "postrunner_sends_total{provider=\"p\",outcome=\"sent\"}").unwrap();
    assert!(after >= before + 5.0, "{before} -> {after}");
    for family in [
        "postrunner_send_duration_seconds_bucket{le=\"0.01\",provider=\"p\"}",
        "postrunner_claims_total{queue=\"routed\"}",
        "postrunner_jobs_finished_total{kind=\"email.send\",outcome=\"completed\"}",
        "postrunner_build_info{version=",
    ] {
        assert!(text.contains(family), "{family} in\n{text}");
    }
    assert_eq!(promtool(&text), "", "promtool check metrics:\n{text}");
}

#[tokio::test]
async fn scrapes_within_the_cache_period_cost_one_read_whatever_their_number() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_sent(pool, 1).await;
    let (base, _) = web(pool, Duration::from_secs(2)).await;
    let url = format!("{base}/metrics/database");
    let texts = futures_util::future::join_all((0..8).map(|_| scrape(&url))).await;
    let duration = |text: &str| value(text, "postrunner_database_metrics_scrape_duration_seconds").unwrap();
    let first = duration(&texts[0].2);
    assert!(
        texts.iter().all(|(_, _, t)| duration(t) == first),
        "eight concurrent scrapes, one read"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, _, later) = scrape(&url).await;
    assert_ne!(duration(&later), first, "read again once the period is over");
}

#[tokio::test]
async fn the_rollup_moves_settled_sends_without_counting_any_twice() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme_sent(pool, 12).await;
    let month = "SELECT coalesce(sum(used), 0)::bigint FROM postrunner.monthly_sends(postrunner.utc_month(now()))";
    let since = "SELECT coalesce(sum(sent), 0)::bigint FROM postrunner.sends_since(now() - interval '1 day')";
    assert_eq!((count(pool, month).await, count(pool, since).await), (12, 12));
    // Not settled yet (sent this minute): nothing moves.
    assert_eq!(count(pool, "SELECT postrunner.rollup_sends()").await, 0);
    // Settled (a zero settling time): all twelve move, once.
    assert_eq!(count(pool, "SELECT postrunner.rollup_sends(interval '0')").await, 12);
    assert_eq!(count(pool, "SELECT postrunner.rollup_sends(interval '0')").await, 0);
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.unrolled_sends()").await, 0);
    assert_eq!((count(pool, month).await, count(pool, since).await), (12, 12));
    // A later send is read live, beside the rollup.
    messages(pool, "acme", "d", 1).await;
    executor(pool, registry(pool), fast_config()).drain(None).await.unwrap();
    assert_eq!((count(pool, month).await, count(pool, since).await), (13, 13));
}

#[test]
fn every_database_metric_is_documented() {
    let contract = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let snapshot = postrunner_schema::definitions::named("450_metrics_snapshot.sql")
        .unwrap()
        .sql;
    for (name, _) in postrunner::metrics::database::HELP {
        assert!(
            contract.contains(&format!("`postrunner_{name}`")),
            "{name} in docs/metrics.md"
        );
        assert!(
            snapshot.contains(&format!("'{name}'")),
            "{name} in sql/definitions/450_metrics_snapshot.sql"
        );
    }
}

#[tokio::test]
async fn costs_per_month_forecast_and_the_budget_alerts() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    // $0.50 per 1,000 and $10 a month against a $20 budget: the fee alone is 50 %.
    acme_sent(pool, 20).await;
    exec(pool, "SELECT postrunner.rollup_sends(interval '0')").await;
    let (messages, spend, used, projected): (i64, String, String, String) = sqlx::query_as(
        "SELECT messages, spend::text, budget_used::text, projected::text FROM postrunner.report_cost
          WHERE level = 'provider' AND provider = 'p' AND month = postrunner.utc_month(now())",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((messages, spend.as_str(), used.as_str()), (20, "10.01", "0.5005"));
    assert!(projected.parse::<f64>().unwrap() >= 10.01, "{projected}");
    let clients = count(
        pool,
        "SELECT messages FROM postrunner.report_cost WHERE level = 'client' AND client = 'acme'",
    )
    .await;
    assert_eq!(clients, 20);

    // A budget of $12.50: 80 % spent, one alert; raised again, it resolves.
    let alerts = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT kind, state FROM postrunner.alerts WHERE kind LIKE 'budget%' ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    exec(pool, "UPDATE postrunner.providers SET monthly_budget = 12.5").await;
    exec(
        pool,
        "SELECT postrunner.evaluate_alerts(); SELECT postrunner.evaluate_alerts();",
    )
    .await;
    assert_eq!(alerts(pool).await, [("budget_80".to_owned(), "firing".to_owned())]);
    exec(pool, "UPDATE postrunner.providers SET monthly_budget = 10.01").await;
    exec(pool, "SELECT postrunner.evaluate_alerts()").await;
    assert_eq!(
        alerts(pool).await,
        [
            ("budget_80".to_owned(), "firing".to_owned()),
            ("budget_reached".to_owned(), "firing".to_owned())
        ]
    );
    exec(pool, "UPDATE postrunner.providers SET monthly_budget = 100").await;
    exec(pool, "SELECT postrunner.evaluate_alerts()").await;
    assert!(alerts(pool).await.iter().all(|(_, state)| state == "resolved"));
}

#[tokio::test]
async fn every_role_serves_its_metrics_on_metrics_bind() {
    let db = TestDb::new().await;
    let port = crate::support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let _worker = crate::support::run::Process::spawn(&db.url, &["worker", "--metrics-bind", &bind]);
    let url = format!("http://{bind}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Ok(response) = crate::support::get(&url).await {
            break response.text().await.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no metrics on {bind}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("role=\"worker\""), "{text}");
    assert_eq!(promtool(&text), "");
    // Only the web role serves the database's.
    let status = crate::support::get(format!("http://{bind}/metrics/database"))
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404);
}

/// The web role is a live process like the others: in `workers` and in
/// `workers_live{role="web"}` while it serves, gone after SIGTERM.
#[tokio::test]
async fn the_web_role_counts_as_a_live_process() {
    let db = TestDb::new().await;
    let port = crate::support::free_port();
    let web = crate::support::run::Process::spawn(&db.url, &["web", "--bind", &format!("127.0.0.1:{port}")]);
    let live_web = "SELECT count(*) FROM postrunner.workers WHERE role = 'web'";
    crate::support::wait_for_count(&db.pool, live_web, 1, Duration::from_secs(20)).await;
    let metric: f64 = sqlx::query_scalar(
        "SELECT value FROM postrunner.metrics_snapshot() WHERE metric = 'workers_live' AND labels ->> 'role' = 'web'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(metric, 1.0);
    web.signal("TERM");
    crate::support::wait_for_count(
        &db.pool,
        "SELECT count(*) FROM postrunner.processes WHERE role = 'web'",
        0,
        Duration::from_secs(20),
    )
    .await;
}

/// Issue 18, 1.6: `/metrics/database` names every client's sender addresses. With
/// POSTRUNNER_METRICS_TOKEN set, it answers only a scrape that gives the token as a
/// bearer token, on the web port and on --metrics-bind alike; `/metrics` (this process
/// only) stays open.
#[tokio::test]
async fn the_database_metrics_ask_for_their_token_when_one_is_set() {
    let db = TestDb::new().await;
    factory::zoned_client(&db.pool, "acme", "UTC", "d").await;
    addresses(&db.pool, "acme", "log", 0, 50).await;
    let token = "a-metrics-token-0123456789";
    let (web_port, metrics_port) = (crate::support::free_port(), crate::support::free_port());
    let (web, metrics) = (format!("127.0.0.1:{web_port}"), format!("127.0.0.1:{metrics_port}"));
    let _web = crate::support::run::Process::spawn_with_env(
        &db.url,
        &["web", "--bind", &web, "--metrics-bind", &metrics],
        &[("POSTRUNNER_METRICS_TOKEN", token)],
    );
    let client = crate::support::http();
    for base in [&web, &metrics] {
        let url = format!("http://{base}/metrics/database");
        let status = |bearer: Option<&'static str>| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let mut request = client.get(&url);
                if let Some(bearer) = bearer {
                    request = request.bearer_auth(bearer);
                }
                request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
            }
        };
        crate::support::eventually(Duration::from_secs(20), "the web role answers", || async {
            status(None).await != 0
        })
        .await;
        assert_eq!(status(None).await, 401, "{url} without the token");
        assert_eq!(
            status(Some("a-metrics-token-0123456780")).await,
            401,
            "{url} with another"
        );
        assert_eq!(status(Some("a-metrics-token-0123456789")).await, 200, "{url} with it");
        let open = client.get(format!("http://{base}/metrics")).send().await.unwrap();
        assert_eq!(open.status().as_u16(), 200, "the process's own metrics stay open");
    }
}
