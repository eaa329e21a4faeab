//! Notifications of alert state changes, for deployments without Alertmanager.
//!
//! Channels live in `postrunner.notification_channels` (email through a configured
//! provider, a Slack-compatible JSON webhook, SMS through Twilio's API); the database
//! decides what to notify and when (sql/definitions/430_alerts_notifications.sql: one notification per
//! state change and channel, digests); this module only renders a batch ([`render`])
//! and delivers it ([`channel`]). The `system.notify` job (src/kinds/notify.rs) ties
//! the two together with the queue's retries.

pub mod channel;
pub mod render;

use chrono::{DateTime, Utc};

/// One alert state change to tell a channel about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    /// `fired` or `resolved`.
    pub transition: String,
    /// The alert's kind (`provider_down`, `budget_80`, ...) and subject (a provider, a domain, ...).
    pub kind: String,
    pub subject: String,
    pub detail: Option<String>,
    pub fired_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Change {
    pub fn resolved(&self) -> bool {
        self.transition == "resolved"
    }
}
