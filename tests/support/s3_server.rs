//! moto's S3 server (PyPI `moto[server]`, independent of postrunner's code) on a free
//! local port, with a bucket; and raw, unsigned access to its objects so a test can
//! corrupt one the way a failing disk or a careless operator would.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct S3Server {
    pub endpoint: String,
    child: Child,
}

pub const BUCKET: &str = "backups";

impl S3Server {
    /// Starts moto and creates [`BUCKET`].
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto[server] is installed (tests/support/requirements.txt, bin/setup)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.put(format!("{endpoint}/{BUCKET}")).send().await {
                assert!(response.status().is_success(), "creating the bucket: {}", response.status());
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { endpoint, child }
    }

    /// A store configuration for this server under `prefix`.
    pub fn config(&self, prefix: &str) -> postrunner::backup::store::StoreConfig {
        postrunner::backup::store::StoreConfig {
            bucket: BUCKET.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            prefix: prefix.to_owned(),
            access_key_id: "testing".to_owned(),
            secret_access_key: postrunner::secret::Secret::new("testing".to_owned()),
        }
    }

    /// The environment `postrunner backup` reads for the same.
    pub fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("POSTRUNNER_BACKUP_S3_BUCKET", BUCKET.to_owned()),
            ("POSTRUNNER_BACKUP_S3_ENDPOINT", self.endpoint.clone()),
            ("POSTRUNNER_BACKUP_S3_PREFIX", prefix.to_owned()),
            ("POSTRUNNER_BACKUP_S3_ACCESS_KEY_ID", "testing".to_owned()),
            ("POSTRUNNER_BACKUP_S3_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
    }

    /// Object `path` (from the bucket's root), unsigned.
    pub async fn get(&self, path: &str) -> Option<Vec<u8>> {
        let response = reqwest::get(format!("{}/{BUCKET}/{path}", self.endpoint)).await.unwrap();
        response.status().is_success().then_some(())?;
        Some(response.bytes().await.unwrap().to_vec())
    }

    pub async fn put(&self, path: &str, body: Vec<u8>) {
        let response = reqwest::Client::new()
            .put(format!("{}/{BUCKET}/{path}", self.endpoint))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    pub async fn delete(&self, path: &str) {
        reqwest::Client::new()
            .delete(format!("{}/{BUCKET}/{path}", self.endpoint))
            .send()
            .await
            .unwrap();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
