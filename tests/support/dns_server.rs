//! A real DNS server for tests: dnsmasq (Debian's `dnsmasq-base`, installed by
//! bin/setup) on a free loopback port, answering only the TXT and MX records a test
//! gives it; stopped when dropped.

use std::time::Duration;

pub struct Dnsmasq {
    pub address: std::net::SocketAddr,
    child: std::process::Child,
}

impl Dnsmasq {
    /// Serves `txt` (name, value; long values split into 255-byte strings as DNS
    /// requires; dnsmasq takes the strings comma-separated and unquoted, so a value may
    /// not hold a comma) and `mx` (name, exchange) records.
    pub async fn start(txt: &[(&str, String)], mx: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pid = std::env::temp_dir().join(format!("pr-dnsmasq-{}.pid", uuid::Uuid::new_v4().simple()));
        let mut args = vec![
            "--keep-in-foreground".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            "--listen-address=127.0.0.1".to_owned(),
            format!("--port={port}"),
            "--user=root".to_owned(),
            format!("--pid-file={}", pid.display()),
        ];
        for (name, value) in txt {
            let parts: Vec<String> = value
                .as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            args.push(format!("--txt-record={name},{}", parts.join(",")));
        }
        for (name, exchange) in mx {
            args.push(format!("--mx-host={name},{exchange},10"));
        }
        let child = std::process::Command::new("dnsmasq")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq runs (bin/setup installs dnsmasq-base)");
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(address).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "dnsmasq did not start");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Self { address, child }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
