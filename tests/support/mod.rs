//! Shared test helpers: one test's postrunner in one line ([`app`]), databases and setup
//! SQL ([`db`]), rows with defaults ([`factory`]: clients, one message or many), sender
//! setups and a simulated clock ([`routing`]), executors
//! and processes ([`run`]), and waiting on conditions instead of sleeping ([`eventually`]).

#![allow(dead_code)]

pub mod app;
pub mod chaos;
pub mod db;
pub mod dns_server;
pub mod factory;
pub mod fake_provider;
pub mod gated;
pub mod ha_cluster;
pub mod imap_server;
pub mod logins;
pub mod plans;
pub mod python;
pub mod receiver;
pub mod routing;
pub mod run;
pub mod s3_server;
pub mod smtp_server;
pub mod webhooks;

pub use postrunner_test_db::{eventually, wait_for_count};

/// An HTTP client for the tests (TLS on ring, the process's provider, as in postrunner).
pub fn http() -> reqwest::Client {
    postrunner_providers::http::install_crypto_provider();
    reqwest::Client::new()
}

/// A GET with [`http`]'s client.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// A client builder for the tests, on the process's TLS provider.
pub fn http_builder() -> reqwest::ClientBuilder {
    postrunner_providers::http::install_crypto_provider();
    reqwest::Client::builder()
}

/// A local TCP port nothing listens on at the moment (for a process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Count of jobs in any state.
pub const ALL_JOBS: &str = "SELECT count(*) FROM postrunner.jobs";
/// Count of jobs a worker holds.
pub const RUNNING_JOBS: &str = "SELECT count(*) FROM postrunner.jobs WHERE state = 'running'";
/// Count of live processes.
pub const LIVE_PROCESSES: &str = "SELECT count(*) FROM postrunner.workers";

/// Runs `postrunner verify` on the database and fails the test with its findings when a
/// promise is broken (every test where features meet ends with it).
pub async fn assert_promises_hold(pool: &sqlx::PgPool) {
    let report = postrunner::verify::verify(pool).await.expect("verify runs");
    assert!(report.holds(), "postrunner verify:\n{report}");
}
