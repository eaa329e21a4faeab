//! The embedded default: where no `DATABASE_URL` is given, find the local PostgreSQL
//! (127.0.0.1:5432 or the default socket) or start a private throwaway cluster from the
//! installed binaries.
//!
//! `postrunner demo` and the test suite share this code path. A throwaway cluster runs
//! as an unprivileged user when we are root (PostgreSQL refuses to run as root), listens
//! on 127.0.0.1 at a free port, and is stopped when its [`LocalCluster`] is dropped, or
//! by a watchdog shell when the owning process dies without dropping it (a test binary,
//! a SIGKILL), so it never outlives its user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::Connection;

/// Where the default local server is looked for, in order.
const LOCAL_CANDIDATES: [&str; 2] = [
    "postgres://postgres@127.0.0.1:5432/postgres",
    "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
];

/// Why no server could be found or started.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error(
        "no PostgreSQL answers on 127.0.0.1:5432 and none is installed: \
         install it with `apt-get install postgresql` (Debian/Ubuntu), or set DATABASE_URL"
    )]
    NotInstalled,
    #[error("cannot start a local PostgreSQL cluster: {step} failed: {detail}")]
    Start { step: &'static str, detail: String },
}

/// A PostgreSQL server to use, with the throwaway cluster behind it if we started one.
pub struct Server {
    /// URL of the server's `postgres` maintenance database.
    pub admin_url: String,
    pub cluster: Option<LocalCluster>,
}

impl Server {
    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        with_database(&self.admin_url, name)
    }
}

/// Replaces the database name in a `postgres://` URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Returns a server: the local default if one answers, else a new throwaway cluster.
///
/// # Errors
/// [`LocalClusterError::NotInstalled`] when nothing answers and no PostgreSQL binaries
/// are installed; [`LocalClusterError::Start`] when starting one fails.
pub async fn find_or_start() -> Result<Server, LocalClusterError> {
    for url in LOCAL_CANDIDATES {
        if answers(url).await {
            return Ok(Server {
                admin_url: url.to_owned(),
                cluster: None,
            });
        }
    }
    tracing::info!("no local PostgreSQL answers; starting a private throwaway cluster");
    let cluster = tokio::task::spawn_blocking(LocalCluster::start)
        .await
        .map_err(|e| LocalClusterError::Start {
            step: "spawn",
            detail: e.to_string(),
        })??;
    Ok(Server {
        admin_url: cluster.admin_url(),
        cluster: Some(cluster),
    })
}

/// True when `url` accepts a connection and answers within a few seconds.
pub async fn answers(url: &str) -> bool {
    let attempt = async {
        let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
        sqlx::query("SELECT 1").execute(&mut conn).await.ok()?;
        conn.close().await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(()))
    )
}

/// A private PostgreSQL cluster in a temporary directory.
pub struct LocalCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    watchdog: Option<std::process::Child>,
}

impl LocalCluster {
    /// Creates (initdb) and starts a cluster on a free port of 127.0.0.1.
    ///
    /// # Errors
    /// [`LocalClusterError`] naming the step that failed.
    pub fn start() -> Result<Self, LocalClusterError> {
        let bin = find_bindir().ok_or(LocalClusterError::NotInstalled)?;
        let dir = std::env::temp_dir().join(format!(
            "postrunner-pg-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| start_err("mkdir", e))?;
        let run_as = if is_root() { Some(unprivileged_user()) } else { None };
        if let Some(user) = &run_as {
            run(Command::new("chown").arg("-R").arg(user).arg(&dir), "chown")?;
        }
        let port = free_port().map_err(|e| start_err("pick a port", e))?;
        let mut cluster = Self {
            dir,
            bin,
            port,
            run_as,
            watchdog: None,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        )?;
        cluster.start_server()?;
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        Ok(cluster)
    }

    /// URL of the `postgres` database of this cluster.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (after [`stop_server`](Self::stop_server)); waits until it accepts connections.
    ///
    /// # Errors
    /// `pg_ctl start` failed.
    pub fn start_server(&self) -> Result<(), LocalClusterError> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Stops the server at once, as a crash or an operator's fast restart would.
    ///
    /// # Errors
    /// `pg_ctl stop` failed.
    pub fn stop_server(&self) -> Result<(), LocalClusterError> {
        self.stop_server_with("fast")
    }

    /// Stops the server with `pg_ctl`'s shutdown `mode`: `fast` (sessions ended, a clean
    /// checkpoint) or `immediate` (no checkpoint: recovery at the next start, as after a
    /// crash).
    ///
    /// # Errors
    /// `pg_ctl stop` failed.
    pub fn stop_server_with(&self, mode: &str) -> Result<(), LocalClusterError> {
        self.pg("pg_ctl", &["-D", &self.data_dir(), "-m", mode, "-w", "stop"])
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg(&self, tool: &'static str, args: &[&str]) -> Result<(), LocalClusterError> {
        let program = self.bin.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(&self.dir);
        run(&mut command, tool)
    }

    /// A shell that waits for this process to end, then stops the cluster and removes
    /// its directory. It runs in its own process group so a Ctrl-C does not kill it first.
    fn spawn_watchdog(&self) -> Result<std::process::Child, LocalClusterError> {
        let stop = match &self.run_as {
            Some(user) => format!(
                "runuser -u {user} -- '{}' -D '{}' -m immediate stop",
                self.bin.join("pg_ctl").display(),
                self.data_dir()
            ),
            None => format!(
                "'{}' -D '{}' -m immediate stop",
                self.bin.join("pg_ctl").display(),
                self.data_dir()
            ),
        };
        watchdog(&stop, &self.dir).map_err(|e| start_err("watchdog", e))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.pg("pg_ctl", &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"]);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_err(step: &'static str, e: impl std::fmt::Display) -> LocalClusterError {
    LocalClusterError::Start {
        step,
        detail: e.to_string(),
    }
}

fn run(command: &mut Command, step: &'static str) -> Result<(), LocalClusterError> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| start_err(step, e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(start_err(
            step,
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

/// The newest installed PostgreSQL's binaries: Debian's /usr/lib/postgresql/N/bin, or
/// the directory of an `initdb` on PATH.
fn find_bindir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    })
}

/// A shell that waits for this process to end, then runs `stop` and removes `dir`: what
/// a server started for this process leaves behind when the process dies without
/// dropping it (a test binary, killed). In its own process group, so that a Ctrl-C does
/// not kill it first.
///
/// # Errors
/// `sh` could not be started.
pub fn watchdog(stop: &str, dir: &Path) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

/// Whether this process runs as root (PostgreSQL's and PgBouncer's programs refuse to).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// `postgres` where the package created it, else `nobody`.
fn unprivileged_user() -> String {
    let exists = |user: &str| {
        Command::new("id")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if exists("postgres") {
        "postgres".into()
    } else {
        "nobody".into()
    }
}

/// A TCP port on 127.0.0.1 free at this moment.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
