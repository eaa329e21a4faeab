//! moto's S3 server (PyPI `moto[server]`, independent of postrunner's code) on a free
//! local port, with a bucket; and access to its objects through boto3 (independent of
//! postrunner) so a test can corrupt one the way a failing disk or an operator would.

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
        let port = super::free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto[server] is installed (tests/support/requirements.txt, bin/setup)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = crate::support::http();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.put(format!("{endpoint}/{BUCKET}")).send().await {
                assert!(
                    response.status().is_success(),
                    "creating the bucket: {}",
                    response.status()
                );
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
            secret_access_key: postrunner_providers::secret::Secret::new("testing".to_owned()),
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

    /// One request through boto3 (tests/support/s3_object.py).
    async fn object(&self, op: &str, key: &str, body: Option<&[u8]>) -> serde_json::Value {
        use base64::Engine as _;
        let request = serde_json::json!({
            "endpoint": self.endpoint, "bucket": BUCKET, "key": key, "op": op,
            "body": body.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        });
        tokio::task::spawn_blocking(move || crate::support::python::run("s3_object.py", &request))
            .await
            .unwrap()
    }

    /// Object `key` (from the bucket's root), when it exists.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let answer = self.object("get", key, None).await;
        answer["found"].as_bool().unwrap().then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(answer["body"].as_str().unwrap())
                .unwrap()
        })
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.object("put", key, Some(&body)).await;
    }

    pub async fn delete(&self, key: &str) {
        self.object("delete", key, None).await;
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
