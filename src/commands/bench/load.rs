//! What the HTTP benchmarks share: a `postrunner web` process of this binary on a free
//! port, and a load of requests at a fixed concurrency with their latencies.

use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A `postrunner web` child process, killed when dropped.
pub struct WebProcess {
    pub base: String,
    _child: tokio::process::Child,
}

impl WebProcess {
    /// Starts `postrunner web` on database `url` with a pool of `connections` and the
    /// environment `env`, and waits until it is ready.
    ///
    /// # Errors
    /// It could not be started, or did not become ready within 30 s.
    pub async fn start(url: &str, connections: u32, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_with(url, connections, env, &[]).await
    }

    /// [`WebProcess::start`] with extra flags.
    ///
    /// # Errors
    /// As [`WebProcess::start`].
    pub async fn start_with(url: &str, connections: u32, env: &[(&str, &str)], flags: &[&str]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "web",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--max-connections",
                &connections.to_string(),
            ])
            .args(flags)
            .env("DATABASE_URL", url)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a web process")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            anyhow::ensure!(Instant::now() < deadline, "the web process did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { base, _child: child })
    }
}

/// How a load went.
pub struct Blast {
    pub seconds: f64,
    /// Milliseconds, sorted.
    pub latencies: Vec<f64>,
}

impl Blast {
    pub fn p(&self, p: f64) -> f64 {
        super::percentile(&self.latencies, p)
    }
}

/// One request of a load: URL, headers, body.
pub type Request = (String, Vec<(String, String)>, String);

/// Posts every request, `concurrency` at a time; each must be answered 200.
///
/// # Errors
/// A request failed or was answered otherwise.
pub async fn blast(client: &reqwest::Client, requests: Vec<Request>, concurrency: usize) -> anyhow::Result<Blast> {
    use futures_util::StreamExt as _;
    let started = Instant::now();
    let mut latencies: Vec<f64> = futures_util::stream::iter(requests)
        .map(|(url, headers, body)| async move {
            let mut request = client.post(url).body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let sent = Instant::now();
            let response = request.send().await.context("posting")?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            anyhow::ensure!(status.as_u16() == 200, "answered {status}: {text}");
            Ok(sent.elapsed().as_secs_f64() * 1000.0)
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<anyhow::Result<f64>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(Blast { seconds, latencies })
}
