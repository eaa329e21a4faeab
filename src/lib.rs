//! postrunner: outreach email delivery on a PostgreSQL job queue.
//!
//! PostgreSQL is the single source of truth: applications enqueue mail with a plain
//! `INSERT INTO postrunner.outbox`, and every postrunner process (worker, scheduler,
//! web) is stateless, coordinating only through rows, row locks and advisory locks.
//!
//! # Module map
//!
//! The layers below live in crates of their own (README.md, "Where to find things"):
//! postrunner-schema (the database), postrunner-queue (the job engine and the routed
//! claim), postrunner-providers (the adapters), postrunner-feedback (webhooks, bounce
//! mail), postrunner-sim (provider simulators). This crate is the program on top:
//!
//! - [`config`]: command-line flags and `POSTRUNNER_*` variables, validated once.
//! - [`commands`]: every subcommand, one file each (`main.rs` only dispatches).
//! - [`roles`]: the long-running processes (`worker`, `scheduler`, `web`).
//! - [`kinds`]: what each kind of job does (`email.send`, system tasks).
//! - [`periodic`]: cron schedules that run exactly once per tick across replicas.
//! - [`web`]: the HTTP routes (`/webhooks/<provider>`, `/u/<token>`, `/healthz`, `/readyz`).
//! - [`unsubscribe`]: signed one-click unsubscribe links (RFC 8058).
//! - [`compliance`]: SPF, DKIM, DMARC and MX checks of the sender domains, recipient
//!   domains' mailbox groups.
//! - [`metrics`]: Prometheus metrics, per process and from the database.
//! - [`notifications`]: alerts sent out by email, Slack-compatible webhook and SMS.
//! - [`status`]: the operator's summary (`postrunner status`, the `/status` page).
//! - [`backup`]: backups to S3-compatible storage, their checks and restores.
//! - [`verify`]: `postrunner verify`, every promise checked against the database.
//! - [`html`]: escaping for the few pages postrunner serves.
//! - [`telemetry`], [`shutdown`]: process plumbing.
//!
//! tests/maps.rs checks that this map names every module.

pub mod backup;
pub mod commands;
pub mod compliance;
pub mod config;
pub mod html;
pub mod kinds;
pub mod metrics;
pub mod notifications;
pub mod periodic;
pub mod roles;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod unsubscribe;
pub mod verify;
pub mod web;

/// The version recorded in `postrunner.processes` for each running process.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
