//! A provider whose sends wait until the test opens its gate: for catching a worker
//! between its claim and its outcome (shutdown, locks held meanwhile).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use postrunner_providers::{Accepted, Directory, OutgoingMessage, Provider, SendError};
use sqlx::PgPool;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Gate {
    open: watch::Sender<bool>,
    started: Arc<AtomicUsize>,
}

impl Gate {
    pub fn closed() -> Self {
        Self {
            open: watch::channel(false).0,
            started: Arc::default(),
        }
    }

    /// Lets every waiting and future send through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Sends that have reached the provider (waiting or done).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// A directory in which every provider row is this gate.
    pub fn directory(&self, pool: &PgPool) -> Directory {
        let gate = self.clone();
        Directory::with_builder(pool.clone(), move |name| {
            Some(Arc::new(GatedProvider {
                name: name.to_owned(),
                gate: gate.clone(),
            }) as Arc<dyn Provider>)
        })
    }
}

struct GatedProvider {
    name: String,
    gate: Gate,
}

#[async_trait::async_trait]
impl Provider for GatedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        self.gate.started.fetch_add(1, Ordering::SeqCst);
        let mut open = self.gate.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        Ok(Accepted {
            provider_message_id: format!("gated-{}", message.id),
        })
    }
}
