//! `postrunner bench verify`: how long `postrunner verify` takes over a database the size
//! of months of an agency's sending: `--messages` sent messages (default 1M) from 1,200
//! addresses paced at 50 a day each, with their ledger rows and a delivered event each,
//! a hard bounce for one in 40, suppressions made after the sends, erased people, a
//! mailbox group limit, and a backlog still queued through the real INSERT. The history
//! is consistent, so verify must find nothing; the figure is its time.

use std::time::Instant;

use anyhow::Context as _;

use super::percentile;
use crate::config::BenchVerifyArgs;

/// The configuration: 3 clients, 4 providers, 1,200 addresses at 50 a day.
const SETUP: &str = "
INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ('c1', 'UTC', false), ('c2', 'America/New_York', false), ('c3', 'Europe/Paris', false);
INSERT INTO postrunner.directions (client, name) SELECT c.name, 'd' || i FROM postrunner.clients c, generate_series(1, 4) i;
INSERT INTO postrunner.providers (name, kind, price_per_1000, monthly_fee, per_minute) VALUES
    ('sg', 'log', 0.375, 15, 600), ('mg', 'log', 0.70, 35, 600), ('ses', 'log', 0.10, 0, 600), ('pm', 'log', 1.25, 15, 600);
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
SELECT 's' || i || '@c' || (1 + i % 3) || '.test', (ARRAY['sg','mg','ses','pm'])[1 + i % 4], 'c' || (1 + i % 3), 50
  FROM generate_series(0, 1199) i;
INSERT INTO postrunner.mailbox_group_limits (client, mailbox_group, per_hour, per_day) VALUES ('c1', 'google', 2000, 30000);
";

/// Message i goes from address i % 1200, one pacing slot (24 h / 50) after that
/// address's previous one, so the whole history keeps every limit.
const HISTORY: &str = "
WITH m AS (
    SELECT i, gen_random_uuid() AS id, i % 1200 AS a,
           now() - interval '1 day' - make_interval(secs => ($1 / 1200 - i / 1200) * 1728.0) AS at
      FROM generate_series(0, $1 - 1) i
),
o AS (
    INSERT INTO postrunner.outbox (id, job_id, client, direction, to_address, subject, text_body, status, attempts,
                                   provider, from_address, provider_message_id, sent_at, created_at)
    SELECT m.id, -1 - m.i, 'c' || (1 + m.a % 3), 'd' || (1 + m.i % 4), 'r' || m.i || '@example.org', 'Hello', 'Hi',
           CASE WHEN m.i % 40 = 0 THEN 'bounced' ELSE 'delivered' END::postrunner.message_status, 1,
           (ARRAY['sg','mg','ses','pm'])[1 + m.a % 4], 's' || m.a || '@c' || (1 + m.a % 3) || '.test', 'pm-' || m.i,
           m.at, m.at
      FROM m
),
l AS (
    INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address, day,
                                          reserved_at, outcome, finished_at, mailbox_group)
    SELECT m.id, -1 - m.i, 1, 'c' || (1 + m.a % 3), 'd' || (1 + m.i % 4), (ARRAY['sg','mg','ses','pm'])[1 + m.a % 4],
           's' || m.a || '@c' || (1 + m.a % 3) || '.test',
           (m.at AT TIME ZONE (ARRAY['UTC', 'America/New_York', 'Europe/Paris'])[1 + m.a % 3])::date, m.at, 'sent',
           m.at, CASE WHEN m.a % 3 = 0 AND m.i % 3 = 0 THEN 'google' END
      FROM m
)
INSERT INTO postrunner.events (provider, dedupe_key, kind, bounce_class, recipient, message_id, client,
                               provider_message_id, occurred_at)
SELECT (ARRAY['sg','mg','ses','pm'])[1 + m.a % 4], 'e' || m.i,
       CASE WHEN m.i % 40 = 0 THEN 'bounced' ELSE 'delivered' END::postrunner.event_kind,
       CASE WHEN m.i % 40 = 0 THEN 'hard' END::postrunner.bounce_class,
       'r' || m.i || '@example.org', m.id, 'c' || (1 + m.a % 3), 'pm-' || m.i, m.at + interval '5 seconds'
  FROM m
";

pub async fn run(database_url: Option<String>, args: BenchVerifyArgs) -> anyhow::Result<()> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_verify").await?;
    let pool = postrunner_schema::pool(&url, 2, "postrunner-bench")?;
    let started = Instant::now();
    sqlx::raw_sql(SETUP).execute(&pool).await.context("configuring")?;
    let mut tx = pool.begin().await?;
    // The history needs no jobs, triggers or checks: it is what they would have left.
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::query(HISTORY)
        .bind(args.messages)
        .execute(&mut *tx)
        .await
        .context("filling the history")?;
    // The hard bounces' suppressions, made after their sends.
    sqlx::query(
        "INSERT INTO postrunner.suppressions (client, address, reason, created_at)
         SELECT client, to_address, 'hard_bounce', sent_at + interval '1 minute'
           FROM postrunner.outbox WHERE status = 'bounced'",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // People erased since (the real erasure), and a backlog (the real INSERT).
    sqlx::query(
        "SELECT postrunner.erase_recipient('c' || (1 + (i % 1200) % 3), 'r' || i || '@example.org')
           FROM generate_series(7, $1 - 1, greatest($1 / $2, 1)) i",
    )
    .bind(args.messages)
    .bind(args.erasures)
    .execute(&pool)
    .await
    .context("erasing")?;
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'c' || (1 + i % 3), 'd' || (1 + i % 4), 'q' || i || '@example.org', 'Hello', 'Hi'
           FROM generate_series(1, $1) i",
    )
    .bind(args.queued)
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    let setup_secs = started.elapsed().as_secs_f64();

    let mut times = Vec::with_capacity(args.runs);
    let mut last = None;
    for _ in 0..args.runs {
        let report = crate::verify::verify(&pool).await?;
        times.push(report.elapsed.as_secs_f64());
        last = Some(report);
    }
    times.sort_by(f64::total_cmp);
    let report = last.context("no run")?;

    println!("postrunner bench verify");
    println!(
        "  fixture: {} sent messages (a ledger row and an event each) from 1,200 addresses over {:.0} days, {} queued, {} erased, in {setup_secs:.0} s",
        args.messages,
        args.messages as f64 / 1200.0 / 50.0,
        args.queued,
        args.erasures
    );
    println!(
        "  verify   {} runs  p50 {:>6.2} s  max {:>6.2} s  violations {}  explained {}",
        times.len(),
        percentile(&times, 50.0),
        times.last().copied().unwrap_or_default(),
        report.violations().count(),
        report.explained()
    );
    anyhow::ensure!(report.holds(), "the fixture should keep every promise:\n{report}");
    println!("verify_p50_secs={:.2}", percentile(&times, 50.0));
    Ok(())
}
