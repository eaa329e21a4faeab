//! Running the queue in tests: in-process executors and recording handlers (from
//! postrunner-queue's `testing` feature), every built-in kind, and real `postrunner`
//! processes.

use std::process::Stdio;
use std::sync::Arc;

use postrunner::kinds;
use postrunner_providers::Directory;
use postrunner_queue::handler::Registry;
pub use postrunner_queue::testing::{executor, fast_config, only, spawn, Recorder, Running};
use sqlx::PgPool;
use uuid::Uuid;

/// Every built-in kind, mail through the adapters of the providers table (the
/// factory's providers are of kind `log`).
pub fn registry(pool: &PgPool) -> Registry {
    kinds::registry(pool.clone(), Arc::new(Directory::new(pool.clone())))
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
        let (url, pooling) = behind_pgbouncer(url);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
            .args(args)
            .envs(pooling.iter().map(|(k, v)| (*k, v.as_str())))
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
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    postrunner_output_result(url, args, &env)
        .await
        .unwrap_or_else(|stderr| panic!("postrunner {}: {stderr}", args.join(" ")))
}

/// [`postrunner_output`], its standard error when it fails.
pub async fn postrunner_output_result(url: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let (url, pooling) = behind_pgbouncer(url);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
        .args(args)
        .env("DATABASE_URL", url)
        .envs(pooling.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// With `POSTRUNNER_TEST_PGBOUNCER=1` (bin/test-pgbouncer), the postrunner processes the
/// tests start reach the tests' server through one PgBouncer in transaction mode
/// (started on first use, for the whole test process), with `--pooling transaction` and
/// the direct URL for LISTEN, `migrate` and backups. `url` itself when unset, or when it
/// names another server (a private cluster, the HA cluster, a proxy). The tests' own
/// connections stay direct.
fn behind_pgbouncer(url: &str) -> (String, Vec<(&'static str, String)>) {
    static BOUNCER: std::sync::OnceLock<postrunner_test_db::pgbouncer::PgBouncer> = std::sync::OnceLock::new();
    let server = |u: &str| {
        let u = url::Url::parse(u).ok()?;
        Some((u.host_str()?.to_owned(), u.port().unwrap_or(5432)))
    };
    let tests_server = postrunner_test_db::known_server_url().and_then(server);
    if std::env::var("POSTRUNNER_TEST_PGBOUNCER").as_deref() != Ok("1") || server(url) != tests_server {
        return (url.to_owned(), Vec::new());
    }
    let bouncer = BOUNCER.get_or_init(|| postrunner_test_db::pgbouncer::PgBouncer::start(url, 4));
    (
        bouncer.url(url),
        vec![
            ("POSTRUNNER_POOLING", "transaction".to_owned()),
            ("DATABASE_DIRECT_URL", url.to_owned()),
        ],
    )
}
