//! `postrunner bench unsubscribe`: RFC 8058 one-click POSTs through the real HTTP
//! endpoint of a `postrunner web` process: each token's signature checked against its
//! message, the recipient suppressed and committed before the 200.

use anyhow::Context as _;

use super::load::{blast, WebProcess};
use crate::config::BenchUnsubscribeArgs;
use crate::unsubscribe::{UnsubscribeKeys, KEY_VARIABLE};

const KEY: &str = "a benchmark's unsubscribe key, 32 bytes or more";

pub async fn run(database_url: Option<String>, args: BenchUnsubscribeArgs) -> anyhow::Result<()> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_unsubscribe").await?;
    let pool = postrunner_schema::pool(&url, 4, "postrunner-bench")?;
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.clients (name) VALUES ('acme');
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'acme', 'd', 'r' || i || '@example.org', 'Hello', 'Hi' FROM generate_series(1, {}) AS i;
         DELETE FROM postrunner.jobs WHERE kind = 'email.send';",
        args.requests
    ))
    .execute(&pool)
    .await
    .context("setting up")?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    let messages: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, to_address FROM postrunner.outbox")
        .fetch_all(&pool)
        .await?;

    let web = WebProcess::start(&url, args.connections, &[(KEY_VARIABLE, KEY)]).await?;
    let keys = UnsubscribeKeys::new(KEY.as_bytes(), None)?;
    let form = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let requests = messages
        .iter()
        .map(|(id, to)| {
            let url = format!("{}/u/{}", web.base, keys.token(*id, "acme", to));
            (url, form.clone(), "List-Unsubscribe=One-Click".to_owned())
        })
        .collect();
    let load = blast(&reqwest::Client::new(), requests, args.concurrency).await?;
    drop(web);

    let suppressed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM postrunner.suppressions WHERE reason = 'unsubscribe'")
            .fetch_one(&pool)
            .await?;
    anyhow::ensure!(
        suppressed as usize == messages.len(),
        "{suppressed} suppressions for {} requests",
        messages.len()
    );
    let requests_per_sec = messages.len() as f64 / load.seconds;
    println!(
        "postrunner bench unsubscribe (one web process, {} connections; client concurrency {})",
        args.connections, args.concurrency
    );
    println!(
        "  POST /u    {:>6} requests  {:>7.2} s  {:>8.0} requests/s p50 {:>6.1} ms  p99 {:>6.1} ms",
        load.latencies.len(),
        load.seconds,
        requests_per_sec,
        load.p(50.0),
        load.p(99.0)
    );
    println!("  every recipient suppressed once ({suppressed})");
    println!("requests_per_sec={requests_per_sec:.0} p99_ms={:.1}", load.p(99.0));
    Ok(())
}
