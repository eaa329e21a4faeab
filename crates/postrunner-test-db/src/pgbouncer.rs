//! A real PgBouncer (Debian's 1.18, installed by bin/setup) in transaction mode in front
//! of a PostgreSQL server, for the tests that run postrunner through one
//! (tests/pgbouncer.rs, and the chaos suite with `CHAOS_PGBOUNCER=1`).
//!
//! It serves every database of the server (`* =`) to every login the server knows (its
//! `auth_query` asks the server), with few server connections per database and user, so
//! that consecutive transactions of one client really do land on different server
//! connections. It retries a lost server every second (the default is 15 s). PgBouncer
//! refuses to run as root: it runs as `postgres` when the tests run as root. Stopped when
//! dropped, and by a watchdog shell if the test process dies first.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use postrunner_schema::local_cluster;
use url::Url;

/// A running PgBouncer.
pub struct PgBouncer {
    port: u16,
    dir: PathBuf,
    watchdog: std::process::Child,
}

impl PgBouncer {
    /// Starts one in front of the server of `server_url` (any database on it), with at most
    /// `server_connections` server connections per database and login.
    ///
    /// # Panics
    /// PgBouncer is not installed or does not start within 10 s.
    pub fn start(server_url: &str, server_connections: u32) -> Self {
        let server = Url::parse(server_url).expect("a server URL");
        let host = server.host_str().expect("a host");
        let server_port = server.port().unwrap_or(5432);
        let user = if server.username().is_empty() {
            "postgres"
        } else {
            server.username()
        };
        let port = local_cluster::free_port().expect("a free port");
        let dir = std::env::temp_dir().join(format!("postrunner-pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        let ini = format!(
            "[databases]
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
default_pool_size = {server_connections}
max_client_conn = 2000
auth_type = hba
auth_hba_file = {hba}
auth_file = {users}
auth_user = {user}
auth_query = SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1
ignore_startup_parameters = extra_float_digits
server_login_retry = 1
logfile = {log}
pidfile = {pid}
",
            hba = path("hba.conf"),
            users = path("users.txt"),
            log = path("pgbouncer.log"),
            pid = path("pgbouncer.pid"),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.join("hba.conf"), "host all all 127.0.0.1/32 trust\n").unwrap();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let as_root = local_cluster::is_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres", &dir.display().to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "chown the PgBouncer directory");
        }
        let run = format!(
            "{prefix}pgbouncer -d '{ini}'",
            prefix = if as_root { "runuser -u postgres -- " } else { "" },
            ini = path("pgbouncer.ini")
        );
        let started = Command::new("sh")
            .arg("-c")
            .arg(&run)
            .status()
            .expect("pgbouncer is installed (bin/setup)");
        assert!(
            started.success(),
            "{run}: {}",
            std::fs::read_to_string(path("pgbouncer.log")).unwrap_or_default()
        );
        // The watchdog stops it once this process is gone (or when dropped, below).
        let stop = format!("kill $(cat '{}')", path("pgbouncer.pid"));
        let watchdog = local_cluster::watchdog(&stop, &dir).unwrap();
        let bouncer = Self { port, dir, watchdog };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PgBouncer did not listen: {}", bouncer.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    /// `direct` (a URL of the server behind) as reached through this PgBouncer: the same
    /// login and database.
    pub fn url(&self, direct: &str) -> String {
        let mut url = Url::parse(direct).expect("a URL");
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
