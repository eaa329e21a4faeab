//! The integration tests: one crate (see Cargo.toml), one module per area. Each test
//! gets its own database cloned from a migrated template, so tests run in parallel.
//! `TEST_LOG=1` shows the library's logs.

mod support;

mod config;
mod failover;
mod import;
mod migrate;
mod outbox;
mod periodic;
mod providers;
mod queue;
mod resilience;
mod roles;
mod routing;
mod routing_scale;
mod smtp;
mod sql_files;
mod workers;
