//! `postrunner demo`: the whole path on the embedded default, in one process.
//!
//! It finds or starts PostgreSQL, creates and migrates a fresh `postrunner_demo`
//! database, starts local simulators of four providers (SendGrid, Mailgun, Postmark,
//! Resend, each speaking its real wire format), configures two clients with 1,200 sender
//! addresses, enqueues messages with plain SQL (showing a refused INSERT, an idempotent
//! re-insert, delayed messages and a cancel), runs workers and a scheduler side by side
//! as separate executors, breaks one provider mid-run and heals it, shows progress with
//! each provider's health, then plays SendGrid's part of the feedback loop (signed
//! webhooks to an in-process `postrunner web`: deliveries, bounces of a stale list,
//! spam reports) and prints a summary per provider with the suppressions and automatic
//! pauses that followed. Log lines go to a file ([`log_path`]), not the live view.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::DemoArgs;
use crate::kinds;
use crate::roles::presence::Presence;
use crate::unsubscribe::{UnsubscribeKeys, UnsubscribeLinks};
use postrunner_providers::Directory;
use postrunner_queue::executor::{Executor, ExecutorConfig};
use postrunner_sim::{FakeProvider, Fault, Kind};

/// Clients, directions and 1,200 sender addresses over four providers; the providers'
/// endpoints (the simulators) are filled in at run time.
const SETUP: &str = "
INSERT INTO postrunner.clients (name, time_zone) VALUES ('acme', 'Europe/Paris'), ('globex', 'America/New_York');
INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'q1-founders'), ('acme', 'q1-cto'), ('globex', 'launch');
-- q1-cto may only use sg-main and pm-main; the other directions use every provider.
INSERT INTO postrunner.direction_providers (client, direction, provider) VALUES
    ('acme', 'q1-cto', 'sg-main'), ('acme', 'q1-cto', 'pm-main');
-- 1,200 sender addresses, 300 per provider; limits high enough that the demo drains in
-- seconds (pacing spaces each address's sends by 24 h / daily_limit: 0.09 s here,
-- 29 min at the default 50).
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
SELECT 'sender' || i || '@' || p || '.' || c || '.test', p, c, 1000000
  FROM generate_series(1, 150) AS i,
       unnest(ARRAY['sg-main', 'mg-main', 'pm-main', 'rs-main']) AS p,
       unnest(ARRAY['acme', 'globex']) AS c;
INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'person30@example.org', 'unsubscribe');
-- A short cool-down, so the demo shows the broken provider's trial sends and recovery.
UPDATE postrunner.settings SET value = '3' WHERE name = 'breaker_cooldown_secs';
";

/// Where the demo's log lines go (printed at the start), so the live view stays readable.
pub fn log_path() -> std::path::PathBuf {
    std::env::temp_dir().join("postrunner-demo.log")
}

/// The variable the demo's provider rows name for their (made-up) API keys.
const DEMO_KEY_VARIABLE: &str = "POSTRUNNER_DEMO_PROVIDER_KEY";
const DEMO_KEY: &str = "demo-key";

pub async fn run(database_url: Option<String>, args: DemoArgs) -> anyhow::Result<()> {
    // Before any worker starts: the provider rows name this variable for their keys.
    std::env::set_var(DEMO_KEY_VARIABLE, DEMO_KEY);
    println!("postrunner demo: {} messages, {} workers", args.messages, args.workers);
    println!("  logs       {}", log_path().display());
    let (server, url) = super::fresh_database(database_url, "postrunner_demo").await?;
    let where_ = if server.cluster.is_some() {
        "a private throwaway PostgreSQL cluster"
    } else {
        "the local PostgreSQL"
    };
    println!("  database   {} on {where_}, migrated", super::redact(&url));
    let pool = &postrunner_schema::pool(&url, 20, "postrunner-demo")?;

    let simulators = start_providers(pool, Duration::from_millis(args.send_ms)).await?;
    sqlx::raw_sql(SETUP).execute(pool).await?;
    println!("  providers  local simulators of SendGrid, Mailgun, Postmark and Resend (their real wire formats),");
    println!(
        "             each answering in {} ms; keys from ${DEMO_KEY_VARIABLE}",
        args.send_ms
    );
    println!("  setup      clients acme and globex, 3 directions, 1,200 sender addresses, 1 suppressed recipient");

    enqueue(pool, args.messages).await?;
    let web = Web::start(pool).await?;
    let shutdown = CancellationToken::new();
    let roles = start_roles(pool, args.workers, &web.links, &shutdown).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let workers: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.workers")
        .fetch_one(pool)
        .await?;
    println!(
        "  running    {workers} processes in postrunner.workers ({} workers, 1 scheduler)\n",
        args.workers
    );

    let elapsed = watch(pool, &simulators[2].1, i64::from(args.messages)).await?;
    shutdown.cancel();
    for role in roles {
        let _ = role.await;
    }

    let sent = status_counts(pool).await?.get("sent").copied().unwrap_or(0);
    feedback(pool, &web.base).await?;
    unsubscribe_links(pool, &web.links).await?;
    let verified = summary(pool, sent, elapsed, args.workers).await?;
    if server.cluster.is_none() {
        println!(
            "\nexplore it:  psql '{}' -c 'SELECT * FROM postrunner.report_provider_health'",
            super::redact(&url)
        );
    }
    if !args.linger.is_zero() {
        println!(
            "\npostrunner web stays up for {} (--linger): try the unsubscribe link, the status page and the metrics above",
            humantime::format_duration(args.linger)
        );
        tokio::time::sleep(args.linger).await;
    }
    web.stop().await;
    anyhow::ensure!(verified.holds(), "postrunner verify found broken promises (above)");
    Ok(())
}

