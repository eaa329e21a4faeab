//! The long-running roles. Each is stateless: any number of replicas coordinate only
//! through the database.
//!
//! - [`worker`]: runs jobs (sends mail, runs periodic tasks).
//! - [`scheduler`]: enqueues periodic tasks, each tick exactly once across replicas.
//! - [`web`]: answers HTTP (provider webhooks, health).
//! - [`presence`]: the `postrunner.processes` row every role keeps fresh.

pub mod presence;
pub mod scheduler;
pub mod web;
pub mod worker;
