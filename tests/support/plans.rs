//! The plans PostgreSQL really uses for a statement, nested statements included (the
//! bodies of the claim functions), captured with auto_explain.
//!
//! auto_explain logs each plan as a NOTICE to the session that ran it, which
//! tokio-postgres hands over as an asynchronous message. Needs a superuser test login
//! (LOAD), as the tests use.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// A session whose every executed plan (nested ones too) is recorded.
pub struct Explained {
    pub client: Client,
    plans: Arc<Mutex<Vec<String>>>,
}

impl Explained {
    pub async fn connect(url: &str) -> Self {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        let plans = Arc::new(Mutex::new(Vec::new()));
        let sink = plans.clone();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notice(notice) = message {
                    sink.lock().unwrap().push(notice.message().to_owned());
                }
            }
        });
        client
            .batch_execute(
                "LOAD 'auto_explain';
                 SET auto_explain.log_min_duration = 0;
                 SET auto_explain.log_nested_statements = on;
                 SET auto_explain.log_level = notice;
                 SET client_min_messages = notice;",
            )
            .await
            .expect("auto_explain");
        Self { client, plans }
    }

    /// Runs `sql` (a script) inside a transaction that is rolled back, and returns the
    /// plans of every statement it executed.
    pub async fn plans_of(&self, sql: &str) -> Vec<String> {
        self.plans.lock().unwrap().clear();
        self.client.batch_execute("BEGIN").await.unwrap();
        let result = self.client.batch_execute(sql).await;
        self.client.batch_execute("ROLLBACK").await.unwrap();
        if let Err(e) = result {
            panic!("{sql}\nfailed: {e:?}");
        }
        // The notices travel on the same connection, ahead of the ROLLBACK's answer.
        self.plans.lock().unwrap().clone()
    }
}

/// `PREPARE p AS <statement>; EXECUTE p(<args>)` under `plan_cache_mode` `mode`, as
/// one script: how a driver runs a parameterised statement.
pub fn prepared(statement: &str, args: &str, mode: &str) -> String {
    format!(
        "DEALLOCATE ALL;
         SET LOCAL plan_cache_mode = {mode};
         PREPARE p AS {statement};
         EXECUTE p({args});
         DEALLOCATE p;"
    )
}
