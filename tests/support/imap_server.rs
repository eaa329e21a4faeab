//! A real IMAP server for tests: Debian's dovecot, started on a free port with its own
//! configuration, data and mail under a temporary directory (tests/support/dovecot/start;
//! bin/setup installs dovecot-imapd), stopped when dropped. Mail is put in with a real
//! IMAP APPEND, and read back the same way.

use std::time::Duration;

use async_imap::Session;
use futures_util::TryStreamExt as _;
use tokio::net::TcpStream;

pub const USER: &str = "bounces";
pub const PASSWORD: &str = "imap-test-password";

pub struct Dovecot {
    pub port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Dovecot {
    pub async fn start() -> Self {
        let dir = std::path::PathBuf::from(format!("/tmp/pr-imap-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                break port;
            }
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/dovecot/start");
        let child = std::process::Command::new(script)
            .args([dir.to_str().unwrap(), &port.to_string(), USER, PASSWORD])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tests/support/dovecot/start runs (bin/setup installs dovecot-imapd)");
        let server = Self { port, child, dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "dovecot did not start: {}",
                std::fs::read_to_string(server.dir.join("dovecot.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// `imap://bounces@127.0.0.1:<port>`, as a provider row names it.
    pub fn url(&self) -> String {
        format!("imap://{USER}@127.0.0.1:{}", self.port)
    }

    async fn session(&self) -> Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        let mut session = client.login(USER, PASSWORD).await.map_err(|(e, _)| e).unwrap();
        session.select("INBOX").await.unwrap();
        session
    }

    /// Delivers `raw` to INBOX.
    pub async fn deliver(&self, raw: &[u8]) {
        let mut session = self.session().await;
        session.append("INBOX", None, None, raw).await.unwrap();
        session.logout().await.unwrap();
    }

    /// (messages in INBOX, of them flagged $PostrunnerDone).
    pub async fn counts(&self) -> (usize, usize) {
        let mut session = self.session().await;
        let all = session.uid_search("ALL").await.unwrap().len();
        let done = session.uid_search("KEYWORD $PostrunnerDone").await.unwrap().len();
        session.logout().await.unwrap();
        (all, done)
    }

    /// Takes the processed flag off every message (as if postrunner had died between
    /// its commit and its STORE).
    pub async fn unflag_all(&self) {
        let mut session = self.session().await;
        let stream = session
            .uid_store("1:*", "-FLAGS.SILENT ($PostrunnerDone)")
            .await
            .unwrap();
        let _: Vec<_> = stream.try_collect().await.unwrap();
        session.logout().await.unwrap();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
