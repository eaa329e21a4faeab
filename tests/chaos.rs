//! The chaos suite (bin/chaos; `bin/chaos --quick` in CI): a full deployment sending in
//! real time with live limits, then one fault at a time, each judged by `verify` and the
//! suite's own ledger: no message lost, none left unsent, no limit overshot, no
//! suppressed person mailed, no duplicate beyond the documented uncertain path.
//!
//! Each scenario prints one `CHAOS|` row; bin/chaos gathers them into a table.

use std::time::Duration;

use rand::Rng;

use crate::support::chaos::{claim_latency, until_a_send, Application, Deployment, Ledger, Pace, SteppedClock, LEASE};
use crate::support::db::count;
use crate::support::fake_provider::Fault;
use postrunner_test_db::proxy::Accept;

/// How long the messages have to become final once a fault is over.
const PATIENCE: Duration = Duration::from_secs(180);

/// Starts the deployment and the application, lets sending settle for `warm`, runs
/// `fault` (which returns the recovery time it measured), lets the application run on a
/// little, and judges the result.
async fn scenario(name: &str, fault: impl AsyncFnOnce(&mut Deployment) -> Duration) -> Ledger {
    let mut deployment = Deployment::start().await;
    let app = Application::start(deployment.pool.clone(), &["acme", "globex"], Duration::from_millis(25));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let recovery = fault(&mut deployment).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let acknowledged = app.stop().await;
    let ledger = Ledger::settle(&deployment.pool, name, &acknowledged, recovery, PATIENCE).await;
    deployment.stop().await;
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_worker_sigkill_every_10_s() {
    let pace = Pace::from_env();
    let ledger = scenario(
        "SIGKILL the busiest worker every 10 s",
        async move |d: &mut Deployment| {
            let started = std::time::Instant::now();
            let mut slowest = Duration::ZERO;
            while started.elapsed() < pace.kills_for {
                // The worker holding the most jobs: a random one of the four may hold none
                // (through PgBouncer, without LISTEN, the first to poll takes the batch).
                let busiest: Option<i32> = sqlx::query_scalar(
                    "SELECT p.pid FROM postrunner.jobs j JOIN postrunner.processes p ON p.id = j.leased_by
                  WHERE j.state = 'running' AND p.pid = ANY ($1) GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
                )
                .bind(d.workers.iter().map(|w| w.pid()).collect::<Vec<_>>())
                .fetch_optional(&d.pool)
                .await
                .unwrap();
                let victim = busiest
                    .and_then(|pid| d.workers.iter().position(|w| w.pid() == pid))
                    .unwrap_or_else(|| rand::thread_rng().gen_range(0..d.workers.len()));
                let pid = d.workers[victim].pid();
                d.workers[victim].signal("KILL");
                let killed_at = std::time::Instant::now();
                d.workers[victim] = d.worker();
                // Its jobs come back within the lease (and the rescue's poll). Read from the
                // processes table: the `workers` view drops a process 3 heartbeats after its
                // last, before its lease runs out.
                let held = format!(
                    "SELECT count(*) FROM postrunner.jobs j JOIN postrunner.processes p ON p.id = j.leased_by
                  WHERE j.state = 'running' AND p.pid = {pid}"
                );
                let holding = count(&d.pool, &held).await;
                while count(&d.pool, &held).await > 0 && killed_at.elapsed() < LEASE * 3 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                println!(
                    "killed a worker holding {holding} jobs: rescued after {:?}",
                    killed_at.elapsed()
                );
                slowest = slowest.max(killed_at.elapsed());
                assert!(slowest <= LEASE + Duration::from_secs(10), "rescued after {slowest:?}");
                tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed_at.elapsed())).await;
            }
            slowest
        },
    )
    .await;
    ledger.assert_holds();
}

