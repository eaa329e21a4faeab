//! `TestApp`: one test's postrunner, set up in one line: a fresh database, a client with
//! senders, and executors of every built-in kind with short leases. Tests that need
//! more (simulated providers, logins, processes) add them from the other helpers.

use postrunner_queue::executor::Executor;
use postrunner_queue::testing::Running;
use uuid::Uuid;

use super::db::TestDb;
use super::factory;
use super::run::{executor, fast_config, registry, spawn};

pub struct TestApp {
    pub db: TestDb,
}

impl TestApp {
    /// A fresh database and nothing in it.
    pub async fn new() -> Self {
        Self {
            db: TestDb::new().await,
        }
    }

    /// A fresh database with `client`, its `direction`, and senders that never bind
    /// (factory::client).
    pub async fn with_client(client: &str, direction: &str) -> Self {
        let app = Self::new().await;
        factory::client(&app.db.pool, client, direction).await;
        app
    }

    /// An executor of every built-in kind with short leases, for the test to tick or
    /// drain.
    pub fn executor(&self) -> Executor {
        executor(&self.db.pool, registry(&self.db.pool), fast_config())
    }

    /// [`TestApp::executor`], running in the background until stopped.
    pub fn worker(&self) -> Running {
        spawn(&self.db.pool, registry(&self.db.pool), fast_config())
    }

    /// A message enqueued the way an application does.
    pub async fn message(&self, client: &str, direction: &str, to: &str) -> Uuid {
        factory::message(&self.db.pool, client, direction, to).await
    }

    /// `n` messages to distinct recipients, enqueued in one statement.
    pub async fn messages(&self, client: &str, direction: &str, n: i32) {
        factory::messages(&self.db.pool, client, direction, n).await
    }
}
