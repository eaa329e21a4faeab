//! `postrunner bench lanes`: the routed claim's latency with few lanes and with very
//! many (issue 18: one client's 20,000 lanes once made every claim a sequential scan of
//! them, ~240 ms). Per lane count, in a fresh database: client `big` with that many
//! lanes (directions whose window follows the recipient, times the canonical time
//! zones), `--messages` waiting over them (the same backlog whatever the lane count, so
//! only the lanes differ), and client `small` with one lane of 10 messages;
//! then `--claims` routed claims of `--limit` messages each, one transaction each, as a
//! worker makes them. Prints the claim latency (p50, p99) per lane count, and after how
//! many claims the small client's first message went.

use std::time::Instant;

use anyhow::Context as _;

use super::percentile;
use crate::config::BenchLanesArgs;

const SETUP: &str = "
INSERT INTO postrunner.clients (name, time_zone, bulk) VALUES ('big', 'UTC', false), ('small', 'UTC', false);
INSERT INTO postrunner.providers (name, kind) VALUES ('p', 'log');
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
SELECT 's' || i || '@big.test', 'p', 'big', 10000000 FROM generate_series(1, 200) i;
INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit) VALUES ('s@small.test', 'p', 'small', 50);
INSERT INTO postrunner.directions (client, name) VALUES ('small', 'only');
";

struct Figures {
    lanes: i64,
    p50_ms: f64,
    p99_ms: f64,
    small_after: Option<usize>,
}

pub async fn run(database_url: Option<String>, args: BenchLanesArgs) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for &lanes in &args.lanes {
        figures.push(one(database_url.clone(), &args, i64::from(lanes)).await?);
    }
    println!("postrunner bench lanes");
    println!(
        "  {} routed claims of up to {} messages per lane count, one transaction each",
        args.claims, args.limit
    );
    println!("      lanes   p50 ms   p99 ms   small client served after");
    for f in &figures {
        println!(
            "  {:>9} {:>8.2} {:>8.2}   {}",
            f.lanes,
            f.p50_ms,
            f.p99_ms,
            f.small_after
                .map_or_else(|| "never".to_owned(), |n| format!("{n} claim(s)"))
        );
    }
    let line: Vec<String> = figures
        .iter()
        .map(|f| format!("claim_p50_ms_{}={:.2}", f.lanes, f.p50_ms))
        .collect();
    println!("{}", line.join(" "));
    Ok(())
}

async fn one(database_url: Option<String>, args: &BenchLanesArgs, lanes: i64) -> anyhow::Result<Figures> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_lanes").await?;
    let pool = postrunner_schema::pool(&url, 2, "postrunner-bench")?;
    sqlx::raw_sql(SETUP).execute(&pool).await.context("configuring")?;
    let zones: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.time_zones")
        .fetch_one(&pool)
        .await?;
    let zones = zones.min(lanes);
    let directions = (lanes + zones - 1) / zones;
    sqlx::query(
        "INSERT INTO postrunner.directions (client, name, window_basis)
         SELECT 'big', 'd' || i, 'recipient' FROM generate_series(1, $1) i",
    )
    .bind(directions)
    .execute(&pool)
    .await?;
    // The same backlog whatever the lane count (so only the lanes differ), spread over
    // exactly `lanes` lanes.
    let messages = lanes.max(args.messages).max(args.claims as i64 * args.limit * 2);
    sqlx::query(
        "WITH z AS (SELECT array_agg(name ORDER BY name) AS names FROM (SELECT name FROM postrunner.time_zones ORDER BY name LIMIT $2) t)
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, recipient_time_zone)
         SELECT 'big', 'd' || (1 + (i % $1) / $2), 'r' || i || '@example.org', 'Hello', 'Hi', z.names[1 + (i % $1) % $2]
           FROM z, generate_series(0, $3 - 1) i",
    )
    .bind(lanes)
    .bind(zones)
    .bind(messages)
    .execute(&pool)
    .await
    .context("filling the backlog")?;
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'small', 'only', 'm' || i || '@example.org', 'Hello', 'Hi' FROM generate_series(1, 10) i",
    )
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.lanes WHERE client = 'big'")
        .fetch_one(&pool)
        .await?;

    let worker = uuid::Uuid::new_v4();
    let mut times = Vec::with_capacity(args.claims);
    let mut small_after = None;
    for n in 1..=args.claims {
        let started = Instant::now();
        let small: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE args -> 'message' ->> 'client' = 'small')
               FROM postrunner.claim_messages($1, $2, gen_random_uuid(), '10 minutes', NULL, false)",
        )
        .bind(args.limit)
        .bind(worker)
        .fetch_one(&pool)
        .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if small > 0 && small_after.is_none() {
            small_after = Some(n);
        }
    }
    times.sort_by(f64::total_cmp);
    pool.close().await;
    Ok(Figures {
        lanes: made,
        p50_ms: percentile(&times, 50.0),
        p99_ms: percentile(&times, 99.0),
        small_after,
    })
}