/// A simulator per provider kind the demo uses, each answering after `latency`, and
/// their rows in `postrunner.providers`.
async fn start_providers(pool: &PgPool, latency: Duration) -> anyhow::Result<Vec<(&'static str, FakeProvider)>> {
    let mut simulators = Vec::new();
    let mut rows = Vec::new();
    for (name, kind, sim, weight) in [
        ("sg-main", "sendgrid", Kind::SendGrid, 200),
        ("mg-main", "mailgun", Kind::Mailgun, 100),
        ("pm-main", "postmark", Kind::Postmark, 100),
        ("rs-main", "resend", Kind::Resend, 100),
    ] {
        let simulator = FakeProvider::start(sim, DEMO_KEY).await;
        simulator.set_latency(latency);
        rows.push(format!(
            "('{name}', '{kind}', '{}', '{DEMO_KEY_VARIABLE}', {weight})",
            simulator.url
        ));
        simulators.push((name, simulator));
    }
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.providers (name, kind, endpoint, secret_env, weight) VALUES {};",
        rows.join(", ")
    ))
    .execute(pool)
    .await?;
    Ok(simulators)
}

/// One `postrunner web` for the whole demo: SendGrid's webhooks later, the messages'
/// signed one-click unsubscribe links (a fresh key for this run), the status page
/// (behind a fresh token) and the metrics, on one port.
struct Web {
    base: String,
    links: UnsubscribeLinks,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Web {
    async fn start(pool: &PgPool) -> anyhow::Result<Self> {
        // One `postrunner web` for the whole demo: SendGrid's webhooks later, and the
        // messages' signed one-click unsubscribe links (a fresh key for this run).
        let key = format!(
            "demo-{}-{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let keys = UnsubscribeKeys::new(key.as_bytes(), None)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let web_base = format!("http://{}", listener.local_addr()?);
        let web_stop = CancellationToken::new();
        // The status page (behind a fresh token) and the metrics, on the same port.
        let status_token = uuid::Uuid::new_v4().simple().to_string();
        let web = tokio::spawn(crate::web::serve(
            listener,
            pool.clone(),
            crate::web::WebConfig {
                unsubscribe: Some(keys.clone()),
                status_token: Some(postrunner_providers::secret::Secret::new(status_token.clone())),
                database_metrics: Some(Arc::new(crate::metrics::database::DatabaseMetrics::new(
                    pool.clone(),
                    Duration::from_secs(5),
                ))),
                ..Default::default()
            },
            web_stop.clone(),
        ));
        println!("  status     {web_base}/status?token={status_token}");
        println!("  metrics    {web_base}/metrics  {web_base}/metrics/database");
        let links = UnsubscribeLinks::new(&web_base, keys);

        Ok(Self {
            base: web_base,
            links,
            stop: web_stop,
            handle: web,
        })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

/// `workers` workers (8 sends each at a time, signing unsubscribe links) and a
/// scheduler, in this process, until `shutdown`.
async fn start_roles(
    pool: &PgPool,
    workers: usize,
    links: &UnsubscribeLinks,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut roles = Vec::new();
    for _ in 0..workers {
        let presence = Presence::new("worker", Some(8), Duration::from_secs(1)).signing_unsubscribe(true);
        presence.register(pool).await?;
        let providers = Directory::new(pool.clone()).with_send_timeout(Duration::from_secs(1));
        let registry = kinds::registry_with(pool.clone(), Arc::new(providers), Some(links.clone()));
        let config = ExecutorConfig {
            concurrency: 8,
            heartbeat: Duration::from_secs(1),
            signs_unsubscribe: true,
            ..ExecutorConfig::default()
        };
        let executor = Executor::new(pool.clone(), registry, config, presence.id);
        roles.push(tokio::spawn(executor.run(shutdown.clone())));
    }
    roles.push(tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move {
            let _ = crate::roles::scheduler::run(pool, shutdown).await;
        }
    }));
    Ok(roles)
}

/// Prints the run's progress every half second until nothing is pending, breaking
/// `broken` (pm-main) on the way; the seconds it took.
async fn watch(pool: &PgPool, broken: &FakeProvider, total: i64) -> anyhow::Result<f64> {
    // pm-main breaks a fifth of the way through (503s, timeouts, dropped connections)
    // and heals half way. Its 503s go to other providers at once; a timed-out or dropped
    // send may have been taken, so it is held as uncertain until the resolver finds it in
    // Postmark's outbound search (or the wait ends): no duplicate.
    let (mut broke, mut healed) = (false, false);
    let started = Instant::now();
    loop {
        let counts = status_counts(pool).await?;
        let sent = counts.get("sent").copied().unwrap_or(0);
        if !broke && sent >= total / 5 {
            broken.fail_always(vec![
                Fault::Reply(503, "Service Unavailable".into(), vec![]),
                Fault::Slow(Duration::from_secs(2)),
                Fault::Drop,
            ]);
            broke = true;
            println!("  >>> pm-main starts failing: 503s, timeouts, dropped connections");
        } else if broke && !healed && sent >= total / 2 {
            broken.fail_always(vec![]);
            healed = true;
            println!("  >>> pm-main heals");
        }
        let pending: i64 = ["queued", "sending", "retrying", "uncertain"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum();
        println!(
            "  [{:>5.1}s] {}   {}",
            started.elapsed().as_secs_f64(),
            line(&counts),
            health_line(pool).await?
        );
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(180),
            "the demo did not finish within three minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The summary: statuses, per client, per provider, suppressions, pauses, uncertain
/// sends, and `postrunner verify` on what the run left behind.
async fn summary(pool: &PgPool, sent: i64, elapsed: f64, workers: usize) -> anyhow::Result<crate::verify::Report> {
    let counts = status_counts(pool).await?;
    println!("\nsummary");
    println!("  {}", line(&counts));
    println!(
        "  {sent} messages sent in {elapsed:.1} s ({:.0}/s) by {} workers",
        sent as f64 / elapsed.max(0.001),
        workers
    );
    sent_by_client_and_provider(pool).await?;
    suppressions_pauses_and_uncertain(pool).await?;
    verified(pool).await
}

/// Sent mail per client and direction, and per provider: accepted, failed over (its
/// failures whose message another provider sent), retried later, its health history.
async fn sent_by_client_and_provider(pool: &PgPool) -> anyhow::Result<()> {
    let per_client: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT client, direction, sum(messages)::bigint FROM postrunner.report_outbox WHERE status IN ('sent', 'delivered', 'bounced', 'complained') GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    for (client, direction, n) in per_client {
        println!("  {client:<8} {direction:<12} {n:>6} sent");
    }
    let per_provider: Vec<(String, i64, i64, i64, i64, String)> = sqlx::query_as(
        "SELECT p.name,
                count(*) FILTER (WHERE a.outcome = 'sent'),
                count(DISTINCT a.from_address) FILTER (WHERE a.outcome = 'sent'),
                count(*) FILTER (WHERE a.outcome IN ('released', 'failed')
                                   AND EXISTS (SELECT 1 FROM postrunner.outbox o
                                                WHERE o.id = a.message_id AND o.status IN ('sent', 'delivered', 'bounced', 'complained')
                                                  AND o.provider <> p.name)),
                count(*) FILTER (WHERE a.outcome IN ('released', 'failed') AND a.attempt > 1),
                coalesce((SELECT string_agg(h.state::text, ' -> ' ORDER BY h.id)
                            FROM postrunner.provider_health_history h WHERE h.provider = p.name), 'up throughout')
           FROM postrunner.providers p LEFT JOIN postrunner.send_attempts a ON a.provider = p.name
          GROUP BY p.name ORDER BY p.name",
    )
    .fetch_all(pool)
    .await?;
    println!("  provider   sent  addresses  failed over  retried  health");
    for (provider, n, addresses, failed_over, retried, health) in per_provider {
        println!("  {provider:<8} {n:>6} {addresses:>10} {failed_over:>12} {retried:>8}  {health}");
    }
    Ok(())
}

/// What the feedback loop did: suppressed recipients, automatic pauses, uncertain sends.
async fn suppressions_pauses_and_uncertain(pool: &PgPool) -> anyhow::Result<()> {
    let suppressions: Vec<(String, i64)> =
        sqlx::query_as("SELECT reason::text, count(*) FROM postrunner.report_suppressions GROUP BY 1 ORDER BY 1")
            .fetch_all(pool)
            .await?;
    println!(
        "  suppressed recipients: {}",
        suppressions
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pauses: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, subject, coalesce(detail, '') FROM postrunner.alerts WHERE kind LIKE '%paused' AND state = 'firing' ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    for (kind, subject, detail) in &pauses {
        println!(
            "  automatic pause: {} {subject}: {detail}",
            kind.trim_end_matches("_paused")
        );
    }
    if pauses.is_empty() {
        println!("  automatic pauses: none");
    }
    let (held, by_lookup, by_event, resent, given_up): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE resolution IS NOT NULL OR outcome = 'uncertain'),
                count(*) FILTER (WHERE resolution = 'lookup'), count(*) FILTER (WHERE resolution = 'event'),
                count(*) FILTER (WHERE resolution = 'resent'), count(*) FILTER (WHERE resolution = 'given_up')
           FROM postrunner.send_attempts",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "  uncertain sends (timeouts, dropped connections): {held} held, {by_lookup} found at the provider, \
         {by_event} shown sent by an event, {resent} sent again, {given_up} given up"
    );
    Ok(())
}

/// `postrunner verify` on what the run left behind, printed.
async fn verified(pool: &PgPool) -> anyhow::Result<crate::verify::Report> {
    let verified = crate::verify::verify(pool).await?;
    println!(
        "  postrunner verify: {} ({} promises checked in {} ms{})",
        if verified.holds() {
            "every promise holds"
        } else {
            "PROMISES BROKEN"
        },
        crate::verify::PROMISES.len(),
        verified.elapsed.as_millis(),
        match verified.explained() {
            0 => String::new(),
            n => format!("; {n} duplicates the uncertain path explains"),
        }
    );
    if !verified.holds() {
        println!("{verified}");
    }
    Ok(verified)
}

/// Every message went out with its signed one-click link: one recipient's mail client
/// uses it (RFC 8058's POST), and one more link is printed to open in a browser.
async fn unsubscribe_links(pool: &PgPool, links: &UnsubscribeLinks) -> anyhow::Result<()> {
    let delivered: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT id, client, to_address FROM postrunner.outbox WHERE status = 'delivered' ORDER BY sent_at LIMIT 2",
    )
    .fetch_all(pool)
    .await?;
    let [(clicked, clicked_client, clicked_to), (shown, shown_client, shown_to)] = delivered.as_slice() else {
        return Ok(());
    };
    let answer = reqwest::Client::new()
        .post(links.url(*clicked, clicked_client, clicked_to))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    println!(
        "  >>> a recipient's mail client uses its one-click unsubscribe link (RFC 8058 POST): {}",
        answer.status()
    );
    println!(
        "  unsubscribe link of another message (open it in a browser; served while the demo runs):\n    {}",
        links.url(*shown, shown_client, shown_to)
    );
    Ok(())
}

/// Each provider's health state, for the progress lines.
async fn health_line(pool: &PgPool) -> anyhow::Result<String> {
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT provider, state::text FROM postrunner.provider_health ORDER BY provider")
            .fetch_all(pool)
            .await?;
    Ok(states
        .iter()
        .map(|(p, s)| format!("{p} {s}"))
        .collect::<Vec<_>>()
        .join(", "))
}

async fn enqueue(pool: &PgPool, messages: u32) -> anyhow::Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key, metadata)
         SELECT c.client, c.direction,
                -- A third of acme/q1-founders' list is stale (their mail will bounce) and a
                -- few of globex's recipients will mark it as spam: the feedback loop's part.
                CASE WHEN i % 9 = 0 THEN 'bounce-' WHEN i % 50 = 2 THEN 'complain-' ELSE '' END
                    || 'person' || i || '@example.org',
                'Hello #' || i, 'Hi, this is message ' || i,
                'demo-' || i, jsonb_build_object('i', i)
           FROM generate_series(1, $1) AS i,
                LATERAL (SELECT (ARRAY['acme','acme','globex'])[1 + i % 3] AS client,
                                (ARRAY['q1-founders','q1-cto','launch'])[1 + i % 3] AS direction) AS c",
    )
    .bind(messages as i32)
    .execute(pool)
    .await?
    .rows_affected();
    println!("  enqueued   {inserted} messages with one INSERT INTO postrunner.outbox");

