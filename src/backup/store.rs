//! Where backups go: an S3-compatible bucket (AWS S3, MinIO, Ceph, Backblaze B2, ...)
//! through Apache OpenDAL, configured from the environment; the credentials are read
//! from variables and never stored.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `POSTRUNNER_BACKUP_S3_BUCKET` | the bucket (required) |
//! | `POSTRUNNER_BACKUP_S3_ENDPOINT` | e.g. `https://s3.eu-west-1.amazonaws.com` (AWS by default) |
//! | `POSTRUNNER_BACKUP_S3_REGION` | default `us-east-1` |
//! | `POSTRUNNER_BACKUP_S3_PREFIX` | folder inside the bucket, default `postrunner/` |
//! | `POSTRUNNER_BACKUP_S3_ACCESS_KEY_ID`, `POSTRUNNER_BACKUP_S3_SECRET_ACCESS_KEY` | credentials |

use opendal::services::S3;
use opendal::Operator;

use super::{BackupError, Manifest};

const BUCKET: &str = "POSTRUNNER_BACKUP_S3_BUCKET";
const ENDPOINT: &str = "POSTRUNNER_BACKUP_S3_ENDPOINT";
const REGION: &str = "POSTRUNNER_BACKUP_S3_REGION";
const PREFIX: &str = "POSTRUNNER_BACKUP_S3_PREFIX";
const ACCESS_KEY_ID: &str = "POSTRUNNER_BACKUP_S3_ACCESS_KEY_ID";
const SECRET_ACCESS_KEY: &str = "POSTRUNNER_BACKUP_S3_SECRET_ACCESS_KEY";

/// Parts of a multipart upload (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// The bucket and folder backups are kept in.
#[derive(Clone)]
pub struct BackupStore {
    operator: Operator,
}

/// Names of a backup's two objects.
pub fn dump_path(key: &str) -> String {
    format!("{key}.dump")
}

pub fn manifest_path(key: &str) -> String {
    format!("{key}.manifest.json")
}

/// Where the bucket is and how to sign in to it.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub bucket: String,
    /// `None`: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Folder inside the bucket.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: postrunner_providers::secret::Secret<String>,
}

impl StoreConfig {
    /// The configuration the environment describes (see the module docs).
    ///
    /// # Errors
    /// [`BackupError::NotConfigured`] without a bucket or credentials.
    pub fn from_env() -> Result<Self, BackupError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bucket = var(BUCKET).ok_or_else(|| BackupError::NotConfigured(format!("{BUCKET} is not set")))?;
        let (Some(access_key_id), Some(secret)) = (var(ACCESS_KEY_ID), var(SECRET_ACCESS_KEY)) else {
            return Err(BackupError::NotConfigured(format!(
                "{ACCESS_KEY_ID} and {SECRET_ACCESS_KEY} must be set"
            )));
        };
        Ok(Self {
            bucket,
            endpoint: var(ENDPOINT),
            region: var(REGION).unwrap_or_else(|| "us-east-1".to_owned()),
            prefix: var(PREFIX).unwrap_or_else(|| "postrunner/".to_owned()),
            access_key_id,
            secret_access_key: postrunner_providers::secret::Secret::new(secret),
        })
    }
}

impl BackupStore {
    /// The store the environment describes.
    ///
    /// # Errors
    /// [`BackupError::NotConfigured`] without a bucket or credentials.
    pub fn from_env() -> Result<Self, BackupError> {
        Self::new(&StoreConfig::from_env()?)
    }

    /// The store `config` describes.
    ///
    /// # Errors
    /// The configuration is not usable.
    pub fn new(config: &StoreConfig) -> Result<Self, BackupError> {
        // OpenDAL's HTTP transport: reqwest with rustls on ring, installed once per
        // process (the first installed wins).
        static TRANSPORT: std::sync::Once = std::sync::Once::new();
        TRANSPORT.call_once(|| {
            postrunner_providers::http::install_crypto_provider();
            opendal::init_default_registry();
            opendal::HttpTransporter::install_default(opendal_http_transport_reqwest::ReqwestTransport::new(
                reqwest::Client::new(),
            ));
        });
        let mut builder = S3::default()
            .bucket(&config.bucket)
            .root(&format!("/{}", config.prefix.trim_matches('/')))
            .region(&config.region)
            .access_key_id(&config.access_key_id)
            .secret_access_key(config.secret_access_key.expose())
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        let operator = Operator::new(builder)?.layer(opendal::layers::RetryLayer::new());
        Ok(Self { operator })
    }

    /// Opens a streaming multipart upload of `key`'s dump.
    ///
    /// # Errors
    /// The storage refused.
    pub async fn dump_writer(&self, key: &str) -> Result<opendal::Writer, BackupError> {
        Ok(self.operator.writer_with(&dump_path(key)).chunk(PART_BYTES).await?)
    }

    /// Streams `key`'s dump.
    ///
    /// # Errors
    /// The storage refused (a missing object among others).
    pub async fn dump_reader(
        &self,
        key: &str,
    ) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>, BackupError> {
        let reader = self.operator.reader(&dump_path(key)).await?;
        Ok(reader.into_bytes_stream(..).await?)
    }

    /// # Errors
    /// The storage refused.
    pub async fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
        self.operator.write(&manifest_path(&manifest.key), json).await?;
        Ok(())
    }

    /// # Errors
    /// The storage refused, or the manifest is not one.
    pub async fn read_manifest(&self, key: &str) -> Result<Manifest, BackupError> {
        let bytes = self.operator.read(&manifest_path(key)).await?.to_vec();
        serde_json::from_slice(&bytes).map_err(|e| BackupError::Mismatch(format!("unreadable manifest: {e}")))
    }

    /// Deletes both objects of `key` (retention).
    ///
    /// # Errors
    /// The storage refused.
    pub async fn delete(&self, key: &str) -> Result<(), BackupError> {
        self.operator.delete(&dump_path(key)).await?;
        self.operator.delete(&manifest_path(key)).await?;
        Ok(())
    }
}
