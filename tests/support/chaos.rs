//! The chaos suite's deployment and ledger (tests/chaos.rs, bin/chaos): a private
//! PostgreSQL behind a proxy the suite controls, workers and schedulers as real
//! processes, an application inserting in real time, and the counts each fault is
//! judged by.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postrunner_schema::local_cluster::{with_database, LocalCluster};
use postrunner_test_db::pgbouncer::PgBouncer;
use postrunner_test_db::proxy::TcpProxy;
use sqlx::PgPool;
use uuid::Uuid;

use super::db::{count, exec};
use super::fake_provider::{FakeProvider, Kind};
use super::run::Process;

/// How long the faults last: `bin/chaos --quick` (CI) or the full run.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// The full run (bin/chaos), not the quick one (CI).
    pub full: bool,
    /// How long a repeated fault (worker kills) goes on.
    pub kills_for: Duration,
    /// How long a transaction beside the run stays open.
    pub held_for: Duration,
    /// How long one worker's clock stays stepped each way.
    pub stepped_for: Duration,
}

impl Pace {
    /// `CHAOS_FULL=1` (bin/chaos without --quick): the durations.
    pub fn from_env() -> Self {
        if std::env::var("CHAOS_FULL").is_ok_and(|v| v == "1") {
            Self {
                full: true,
                kills_for: Duration::from_secs(300),
                held_for: Duration::from_secs(600),
                stepped_for: Duration::from_secs(60),
            }
        } else {
            Self {
                full: false,
                kills_for: Duration::from_secs(40),
                held_for: Duration::from_secs(45),
                stepped_for: Duration::from_secs(20),
            }
        }
    }
}

/// Workers' lease: a killed worker's jobs come back within it (plus the rescue's poll).
pub const LEASE: Duration = Duration::from_secs(20);

/// The simulated providers' key, and the variable the workers read it from.
const KEY: &str = "chaos-provider-key";
const KEY_VARIABLE: &str = "POSTRUNNER_CHAOS_PROVIDER_KEY";

/// How long each simulated provider takes to answer: sends are in flight when a fault
/// strikes.
const PROVIDER_LATENCY: Duration = Duration::from_millis(200);

/// Whether postrunner reaches PostgreSQL through PgBouncer in transaction mode
/// (`bin/chaos --pgbouncer` sets `CHAOS_PGBOUNCER=1`).
pub fn through_pgbouncer() -> bool {
    std::env::var("CHAOS_PGBOUNCER").is_ok_and(|v| v == "1")
}

/// Everything one scenario runs: the database (direct for the suite, through the proxy
/// for postrunner, and through PgBouncer behind the proxy with `CHAOS_PGBOUNCER=1`), 4
/// simulated providers, 4 workers and 2 schedulers.
pub struct Deployment {
    pub cluster: Arc<LocalCluster>,
    pub proxy: TcpProxy,
    /// PgBouncer in transaction mode between the proxy and PostgreSQL, with
    /// `CHAOS_PGBOUNCER=1`: the processes run with `--pooling transaction` and poll (no
    /// direct URL).
    pub pgbouncer: Option<PgBouncer>,
    /// The suite's own pool, straight to PostgreSQL.
    pub pool: PgPool,
    /// What postrunner's processes connect to: the proxy.
    pub url: String,
    pub workers: Vec<Process>,
    pub schedulers: Vec<Process>,
    pub providers: Vec<FakeProvider>,
}