    let again = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key)
         VALUES ('acme', 'q1-founders', 'person1@example.org', 'Hello #1', 'again', 'demo-1')
         ON CONFLICT DO NOTHING",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!("  re-insert  same idempotency_key with ON CONFLICT DO NOTHING: {again} new rows");

    let delayed = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, send_after)
         SELECT 'globex', 'launch', 'later' || i || '@example.org', 'Later', 'Sent two seconds later', now() + interval '2 seconds'
           FROM generate_series(1, 20) AS i",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!("  delayed    {delayed} messages with send_after = now() + 2 s");

    let cancelled = sqlx::query(
        "UPDATE postrunner.outbox SET status = 'cancelled'
          WHERE idempotency_key IN ('demo-3', 'demo-6', 'demo-9') AND status IN ('queued', 'retrying')",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!("  cancelled  {cancelled} messages with an UPDATE");

    let refused = sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body) VALUES ('acme', 'q1-founders', 'not-an-address', 'Hi', 'x')",
    )
    .execute(pool)
    .await
    .expect_err("the outbox refuses a malformed address");
    println!(
        "  refused    a bad INSERT: {}",
        refused
            .as_database_error()
            .map_or(refused.to_string(), |e| e.message().to_owned())
    );
    Ok(())
}

async fn status_counts(pool: &PgPool) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status::text, count(*) FROM postrunner.outbox GROUP BY 1")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

