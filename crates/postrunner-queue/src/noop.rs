//! `noop`: a job that does nothing, or what its arguments ask:
//! `{"sleep_ms": 250}` sleeps, `{"fail": "retry"}` or `{"fail": "permanent"}` fails that
//! way. Used by `postrunner bench queue`, the tests, and to check a deployment.

use std::time::Duration;

use crate::handler::{Handler, JobError};
use crate::ClaimedJob;

pub const KIND: &str = "noop";

pub struct Noop;

#[async_trait::async_trait]
impl Handler for Noop {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        if let Some(ms) = job.args.get("sleep_ms").and_then(serde_json::Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match job.args.get("fail").and_then(serde_json::Value::as_str) {
            Some("retry") => Err(JobError::Retry(format!("asked to fail (attempt {})", job.attempts))),
            Some("permanent") => Err(JobError::Permanent("asked to fail permanently".into())),
            _ => Ok(None),
        }
    }
}
