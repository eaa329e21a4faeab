//! The `log` provider: accepts every message and records it in the log (by id and size,
//! never recipient or body). It lets the whole INSERT -> claim -> send -> `sent` path run
//! without a real provider: in the demo, in benchmarks, and in tests of the queue.

use super::{Accepted, OutgoingMessage, Provider, SendError};

/// Accepts everything.
#[derive(Clone, Debug)]
pub struct LogProvider {
    name: String,
    latency: std::time::Duration,
}

impl LogProvider {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            latency: std::time::Duration::ZERO,
        }
    }

    /// Takes `latency` to accept each message, like a real provider's round trip (the demo).
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency = latency;
        self
    }
}

impl Default for LogProvider {
    fn default() -> Self {
        Self::new("log")
    }
}

#[async_trait::async_trait]
impl Provider for LogProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let bytes =
            message.text_body.as_ref().map_or(0, String::len) + message.html_body.as_ref().map_or(0, String::len);
        tracing::debug!(message.id = %message.id, provider.name = %self.name, body_bytes = bytes, "message accepted by the log provider");
        Ok(Accepted {
            provider_message_id: format!("log-{}", uuid::Uuid::new_v4()),
        })
    }
}
