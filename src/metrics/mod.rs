//! Prometheus metrics, in two places (docs/metrics.md is the contract the alert rules,
//! the dashboard and the status page rely on):
//!
//! - [`process`]: what this process did since it started (sends, claims, events, ...),
//!   counters and histograms every replica exports on its own `/metrics`; sums across
//!   replicas are right.
//! - [`database`]: the state of the whole system read from PostgreSQL (queue depth,
//!   capacity, health, rates, spend, backups), served once on `/metrics/database`
//!   from a cached, single-flight snapshot, so N replicas never run N expensive reads
//!   and nothing doubles.
//!
//! [`server`] serves both over HTTP (`--metrics-bind` on every role; the web role also
//! on its own port).

pub mod database;
pub mod process;
pub mod server;

/// The content type of the OpenMetrics text both endpoints serve.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
