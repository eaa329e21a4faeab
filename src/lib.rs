//! postrunner: outreach email delivery on a PostgreSQL job queue.
//!
//! PostgreSQL is the single source of truth: applications enqueue mail with a plain
//! `INSERT INTO postrunner.outbox`, and every postrunner process (worker, scheduler,
//! web) is stateless, coordinating only through rows, row locks and advisory locks.
//!
//! # Module map
//!
//! - [`config`]: command-line flags and `POSTRUNNER_*` variables, validated once.
//! - [`db`]: connection pools, migrations, and the embedded local PostgreSQL.
//! - [`queue`]: the one job engine under everything: claim (SKIP LOCKED), leases and
//!   rescue, batched completion, retries with backoff, promotion of due jobs, the
//!   LISTEN/NOTIFY wake-up, and the [`queue::executor`] that drives them.
//! - [`kinds`]: what each kind of job does (`email.send`, system tasks, `noop`).
//! - [`routing`]: sender pools, daily limits, warm-up, pacing and provider rates; the
//!   rules are SQL, applied inside the claim.
//! - [`providers`]: adapters that hand a message to an email provider.
//! - [`periodic`]: cron schedules that run exactly once per tick across replicas.
//! - [`feedback`]: provider events after a send (webhooks verified and normalised).
//! - [`web`]: the HTTP routes (`/webhooks/<provider>`, `/u/<token>`, `/healthz`, `/readyz`).
//! - [`unsubscribe`]: signed one-click unsubscribe links (RFC 8058).
//! - [`compliance`]: SPF, DKIM, DMARC and MX checks of the sender domains, recipient
//!   domains' mailbox groups.
//! - [`metrics`]: Prometheus metrics, per process and from the database.
//! - [`notifications`]: alerts sent out by email, Slack-compatible webhook and SMS.
//! - [`status`]: the operator's summary (`postrunner status`, the `/status` page).
//! - [`backup`]: backups to S3-compatible storage, their checks and restores.
//! - [`verify`]: `postrunner verify`, every promise checked against the database.
//! - [`roles`]: the long-running processes (`worker`, `scheduler`, `web`).
//! - [`commands`]: one-shot commands (`demo`, `bench`, `import`, `backup`, GDPR's).
//! - [`html`]: escaping for the few pages postrunner serves.
//! - [`telemetry`], [`shutdown`], [`secret`]: process plumbing.
//!
//! tests/maps.rs checks that this map names every module.
//!
//! SQL that matters lives in `migrations/` (schema) and `sql/` (one statement per file,
//! each with a header saying what it locks and why); the code `include_str!`s it.

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