/// PostgreSQL stopped (`mode`: fast or immediate) for 5 s mid-run, then started.
async fn postgres_restart(mode: &'static str) -> Ledger {
    scenario(
        &format!("PostgreSQL restarted ({mode} shutdown)"),
        async move |d: &mut Deployment| {
            let cluster = d.cluster.clone();
            tokio::task::spawn_blocking(move || {
                cluster.stop_server_with(mode).unwrap();
                std::thread::sleep(Duration::from_secs(5));
                cluster.start_server().unwrap();
            })
            .await
            .unwrap();
            until_a_send(&d.pool, PATIENCE).await
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_postgresql_fast_restart() {
    postgres_restart("fast").await.assert_holds();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_postgresql_immediate_restart() {
    postgres_restart("immediate").await.assert_holds();
}

/// The network between postrunner and PostgreSQL gone for `outage`: refused (every
/// connection cut, new ones closed at once) or half-open (packets held, nothing closed).
async fn network_cut(name: &str, outage: Duration, half_open: bool) -> Ledger {
    scenario(name, async move |d: &mut Deployment| {
        if half_open {
            d.proxy.stall(true);
        } else {
            d.proxy.accept(Accept::Close);
            d.proxy.cut();
        }
        tokio::time::sleep(outage).await;
        if half_open {
            // The held connections are dead to their clients by now: cut them as a
            // router's timeout would, and let new ones through.
            d.proxy.cut();
            d.proxy.stall(false);
        } else {
            d.proxy.accept(Accept::Forward);
        }
        until_a_send(&d.pool, PATIENCE).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_network_cut_shorter_than_the_lease() {
    network_cut("network cut for 10 s (refused)", Duration::from_secs(10), false)
        .await
        .assert_holds();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_network_cut_longer_than_the_lease() {
    network_cut("network cut for 40 s (refused)", Duration::from_secs(40), false)
        .await
        .assert_holds();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_network_half_open_for_40_s() {
    network_cut("network half-open for 40 s", Duration::from_secs(40), true)
        .await
        .assert_holds();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_providers_misbehave_for_40_s() {
    // SendGrid answers 429 with Retry-After; Mailgun takes 5 s; Postmark takes the mail
    // and drops the connection before answering; Resend takes it and never answers
    // within the 30 s send timeout. What may have been taken is held as uncertain and
    // decided by a lookup (Mailgun, Postmark, Resend) or the duplicate policy (SendGrid).
    let ledger = scenario(
        "providers: 429 + Retry-After, 5 s answers, dropped connections, no answer",
        async move |d: &mut Deployment| {
            let [sendgrid, mailgun, postmark, resend] = &d.providers[..] else {
                panic!("four providers")
            };
            sendgrid.fail_always(vec![Fault::Reply(
                429,
                r#"{"errors":[{"message":"Too many requests"}]}"#.to_owned(),
                vec![("Retry-After", "5".to_owned())],
            )]);
            mailgun.fail_always(vec![Fault::Slow(Duration::from_secs(5))]);
            postmark.fail_always(vec![Fault::Drop]);
            resend.fail_always(vec![Fault::Slow(Duration::from_secs(60))]);
            tokio::time::sleep(Duration::from_secs(40)).await;
            for provider in &d.providers {
                provider.fail_always(Vec::new());
            }
            until_a_send(&d.pool, PATIENCE).await
        },
    )
    .await;
    ledger.assert_holds();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_clock_step_on_one_worker() {
    // One worker's wall clock jumps 2 minutes ahead, then 4 minutes back (2 behind),
    // as a misconfigured or resynchronised host's would. Every limit, lease and time in
    // the ledger is the database's, so nothing may change but that worker's log stamps:
    // it keeps routing in each phase, and no send is recorded before its reservation or
    // long after it.
    let pace = Pace::from_env();
    let ledger = scenario(
        "one worker's clock stepped 2 min ahead, then 2 min behind",
        async move |d: &mut Deployment| {
            let clock = SteppedClock::new();
            let stepped = d.worker_with_clock(&clock);
            let mut replaced = std::mem::replace(&mut d.workers[0], stepped);
            replaced.signal("TERM");
            let _ = tokio::time::timeout(Duration::from_secs(15), replaced.child.wait()).await;
            let pid = d.workers[0].pid();
            for offset in [120, -120] {
                clock.step_to(offset);
                let routed = jobs_leased_by(&d.pool, pid, pace.stepped_for).await;
                assert!(routed > 0, "the worker {offset:+} s off routed nothing");
            }
            // It really ran on the stepped clock: its last words are stamped 2 minutes
            // behind the machine's.
            d.workers[0].signal("TERM");
            let _ = tokio::time::timeout(Duration::from_secs(15), d.workers[0].child.wait()).await;
            let stopped_at = chrono::Utc::now();
            let last_stamp = d.workers[0]
                .logs()
                .lines()
                .rev()
                .find_map(|line| {
                    line.split_whitespace()
                        .next()?
                        .parse::<chrono::DateTime<chrono::Utc>>()
                        .ok()
                })
                .expect("the worker logged");
            assert!(
                stopped_at - last_stamp > chrono::TimeDelta::seconds(100),
                "last log line at {last_stamp}, stopped at {stopped_at}: the clock was not stepped"
            );
            d.workers[0] = d.worker();
            let misrecorded = count(
                &d.pool,
                "SELECT count(*) FROM postrunner.send_attempts
                  WHERE finished_at < reserved_at OR finished_at > reserved_at + interval '60 seconds'",
            )
            .await;
            assert_eq!(
                misrecorded, 0,
                "sends recorded at the worker's time, not the database's"
            );
            Duration::ZERO
        },
    )
    .await;
    ledger.assert_holds();
}

/// How many distinct jobs the worker `pid` held while sampled every 200 ms for `during`.
async fn jobs_leased_by(pool: &sqlx::PgPool, pid: i32, during: Duration) -> usize {
    let started = std::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    while started.elapsed() < during {
        let held: Vec<i64> = sqlx::query_scalar(
            "SELECT j.id FROM postrunner.jobs j JOIN postrunner.processes p ON p.id = j.leased_by
              WHERE j.state = 'running' AND p.pid = $1",
        )
        .bind(pid)
        .fetch_all(pool)
        .await
        .unwrap();
        seen.extend(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos (bin/chaos): a deployment under a fault for a minute or more"]
async fn chaos_transaction_held_open_beside_the_run() {
    // An application's REPEATABLE READ transaction, idle for 45 s (ten minutes in the
    // full run): no dead row version can be removed meanwhile, by vacuum or by pruning, so
    // every row postrunner updates per send grows a chain of versions. The routed claims
    // of a worker serving its metrics are timed before and at the end. The full run holds
    // them to at most double; the quick one (CI, 45 s, where the growth is within the
    // noise of a shared machine) reports them and judges only the ledger.
    //
    // Measured 2026-12-08 (docs/bench/2026-12-08-chaos.md): 7.7 ms before, 34 ms after 10
    // minutes; the full run fails here. Most of it is the lane's claim index: every job
    // claimed since the transaction began leaves an entry that cannot be removed or
    // marked dead, and each claim of that lane walks them all from the start.
    let pace = Pace::from_env();
    let ledger = scenario(
        &format!("a transaction held open for {} s", pace.held_for.as_secs()),
        async move |d: &mut Deployment| {
            let port = crate::support::free_port();
            d.workers.push(d.worker_with_metrics(port));
            tokio::time::sleep(Duration::from_secs(5)).await;
            let window = Duration::from_secs(20);
            let before = claim_latency(port, window).await;
            let mut holder: sqlx::PgConnection = sqlx::Connection::connect(
                &postrunner_schema::local_cluster::with_database(&d.cluster.admin_url(), "postgres"),
            )
            .await
            .unwrap();
            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM postrunner.outbox")
                .execute(&mut holder)
                .await
                .unwrap();
            tokio::time::sleep(pace.held_for.saturating_sub(window)).await;
            let during = claim_latency(port, window).await;
            let dead = count(
                &d.pool,
                "SELECT coalesce(sum(n_dead_tup), 0)::int8 FROM pg_stat_user_tables WHERE schemaname = 'postrunner'",
            )
            .await;
            // Where the dead versions are: rows updated on every claim pile up the most.
            let tables: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT relname::text, n_live_tup, n_dead_tup FROM pg_stat_user_tables
                  WHERE schemaname = 'postrunner' ORDER BY n_dead_tup DESC LIMIT 8",
            )
            .fetch_all(&d.pool)
            .await
            .unwrap();
            println!("dead row versions by table (live, dead): {tables:?}");
            sqlx::raw_sql("ROLLBACK").execute(&mut holder).await.unwrap();
            println!(
                "claim latency {:.2} ms before, {:.2} ms after {} s of a held transaction ({dead} dead row versions)",
                before.as_secs_f64() * 1e3,
                during.as_secs_f64() * 1e3,
                pace.held_for.as_secs()
            );
            if pace.full {
                assert!(during <= before * 2, "claims slowed from {before:?} to {during:?}");
            }
            Duration::ZERO
        },
    )
    .await;
    ledger.assert_holds();
}
