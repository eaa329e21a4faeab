//! `postrunner bench metrics`: how long a scrape takes. The database endpoint is read
//! uncached (`--database-metrics-cache 0s`, so every scrape is a real read) from a
//! `postrunner web` process over a database the size of a busy deployment: 1,200 sender
//! addresses, `--outbox` messages (default 1M, a few percent still queued) and
//! `--ledger` reservations (default 3M, over 60 days, rolled up as the rollup task
//! does, the last hour not). Then the per-process endpoint of the same process.

use std::time::Instant;

use anyhow::Context as _;

use super::load::WebProcess;
use super::percentile;
use crate::config::BenchMetricsArgs;

/// The fixture: everything at once, with triggers off (session_replication_role) for
/// the history, which needs no jobs; the queued messages through the real INSERT.
const SETUP: &str = "
INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ('c1', 'UTC', false), ('c2', 'America/New_York', false), ('c3', 'Europe/Paris', false);
INSERT INTO postrunner.directions (client, name) SELECT c.name, 'd' || i FROM postrunner.clients c, generate_series(1, 4) i;
INSERT INTO postrunner.providers (name, kind, price_per_1000, monthly_fee, monthly_budget) VALUES
    ('sg', 'log', 0.375, 15, 400), ('mg', 'log', 0.70, 35, 400), ('ses', 'log', 0.10, 0, 100), ('pm', 'log', 1.25, 15, NULL);
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
SELECT 's' || i || '@c' || (1 + i % 3) || '.test', (ARRAY['sg','mg','ses','pm'])[1 + i % 4], 'c' || (1 + i % 3), 50
  FROM generate_series(0, 1199) i;
UPDATE postrunner.address_usage SET day = current_date, sent_on_day = 20;
INSERT INTO postrunner.provider_probes (provider, latency_ms, ok) SELECT name, 40, true FROM postrunner.providers;
";

pub async fn run(database_url: Option<String>, args: BenchMetricsArgs) -> anyhow::Result<()> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_metrics").await?;
    let pool = postrunner_schema::pool(&url, 4, "postrunner-bench")?;
    let started = Instant::now();
    let rolled = fill(&pool, &args).await?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    let setup_secs = started.elapsed().as_secs_f64();

    let web = WebProcess::start_with(&url, 4, &[], &["--database-metrics-cache", "0s"]).await?;
    let client = reqwest::Client::new();
    let (database, bytes) = timed_gets(&client, &format!("{}/metrics/database", web.base), args.scrapes).await?;
    let (process, _) = timed_gets(&client, &format!("{}/metrics", web.base), args.scrapes * 5).await?;

    println!("postrunner bench metrics");
    println!(
        "  fixture: 1,200 addresses, {} outbox rows ({} queued), {} ledger rows over 60 days ({} rolled up), in {setup_secs:.0} s",
        args.outbox + args.queued,
        args.queued,
        args.ledger,
        rolled
    );
    println!(
        "  /metrics/database (uncached)  {} scrapes  p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  ({} kB)",
        database.len(),
        percentile(&database, 50.0),
        percentile(&database, 99.0),
        database.last().copied().unwrap_or_default(),
        bytes / 1024
    );
    println!(
        "  /metrics (process)            {} scrapes  p50 {:>6.2} ms  p99 {:>6.2} ms",
        process.len(),
        percentile(&process, 50.0),
        percentile(&process, 99.0)
    );
    println!(
        "database_p99_ms={:.1} process_p99_ms={:.2}",
        percentile(&database, 99.0),
        percentile(&process, 99.0)
    );
    Ok(())
}

/// The fixture: 1,200 addresses, the sent outbox and its ledger over 60 days (written
/// as a replica, without triggers), a week of hard bounces and complaints, queued
/// messages through the real INSERT, then the rollups; how many ledger rows rolled up.
async fn fill(pool: &sqlx::PgPool, args: &BenchMetricsArgs) -> anyhow::Result<i64> {
    sqlx::raw_sql(SETUP).execute(pool).await.context("configuring")?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO postrunner.outbox (id, job_id, client, direction, to_address, subject, text_body, status,
                                        provider, from_address, sent_at, created_at)
         SELECT gen_random_uuid(), -i, 'c' || (1 + i % 3), 'd' || (1 + i % 4), 'r' || i || '@example.org', 'Hello',
                'Hi', 'sent', (ARRAY['sg','mg','ses','pm'])[1 + i % 4], 's' || (i % 1200) || '@c1.test',
                now() - make_interval(secs => i * 5), now() - make_interval(secs => i * 5)
           FROM generate_series(1, $1) i",
    )
    .bind(args.outbox)
    .execute(&mut *tx)
    .await
    .context("filling the outbox")?;
    sqlx::query(
        "INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address,
                                               day, reserved_at, outcome, finished_at)
         SELECT gen_random_uuid(), -i, 1, 'c' || (1 + i % 3), 'd' || (1 + i % 4), (ARRAY['sg','mg','ses','pm'])[1 + i % 4],
                's' || (i % 1200) || '@c1.test', (now() - at)::date, now() - at,
                CASE WHEN i % 50 = 0 THEN 'released' ELSE 'sent' END::postrunner.attempt_outcome, now() - at
           FROM generate_series(1, $1) i, LATERAL (SELECT make_interval(secs => (1 - i::float8 / $1) * 60 * 86400) AS at) t",
    )
    .bind(args.ledger)
    .execute(&mut *tx)
    .await
    .context("filling the ledger")?;
    // Hard bounces and complaints of the last week (through the bad-events index).
    sqlx::query(
        "INSERT INTO postrunner.events (provider, dedupe_key, message_id, client, kind, bounce_class, occurred_at)
         SELECT o.provider, 'b' || o.job_id, o.id, o.client,
                CASE WHEN o.job_id % 7 = 0 THEN 'complained' ELSE 'bounced' END::postrunner.event_kind,
                CASE WHEN o.job_id % 7 = 0 THEN NULL ELSE 'hard' END::postrunner.bounce_class, o.sent_at
           FROM postrunner.outbox o WHERE o.job_id % 40 = 0 AND o.sent_at > now() - interval '7 days'",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Queued messages with their jobs (the real INSERT).
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'c' || (1 + i % 3), 'd' || (1 + i % 4), 'q' || i || '@example.org', 'Hello', 'Hi'
           FROM generate_series(1, $1) i",
    )
    .bind(args.queued)
    .execute(pool)
    .await?;
    let rolled: i64 = sqlx::query_scalar("SELECT postrunner.rollup_sends()")
        .fetch_one(pool)
        .await?;
    Ok(rolled)
}

/// `n` GETs of `url`, one after the other: each one's milliseconds, sorted, and the
/// size of the last body.
async fn timed_gets(client: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut millis = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        anyhow::ensure!(response.status() == 200, "GET {url}: {}", response.status());
        bytes = response.bytes().await?.len();
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    Ok((millis, bytes))
}
