//! `email.send`: send the outbox message a job carries.
//!
//! The job was created by the outbox insert trigger; its state is mirrored into the
//! outbox by trigger. This handler loads the message, hands it to the provider (no
//! transaction open), and its `record` writes the provider's answer onto the outbox row
//! in the transaction that completes the job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::providers::{OutgoingMessage, Provider, SendError};
use crate::queue::handler::{Handler, JobError};
use crate::queue::{ClaimedJob, JobId};

pub const KIND: &str = "email.send";

const LOAD: &str = include_str!("../../sql/outbox/load.sql");
const RECORD_SENT: &str = include_str!("../../sql/outbox/record_sent.sql");

pub struct SendEmail {
    pool: PgPool,
    provider: Arc<dyn Provider>,
}

impl SendEmail {
    pub fn new(pool: PgPool, provider: Arc<dyn Provider>) -> Self {
        Self { pool, provider }
    }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    #[allow(dead_code)]
    client: String,
    #[allow(dead_code)]
    direction: String,
    to_address: String,
    subject: String,
    text_body: Option<String>,
    html_body: Option<String>,
    headers: Option<serde_json::Value>,
    #[allow(dead_code)]
    metadata: Option<serde_json::Value>,
}

/// What `run` hands to `record`.
#[derive(Serialize, Deserialize)]
struct Sent {
    provider: String,
    from_address: Option<String>,
    provider_message_id: String,
    sent_at: DateTime<Utc>,
}

#[async_trait::async_trait]
impl Handler for SendEmail {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let row: Option<MessageRow> = sqlx::query_as(LOAD)
            .bind(job.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| JobError::Retry(format!("cannot load the message: {e}")))?;
        let Some(row) = row else {
            return Err(JobError::Permanent("the job's outbox message no longer exists".into()));
        };
        let headers = row
            .headers
            .as_ref()
            .and_then(serde_json::Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let message = OutgoingMessage {
            id: row.id,
            from: None,
            to: row.to_address,
            subject: row.subject,
            text_body: row.text_body,
            html_body: row.html_body,
            headers,
        };
        match self.provider.send(&message).await {
            Ok(accepted) => {
                let sent = Sent {
                    provider: self.provider.name().to_owned(),
                    from_address: message.from,
                    provider_message_id: accepted.provider_message_id,
                    sent_at: Utc::now(),
                };
                Ok(Some(serde_json::to_value(sent).expect("Sent serializes")))
            }
            Err(e @ SendError::Permanent { .. }) => Err(JobError::Permanent(e.to_string())),
            Err(e) => Err(JobError::Retry(e.to_string())),
        }
    }

    async fn record(&self, tx: &mut PgConnection, results: &[(JobId, serde_json::Value)]) -> Result<(), sqlx::Error> {
        let mut job_ids = Vec::with_capacity(results.len());
        let mut providers = Vec::with_capacity(results.len());
        let mut froms = Vec::with_capacity(results.len());
        let mut message_ids = Vec::with_capacity(results.len());
        let mut sent_ats = Vec::with_capacity(results.len());
        for (id, value) in results {
            let sent: Sent = serde_json::from_value(value.clone()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            job_ids.push(*id);
            providers.push(sent.provider);
            froms.push(sent.from_address);
            message_ids.push(sent.provider_message_id);
            sent_ats.push(sent.sent_at);
        }
        // The outbox status guard lets only postrunner write statuses other than 'cancelled'.
        sqlx::query("SET LOCAL postrunner.internal = 'on'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(RECORD_SENT)
            .bind(&job_ids)
            .bind(&providers)
            .bind(&froms)
            .bind(&message_ids)
            .bind(&sent_ats)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}
