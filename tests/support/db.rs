//! A fresh database per test, cloned from a migrated template (crates/postrunner-test-db).

pub use postrunner_test_db::{drop_database, empty_database, server_url, TestDb};