impl Deployment {
    /// A private cluster (restarting it disturbs no other test), migrated and set up:
    /// 2 clients, 1,200 addresses over 4 simulated providers (SendGrid, Mailgun,
    /// Postmark, Resend: all but SendGrid can be asked about a send) with live limits
    /// (pacing binds at about 50 sends a second in all, each provider's per-minute rate
    /// near it), then the processes.
    pub async fn start() -> Self {
        let cluster = tokio::task::spawn_blocking(LocalCluster::start)
            .await
            .unwrap()
            .expect("a private cluster");
        let direct = with_database(&cluster.admin_url(), "postgres");
        postrunner_schema::migrate::run(&direct).await.unwrap();
        let pool = postrunner_schema::pool(&direct, 4, "postrunner-chaos").unwrap();
        let mut providers = Vec::new();
        for kind in [Kind::SendGrid, Kind::Mailgun, Kind::Postmark, Kind::Resend] {
            let provider = FakeProvider::start(kind, KEY).await;
            provider.set_latency(PROVIDER_LATENCY);
            providers.push(provider);
        }
        set_up(&pool, &providers).await;
        let pgbouncer = through_pgbouncer().then(|| PgBouncer::start(&direct, 4));
        let behind = pgbouncer.as_ref().map_or(direct.clone(), |b| b.url(&direct));
        let proxy = TcpProxy::in_front_of(&behind).await;
        let url = proxy.url(&behind);
        let mut deployment = Self {
            cluster: Arc::new(cluster),
            proxy,
            pgbouncer,
            pool,
            url,
            workers: Vec::new(),
            schedulers: Vec::new(),
            providers,
        };
        for _ in 0..4 {
            let worker = deployment.worker();
            deployment.workers.push(worker);
        }
        for _ in 0..2 {
            let scheduler = Process::spawn_with_env(&deployment.url, &["scheduler"], &deployment.env(&[]));
            deployment.schedulers.push(scheduler);
        }
        deployment
    }

    /// A worker process with the suite's lease.
    pub fn worker(&self) -> Process {
        self.worker_with_env(&[])
    }

    /// A worker that serves its metrics on `metrics` (a free port).
    pub fn worker_with_metrics(&self, metrics: u16) -> Process {
        let lease = format!("{}s", LEASE.as_secs());
        let bind = format!("127.0.0.1:{metrics}");
        Process::spawn_with_env(
            &self.url,
            &[
                "worker",
                "--concurrency",
                "16",
                "--lease",
                &lease,
                "--heartbeat",
                "5s",
                "--metrics-bind",
                &bind,
            ],
            &self.env(&[]),
        )
    }

    /// A worker whose wall clock is `clock`'s (the monotonic clock, which timers use,
    /// stays the machine's, as with a real clock step).
    pub fn worker_with_clock(&self, clock: &SteppedClock) -> Process {
        let file = clock.file.to_str().expect("a UTF-8 path");
        self.worker_with_env(&[
            ("LD_PRELOAD", SteppedClock::LIBRARY),
            ("FAKETIME_TIMESTAMP_FILE", file),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ])
    }

    fn worker_with_env(&self, env: &[(&str, &str)]) -> Process {
        let lease = format!("{}s", LEASE.as_secs());
        Process::spawn_with_env(
            &self.url,
            &["worker", "--concurrency", "16", "--lease", &lease, "--heartbeat", "5s"],
            &self.env(env),
        )
    }

    /// A process's environment: `extra`, the providers' key, and the pooling.
    fn env<'a>(&self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = extra.to_vec();
        env.push((KEY_VARIABLE, KEY));
        if self.pgbouncer.is_some() {
            env.push(("POSTRUNNER_POOLING", "transaction"));
        }
        env
    }

    /// Stops every process (SIGTERM, as a deploy would).
    pub async fn stop(self) {
        for process in self.workers.iter().chain(&self.schedulers) {
            if process.child.id().is_some() {
                process.signal("TERM");
            }
        }
        for mut process in self.workers.into_iter().chain(self.schedulers) {
            let _ = tokio::time::timeout(Duration::from_secs(15), process.child.wait()).await;
        }
    }
}

/// A wall clock the suite steps, for the processes started with it: libfaketime (Debian's
/// `faketime`, installed by bin/setup) preloaded, reading its offset from a file at most
/// once a second.
pub struct SteppedClock {
    file: std::path::PathBuf,
}

impl SteppedClock {
    const LIBRARY: &'static str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

    /// A clock that starts true.
    pub fn new() -> Self {
        assert!(
            std::path::Path::new(Self::LIBRARY).exists(),
            "libfaketime is missing: bin/setup installs it (apt-get install faketime)"
        );
        let file = std::env::temp_dir().join(format!("postrunner-clock-{}", Uuid::new_v4().simple()));
        let clock = Self { file };
        clock.step_to(0);
        clock
    }

    /// From the next second on, the clock reads true time plus `offset_secs`.
    pub fn step_to(&self, offset_secs: i64) {
        std::fs::write(&self.file, format!("{offset_secs:+}\n")).unwrap();
    }
}

impl Drop for SteppedClock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

