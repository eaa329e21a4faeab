//! A fresh database per test, cloned from a migrated template (crates/postrunner-test-db).

pub use postrunner_test_db::{server_url, TestDb};
