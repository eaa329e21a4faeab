//! Running the queue in tests: in-process executors, recording handlers, and real
//! `postrunner` processes.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postrunner::kinds;
use postrunner::providers::Directory;
use postrunner::queue::executor::{Executor, ExecutorConfig, ExecutorStats};
use postrunner::queue::handler::{Handler, JobError, Registry};
use postrunner::queue::{ClaimedJob, JobId};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Short leases and intervals, so tests of rescue and polling take seconds.
pub fn fast_config() -> ExecutorConfig {
    ExecutorConfig {
        concurrency: 8,
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(300),
        poll_interval: Duration::from_millis(200),
        grace: Duration::from_secs(2),
        ..ExecutorConfig::default()
    }
}

/// Every built-in kind, mail through the adapters of the providers table (the
/// factory's providers are of kind `log`).
pub fn registry(pool: &PgPool) -> Registry {
    kinds::registry(pool.clone(), Arc::new(Directory::new(pool.clone())))
}

/// An executor whose `tick`/`drain` a test calls directly.
pub fn executor(pool: &PgPool, registry: Registry, config: ExecutorConfig) -> Executor {
    Executor::new(pool.clone(), registry, config, Uuid::new_v4())
}

/// An executor running in the background.
pub struct Running {
    pub stats: Arc<ExecutorStats>,
    pub id: Uuid,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

pub fn spawn(pool: &PgPool, registry: Registry, config: ExecutorConfig) -> Running {
    let id = Uuid::new_v4();
    let executor = Executor::new(pool.clone(), registry, config, id);
    let stats = executor.stats();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(executor.run(shutdown.clone()));
    Running {
        stats,
        id,
        shutdown,
        handle,
    }
}

impl Running {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

/// A handler that records every run (job id, attempt) and optionally sleeps.
#[derive(Clone, Default)]
pub struct Recorder {
    pub runs: Arc<Mutex<Vec<(JobId, i32)>>>,
    pub sleep: Duration,
}

impl Recorder {
    pub fn sleeping(sleep: Duration) -> Self {
        Self {
            sleep,
            ..Self::default()
        }
    }

    pub fn runs(&self) -> Vec<(JobId, i32)> {
        self.runs.lock().unwrap().clone()
    }

    /// Waits until `n` runs were recorded.
    pub async fn wait_for_runs(&self, n: usize, timeout: Duration) {
        super::eventually(timeout, &format!("{n} job runs"), || async { self.runs().len() == n }).await;
    }

    /// How many times each job ran.
    pub fn counts(&self) -> HashMap<JobId, usize> {
        let mut counts = HashMap::new();
        for (id, _) in self.runs() {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        self.runs.lock().unwrap().push((job.id, job.attempts));
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
        Ok(None)
    }
}

/// A registry with only `kind`, handled by `handler`.
pub fn only(kind: &str, handler: impl Handler) -> Registry {
    let mut registry = Registry::new();
    registry.register(kind, handler);
    registry
}

/// A real `postrunner` process (the binary under test) on database `url`, its logs
/// (stderr) captured to a file that [`Process::logs`] reads.
pub struct Process {
    pub child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Process {
    pub fn spawn(url: &str, args: &[&str]) -> Self {
        Self::spawn_with_env(url, args, &[])
    }

    /// [`Process::spawn`] with extra environment variables (a provider's secret).
    pub fn spawn_with_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("postrunner-test-{}.log", Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
            .args(args)
            .envs(env.iter().copied())
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- logs of postrunner {:?} ---\n{}", self.child.id(), self.logs());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs `postrunner <args>` against `url` with `env` to its end, as an operator would;
/// its standard output. Panics with its standard error when it fails.
pub async fn postrunner_output(url: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "postrunner {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