async fn set_up(pool: &PgPool, providers: &[FakeProvider]) {
    let [sendgrid, mailgun, postmark, resend] = providers else {
        panic!("four providers")
    };
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.providers (name, kind, endpoint, secret_env, per_minute) VALUES
                 ('p1', 'sendgrid', '{}', '{KEY_VARIABLE}', 900), ('p2', 'mailgun', '{}', '{KEY_VARIABLE}', 900),
                 ('p3', 'postmark', '{}', '{KEY_VARIABLE}', 900), ('p4', 'resend', '{}', '{KEY_VARIABLE}', 900);",
            sendgrid.url, mailgun.url, postmark.url, resend.url
        ),
    )
    .await;
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false), ('globex', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd'), ('globex', 'd');
         -- A held send is asked about every 5 s, and decided after 30 s (default 60 s
         -- and 15 minutes), so that a scenario ends in minutes.
         UPDATE postrunner.settings SET value = '5' WHERE name = 'uncertain_lookup_secs';
         UPDATE postrunner.settings SET value = '30' WHERE name = 'uncertain_wait_secs';
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         SELECT 's' || i || '@' || c || '.test', 'p' || (1 + i % 4), c, 3600
           FROM generate_series(1, 600) AS i, unnest(ARRAY['acme', 'globex']) AS c;
         -- Suppressed recipients the application writes to anyway: never mailed.
         INSERT INTO postrunner.suppressions (client, address, reason)
         SELECT c, 'suppressed' || i || '@example.org', 'manual'
           FROM generate_series(1, 20) AS i, unnest(ARRAY['acme', 'globex']) AS c;",
    )
    .await;
}

/// An application inserting one message every `pause` or so (one autocommit INSERT each,
/// for `clients` in turn, direction `d`, every 25th to `suppressed<n>@example.org`),
/// straight to PostgreSQL, keeping the ids it saw committed. The chaos suite runs it at
/// about 40 a second, the HA test at about 150.
pub struct Application {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Uuid>>,
}

impl Application {
    pub fn start(pool: PgPool, clients: &'static [&'static str], pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut acknowledged = Vec::new();
                let mut n: i64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let client = clients[n as usize % clients.len()];
                    let to = if n % 25 == 0 {
                        format!("suppressed{}@example.org", 1 + n % 20)
                    } else {
                        format!("to{n}@example.org")
                    };
                    let inserted = sqlx::query_scalar(
                        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
                         VALUES ($1, 'd', $2, 'Hello', 'Hi') RETURNING id",
                    )
                    .bind(client)
                    .bind(&to)
                    .fetch_one(&pool)
                    .await;
                    match inserted {
                        Ok(id) => acknowledged.push(id),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                    tokio::time::sleep(pause).await;
                }
                acknowledged
            }
        });
        Self { stop, task }
    }

    /// Stops inserting; the ids PostgreSQL acknowledged.
    pub async fn stop(self) -> Vec<Uuid> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

const FINAL: &str = "('sent', 'delivered', 'bounced', 'complained', 'failed', 'suppressed', 'cancelled')";

/// What a scenario is judged by, from the database once the messages are final.
#[derive(Debug)]
pub struct Ledger {
    pub fault: String,
    pub messages: usize,
    pub lost: i64,
    pub unsent: i64,
    pub overshoots: usize,
    pub suppressed_mailed: usize,
    pub duplicates: i64,
    pub explained: usize,
    /// Sends held as uncertain (a worker died or lost the database mid-send) and since
    /// decided by evidence or the duplicate policy.
    pub held: i64,
    /// Held sends still undecided.
    pub uncertain: i64,
    pub recovery: Duration,
    pub other_violations: Vec<String>,
}

