//! A real PostgreSQL HA cluster for a test (`bin/ha-cluster`: etcd, two PostgreSQL 15
//! nodes under Patroni with synchronous replication, HAProxy routing to the leader),
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct HaCluster {
    dir: PathBuf,
    /// The HAProxy address: always the current primary.
    pub url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/ha-cluster")
}

/// Runs `bin/ha-cluster <args>`; its last line of output.
fn run(args: &[&str]) -> String {
    let output = Command::new(script()).args(args).output().expect("bin/ha-cluster runs");
    assert!(
        output.status.success(),
        "bin/ha-cluster {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

impl HaCluster {
    /// Starts a cluster in a fresh directory and waits for its leader. Should `up`
    /// fail half-way, dropping the cluster stops what it started.
    pub fn up() -> Self {
        let mut cluster = Self {
            dir: std::env::temp_dir().join(format!("postrunner-ha-{}", uuid::Uuid::new_v4().simple())),
            url: String::new(),
        };
        cluster.url = run(&["up", &cluster.dir()]);
        assert!(
            cluster.url.starts_with("postgres://"),
            "bin/ha-cluster up printed {:?}",
            cluster.url
        );
        cluster
    }

    fn dir(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// SIGKILLs the leader's postmaster; its member name.
    pub fn kill_leader(&self) -> String {
        run(&["kill-leader", &self.dir()])
    }

    /// A planned switchover to the other node.
    pub fn switchover(&self) {
        run(&["switchover", &self.dir()]);
    }

    /// The current leader's member name.
    pub fn leader(&self) -> String {
        run(&["leader", &self.dir()])
    }

    /// The node that is not the leader, straight (not through HAProxy): a streaming
    /// standby once it has rejoined (bin/ha-cluster: pg1 on 25432, pg2 on 25433).
    pub fn standby_url(&self) -> String {
        let port = if self.leader() == "pg1" { 25433 } else { 25432 };
        let mut url = url::Url::parse(&self.url).expect("a URL");
        url.set_port(Some(port)).unwrap();
        url.to_string()
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.dir()]).status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
