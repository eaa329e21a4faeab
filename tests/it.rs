//! The integration tests: one crate (see Cargo.toml), one module per area. Each test
//! gets its own database cloned from a migrated template, so tests run in parallel.
//! `TEST_LOG=1` shows the library's logs.

mod support;

mod backups;
mod bounce_mail;
mod bounce_mailbox;
mod boundaries;
mod chaos;
mod config;
mod database_failover;
mod database_tls;
mod dkim;
mod domain_checks;
mod failover;
mod feedback;
mod feedback_loop;
mod gdpr;
mod ha;
mod import;
mod mailbox_groups;
mod maps;
mod metrics;
mod migrate;
mod notifications;
mod outbox;
mod pauses;
mod periodic;
mod pgbouncer;
mod plans;
mod privileges;
mod provider_suppressions;
mod providers;
mod recipient_windows;
mod redaction;
mod resilience;
mod retention;
mod roles;
mod routing;
mod routing_scale;
mod ses_webhooks;
mod settings;
mod smtp;
mod status;
mod tenancy;
mod uncertain;
mod unsubscribe;
mod verify;
mod webhooks;
mod workers;