impl Ledger {
    /// Waits up to `patience` for every acknowledged message to be final, then counts.
    pub async fn settle(
        pool: &PgPool,
        fault: &str,
        acknowledged: &[Uuid],
        recovery: Duration,
        patience: Duration,
    ) -> Self {
        let unfinished = format!("SELECT count(*) FROM postrunner.outbox WHERE status::text NOT IN {FINAL}");
        let deadline = Instant::now() + patience;
        while count(pool, &unfinished).await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let present: i64 = sqlx::query_scalar("SELECT count(*) FROM postrunner.outbox WHERE id = ANY ($1)")
            .bind(acknowledged)
            .fetch_one(pool)
            .await
            .unwrap();
        let report = postrunner::verify::verify(pool).await.expect("verify runs");
        let counts = report.counts();
        let limits = postrunner::verify::LIMIT_PROMISES;
        let overshoots = limits.iter().map(|l| counts.get(l).copied().unwrap_or(0)).sum();
        let other_violations = counts
            .iter()
            .filter(|(promise, _)| {
                !limits.contains(promise) && **promise != "suppressed_recipient_mailed" && **promise != "duplicate_send"
            })
            .map(|(promise, n)| format!("{promise}: {n}"))
            .collect();
        Self {
            fault: if through_pgbouncer() {
                format!("{fault}, through PgBouncer")
            } else {
                fault.to_owned()
            },
            messages: acknowledged.len(),
            lost: acknowledged.len() as i64 - present,
            unsent: count(pool, &unfinished).await,
            overshoots,
            suppressed_mailed: counts.get("suppressed_recipient_mailed").copied().unwrap_or(0),
            duplicates: count(
                pool,
                "SELECT count(*) FROM (SELECT message_id FROM postrunner.send_attempts
                  WHERE outcome = 'sent' GROUP BY 1 HAVING count(*) > 1) twice",
            )
            .await,
            explained: report.explained(),
            held: count(
                pool,
                "SELECT count(*) FROM postrunner.send_attempts WHERE resolution IS NOT NULL",
            )
            .await,
            uncertain: count(
                pool,
                "SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'uncertain'",
            )
            .await,
            recovery,
            other_violations,
        }
    }

    /// One row of bin/chaos's table (it collects the lines that start with `CHAOS|`).
    pub fn row(&self) -> String {
        format!(
            "CHAOS| {} | {} | {} | {} | {} | {} | {} ({} explained) | {} ({} undecided) | {:.1} s | {}",
            self.fault,
            self.messages,
            self.lost,
            self.unsent,
            self.overshoots,
            self.suppressed_mailed,
            self.duplicates,
            self.explained,
            self.held,
            self.uncertain,
            self.recovery.as_secs_f64(),
            if self.other_violations.is_empty() {
                "-".to_owned()
            } else {
                self.other_violations.join(", ")
            }
        )
    }

    /// The scenario passes: nothing lost, nothing left unsent, no limit overshot, no
    /// suppressed person mailed, no duplicate beyond what the uncertain path explains,
    /// and no other promise broken.
    pub fn assert_holds(&self) {
        println!("{}", self.row());
        assert_eq!(self.lost, 0, "{self:?}");
        assert_eq!(self.unsent, 0, "{self:?}");
        assert_eq!(self.overshoots, 0, "{self:?}");
        assert_eq!(self.suppressed_mailed, 0, "{self:?}");
        assert!(self.duplicates as usize <= self.explained, "{self:?}");
        assert_eq!(self.uncertain, 0, "{self:?}");
        assert!(self.other_violations.is_empty(), "{self:?}");
    }
}

/// How long from now until the count of sent messages moves (a fault's recovery);
/// the suite's own queries may fail while the database is away.
pub async fn until_a_send(pool: &PgPool, patience: Duration) -> Duration {
    let started = Instant::now();
    let sent = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM postrunner.send_attempts WHERE outcome = 'sent'")
            .fetch_one(pool)
            .await
            .ok()
    };
    let mut before = None;
    while started.elapsed() < patience {
        match (before, sent().await) {
            (None, now) => before = now,
            (Some(b), Some(now)) if now > b => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// The mean latency of the routed claims of the worker serving its metrics on `port`,
/// over the next `during`: the change of `postrunner_claim_duration_seconds` `_sum` over
/// that of `_count` (docs/metrics.md).
pub async fn claim_latency(port: u16, during: Duration) -> Duration {
    let read = || async {
        let text = super::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("the worker serves its metrics")
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            value("postrunner_claim_duration_seconds_sum{queue=\"routed\"}"),
            value("postrunner_claim_duration_seconds_count{queue=\"routed\"}"),
        )
    };
    let (sum_before, count_before) = read().await;
    tokio::time::sleep(during).await;
    let (sum_after, count_after) = read().await;
    assert!(count_after > count_before, "the worker claimed in {during:?}");
    Duration::from_secs_f64((sum_after - sum_before) / (count_after - count_before))
}
