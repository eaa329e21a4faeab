//! `system.dispatch_notifications` (every 5 s) hands pending alert notifications to
//! `system.notify` jobs, which deliver them (src/notifications/). What is due, and
//! once, is decided in SQL (sql/definitions/430_alerts_notifications.sql).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::notifications::channel::{Channel, DeliveryError};
use crate::notifications::{render::render, Change};
use postrunner_providers::Directory;
use postrunner_queue::handler::{Handler, JobError};
use postrunner_queue::ClaimedJob;

pub const DISPATCH: &str = "system.dispatch_notifications";
pub const KIND: &str = "system.notify";

use postrunner_schema::statements;

/// Gives pending notifications to `system.notify` jobs.
pub struct DispatchNotifications {
    pool: PgPool,
}

impl DispatchNotifications {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler for DispatchNotifications {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let (jobs, notifications): (i32, i32) = statements::alerts::dispatch_notifications()
            .rows()
            .fetch_one(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if jobs > 0 {
            tracing::info!(notifications, jobs, "alert notifications queued");
        }
        Ok(None)
    }
}

/// Delivers one notification, or a digest of several, to one channel.
pub struct Notify {
    pool: PgPool,
    providers: Arc<Directory>,
}

impl Notify {
    pub fn new(pool: PgPool, providers: Arc<Directory>) -> Self {
        Self { pool, providers }
    }

    async fn record(&self, ids: &[i64], status: &str, error: Option<&str>) -> Result<(), JobError> {
        statements::alerts::notification_outcome(ids, status, error)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| JobError::Retry(e.to_string()))
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    transition: String,
    status: String,
    kind: String,
    subject: String,
    detail: Option<String>,
    fired_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    channel_kind: String,
    channel_target: String,
    channel_config: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct Args {
    channel: String,
    notifications: Vec<i64>,
}

#[async_trait::async_trait]
impl Handler for Notify {
    async fn run(&self, job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let args: Args =
            serde_json::from_value(job.args.clone()).map_err(|e| JobError::Permanent(format!("bad arguments: {e}")))?;
        let rows: Vec<Row> = statements::alerts::notification_batch(&args.channel, &args.notifications)
            .rows()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        // Already delivered by an earlier attempt that could not record it, or deleted.
        let due: Vec<&Row> = rows.iter().filter(|r| r.status != "sent").collect();
        let Some(first) = due.first() else {
            return Ok(None);
        };
        let span = tracing::info_span!("notify", channel = %args.channel, notifications = due.len());
        let _entered = span.enter();
        let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
        let channel = match Channel::from_row(&first.channel_kind, &first.channel_target, &first.channel_config) {
            Ok(channel) => channel,
            Err(error) => {
                self.record(&ids, "failed", Some(&error.to_string())).await?;
                return Err(JobError::Permanent(error.to_string()));
            }
        };
        let changes: Vec<Change> = due
            .iter()
            .map(|r| Change {
                id: r.id,
                transition: r.transition.clone(),
                kind: r.kind.clone(),
                subject: r.subject.clone(),
                detail: r.detail.clone(),
                fired_at: r.fired_at,
                resolved_at: r.resolved_at,
            })
            .collect();
        let key = format!(
            "postrunner-notification-{}",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join("-")
        );
        let rendered = render(&changes);
        match channel.deliver(&self.providers, &key, &rendered, &changes).await {
            Ok(()) => {
                self.record(&ids, "sent", None).await?;
                tracing::info!(channel.kind = channel.kind(), "alert notification sent");
                Ok(None)
            }
            Err(error) => {
                let last = job.attempts >= job.max_attempts || matches!(error, DeliveryError::Config(_));
                let message = error.to_string();
                self.record(&ids, if last { "failed" } else { "queued" }, Some(&message))
                    .await?;
                tracing::warn!(channel.kind = channel.kind(), error = %message, last_attempt = last, "alert notification failed");
                Err(if matches!(error, DeliveryError::Config(_)) {
                    JobError::Permanent(message)
                } else {
                    JobError::Retry(message)
                })
            }
        }
    }
}