fn line(counts: &BTreeMap<String, i64>) -> String {
    let always = [
        "queued",
        "sending",
        "sent",
        "retrying",
        "failed",
        "cancelled",
        "suppressed",
    ];
    // What providers report back, and sends held as uncertain, appear once there are any.
    let reported = ["uncertain", "delivered", "bounced", "complained"];
    always
        .iter()
        .map(|s| (s, counts.get(*s).copied().unwrap_or(0)))
        .chain(reported.iter().filter_map(|s| counts.get(*s).map(|n| (s, *n))))
        .map(|(s, n)| format!("{s} {n:>5}"))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The providers' part of the feedback loop, played for sg-main: every message it sent
/// is reported back to a `postrunner web` on a local port as SendGrid would, signed:
/// delivered, bounced (the stale addresses) or a spam report. postrunner verifies each
/// request, stores the events, suppresses the recipients and pauses what bounces too
/// much.
async fn feedback(pool: &PgPool, web_base: &str) -> anyhow::Result<()> {
    const VARIABLE: &str = "POSTRUNNER_DEMO_SENDGRID_WEBHOOK_KEY";
    let signer = crate::commands::signing::SendGridSigner::generate()?;
    std::env::set_var(VARIABLE, signer.public_key());
    sqlx::query("UPDATE postrunner.providers SET webhook_secret_env = $1 WHERE name = 'sg-main'")
        .bind(VARIABLE)
        .execute(pool)
        .await?;
    let url = format!("{web_base}/webhooks/sg-main");

    let sent: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, to_address, provider_message_id FROM postrunner.outbox WHERE provider = 'sg-main' AND status = 'sent' ORDER BY sent_at",
    )
    .fetch_all(pool)
    .await?;
    let client = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let mut stored = 0;
    for chunk in sent.chunks(100) {
        let batch: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(id, to, provider_id)| {
                let mut event = serde_json::json!({"email": to, "timestamp": now, "sg_event_id": uuid::Uuid::new_v4().to_string(),
                    "sg_message_id": provider_id, "postrunner_id": id.to_string()});
                let fields = if to.starts_with("bounce-") {
                    serde_json::json!({"event": "bounce", "type": "bounce", "status": "5.1.1",
                                       "reason": "550 5.1.1 The email account that you tried to reach does not exist"})
                } else if to.starts_with("complain-") {
                    serde_json::json!({"event": "spamreport"})
                } else {
                    serde_json::json!({"event": "delivered", "response": "250 2.0.0 OK"})
                };
                event.as_object_mut().expect("an object").extend(fields.as_object().expect("an object").clone());
                event
            })
            .collect();
        let body = serde_json::Value::Array(batch).to_string();
        let mut request = client.post(&url).body(body.clone());
        for (name, value) in signer.headers(now, &body) {
            request = request.header(name, value);
        }
        let answer: serde_json::Value = request.send().await?.error_for_status()?.json().await?;
        stored += answer["stored"].as_i64().unwrap_or(0);
    }
    println!(
        "  >>> sg-main reports back: {stored} events for its {} messages, through postrunner web (signed webhooks)",
        sent.len()
    );
    Ok(())
}
