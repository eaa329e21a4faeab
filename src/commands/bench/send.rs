//! `postrunner bench send`: messages per second end to end (INSERT -> routed claim ->
//! HTTP send to a local provider simulator -> recorded `sent`), and the memory of the
//! worker that does it.
//!
//! The worker is a real `postrunner worker` process (this binary), so its RSS is the
//! worker's alone; the simulator (SendGrid's wire format, no added latency) runs in this
//! process. Setup: 3 clients, 1,200 sender addresses on one HTTP provider, limits high
//! enough not to bind; the messages are inserted first, then the worker starts and the
//! clock runs until all are `sent`. RSS is the worker's peak (VmHWM).

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::BenchSendArgs;
use postrunner_sim::{FakeProvider, Kind};

const KEY_VARIABLE: &str = "POSTRUNNER_BENCH_PROVIDER_KEY";
const KEY: &str = "bench-key";

pub async fn run(database_url: Option<String>, args: BenchSendArgs) -> anyhow::Result<()> {
    let (_server, url) = super::super::fresh_database(database_url, "postrunner_bench_send").await?;
    let pool = postrunner_schema::pool(&url, 4, "postrunner-bench")?;
    let simulator = FakeProvider::start(Kind::SendGrid, KEY).await;
    prepare(&pool, &simulator.url, args.messages).await?;

    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let metrics_flags = if args.metrics {
        vec!["--metrics-bind".to_owned(), format!("127.0.0.1:{metrics_port}")]
    } else {
        Vec::new()
    };
    let started = Instant::now();
    let mut worker = start_worker(&url, &args, &metrics_flags)?;
    let pid = worker.id().context("the worker's pid")?;
    // Prometheus's part: a scrape a second while the worker sends.
    let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let scraper = args.metrics.then(|| {
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{metrics_port}/metrics");
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(response) = client.get(&url).send().await {
                    if response.status().is_success() && response.bytes().await.is_ok() {
                        scrapes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        })
    });
    wait_until_sent(&pool, args.messages, &mut worker, started).await?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    let (peak_kb, now_kb) = memory_kb(pid)?;
    let cpu = cpu_seconds(pid)?;
    // SIGTERM for a clean stop.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(15), worker.wait()).await;

    let per_sec = f64::from(args.messages) / secs;
    let requests = simulator.received().len();
    println!("postrunner bench send");
    println!(
        "  {} messages, 1 worker process (concurrency {}, prefetch {}), 1,200 addresses, SendGrid simulator",
        args.messages, args.concurrency, args.prefetch
    );
    println!("  end to end      {secs:>8.2} s   {per_sec:>8.0} msgs/s   ({requests} HTTP requests)");
    if args.metrics {
        println!(
            "  metrics         served on --metrics-bind, {} scrapes of /metrics during the run",
            scrapes.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    println!(
        "  worker memory   peak RSS {:.1} MB, at the end {:.1} MB",
        peak_kb as f64 / 1024.0,
        now_kb as f64 / 1024.0
    );
    println!(
        "  worker CPU      {cpu:.2} s user+system, {:.1} ms per 1,000 messages",
        cpu * 1_000_000.0 / f64::from(args.messages)
    );
    println!(
        "msgs_per_sec={per_sec:.0} rss_mb={:.1} worker_cpu_ms_per_1000={:.1}",
        peak_kb as f64 / 1024.0,
        cpu * 1_000_000.0 / f64::from(args.messages)
    );
    Ok(())
}

/// The process's peak and current resident set size, in kB (Linux /proc).
/// CPU seconds (user + system) the process has used: fields 14 and 15 of
/// /proc/<pid>/stat, in clock ticks of 1/100 s (Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading the worker's CPU time")?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Ok((ticks(11) + ticks(12)) as f64 / 100.0)
}

fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the worker's memory")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}

/// Three clients, 1,200 addresses on the simulator, `messages` queued, VACUUM ANALYZE.
async fn prepare(pool: &sqlx::PgPool, simulator_url: &str, messages: u32) -> anyhow::Result<()> {
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.clients (name) VALUES ('c1'), ('c2'), ('c3');
         INSERT INTO postrunner.directions (client, name) SELECT name, 'd1' FROM postrunner.clients;
         INSERT INTO postrunner.providers (name, kind, endpoint, secret_env)
         VALUES ('sim', 'sendgrid', '{}', '{KEY_VARIABLE}');
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 's' || i || '@c' || (1 + i % 3) || '.test', 'sim', 'c' || (1 + i % 3), 10000000
           FROM generate_series(0, 1199) AS i;",
        simulator_url
    ))
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'c' || (1 + i % 3), 'd1', 'r' || i || '@example.org', 'Hello', 'Hi there'
           FROM generate_series(1, $1) AS i",
    )
    .bind(messages as i32)
    .execute(pool)
    .await
    .context("enqueueing")?;
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// A `postrunner worker` process on `url`, signing unsubscribe links as in production.
fn start_worker(url: &str, args: &BenchSendArgs, metrics_flags: &[String]) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(std::env::current_exe()?)
        .args(metrics_flags)
        .args([
            "worker",
            "--concurrency",
            &args.concurrency.to_string(),
            "--prefetch",
            &args.prefetch.to_string(),
            // Bulk clients: every message is signed, as in production.
            "--unsubscribe-url",
            "https://unsubscribe.bench.test",
        ])
        .env("DATABASE_URL", url)
        .env(KEY_VARIABLE, KEY)
        .env(
            crate::unsubscribe::KEY_VARIABLE,
            "bench-unsubscribe-key-of-at-least-32-bytes",
        )
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting a worker process")
}

/// Waits until every message is sent; fails if the worker exits or 30 minutes pass.
async fn wait_until_sent(
    pool: &sqlx::PgPool,
    messages: u32,
    worker: &mut tokio::process::Child,
    started: Instant,
) -> anyhow::Result<()> {
    loop {
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.outbox WHERE status = 'sent'")
            .fetch_one(pool)
            .await?;
        if sent >= i64::from(messages) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "not every message was sent within 30 minutes"
        );
        if let Some(status) = worker.try_wait()? {
            anyhow::bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
