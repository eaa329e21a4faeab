//! A process's row in `postrunner.processes`, shown by the `workers` view while its
//! heartbeat is fresh. Workers refresh it from the executor's heartbeat (which also
//! extends their leases); schedulers with their own loop.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use postrunner_schema::statements;

/// Who a process is.
#[derive(Clone, Debug)]
pub struct Presence {
    pub id: Uuid,
    pub role: &'static str,
    pub concurrency: Option<i32>,
    pub heartbeat: Duration,
    /// A worker that signs one-click unsubscribe links (report_blocked reads it).
    pub signs_unsubscribe: bool,
}

impl Presence {
    pub fn new(role: &'static str, concurrency: Option<usize>, heartbeat: Duration) -> Self {
        Self {
            id: Uuid::new_v4(),
            role,
            concurrency: concurrency.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            heartbeat,
            signs_unsubscribe: false,
        }
    }

    pub fn signing_unsubscribe(mut self, signs: bool) -> Self {
        self.signs_unsubscribe = signs;
        self
    }

    /// Inserts the process row.
    ///
    /// # Errors
    /// The database is unreachable.
    pub async fn register(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        statements::workers::register(
            self.id,
            self.role,
            &host,
            std::process::id() as i32,
            crate::VERSION,
            self.concurrency,
            self.heartbeat,
            self.signs_unsubscribe,
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Removes the process row (clean shutdown). Failure is only logged: the row ages
    /// out of the `workers` view anyway.
    pub async fn deregister(&self, pool: &PgPool) {
        if let Err(error) = statements::workers::deregister(self.id).execute(pool).await {
            tracing::debug!(%error, "could not remove the process row");
        }
    }
}
