//! The kinds of job postrunner runs, and the registry every worker builds from them.
//!
//! - `email.send` ([`email`]): send one outbox message.
//! - `system.rescue_expired_leases`, `system.cleanup`, `system.evaluate_alerts`,
//!   `system.probe_providers` ([`system`]), `system.resolve_uncertain`
//!   ([`uncertain`]), `system.read_bounce_mail` ([`bounce_mail`]),
//!   `system.check_domains`, `system.classify_recipient_domains`, `system.rollup_sends`
//!   ([`system`]), `system.dispatch_notifications` and `system.notify` ([`notify`]):
//!   periodic upkeep and alert notifications,
//!   enqueued by the scheduler from `postrunner.schedules`.
//! - `noop` ([`postrunner_queue::noop`]): does nothing (or sleeps, or fails on request); for benchmarks,
//!   tests and checking a deployment end to end.

pub mod backup;
pub mod bounce_mail;
pub mod email;
pub mod notify;
pub mod system;
pub mod uncertain;

use std::sync::Arc;

use sqlx::PgPool;

use crate::unsubscribe::UnsubscribeLinks;
use postrunner_providers::Directory;
use postrunner_queue::handler::Registry;

/// Every built-in kind, sending mail through the adapters of `providers`.
pub fn registry(pool: PgPool, providers: Arc<Directory>) -> Registry {
    registry_with(pool, providers, None)
}

/// [`registry`], with messages carrying signed one-click unsubscribe links when
/// `unsubscribe` is set.
pub fn registry_with(pool: PgPool, providers: Arc<Directory>, unsubscribe: Option<UnsubscribeLinks>) -> Registry {
    let mut registry = Registry::new();
    let send = email::SendEmail::new(pool.clone(), providers.clone()).with_unsubscribe(unsubscribe.clone());
    let resolve = uncertain::ResolveUncertain::new(pool.clone(), providers.clone(), unsubscribe);
    registry
        .register(email::KIND, send)
        .register(uncertain::KIND, resolve)
        .register(bounce_mail::KIND, bounce_mail::ReadBounceMail::new(pool.clone()))
        .register(
            system::PROBE_PROVIDERS,
            system::ProbeProviders::new(pool.clone(), providers.clone()),
        )
        .register(system::RESCUE, system::RescueExpiredLeases::new(pool.clone()))
        .register(system::CLEANUP, system::Cleanup::new(pool.clone()))
        .register(system::CHECK_DOMAINS, system::CheckDomains::new(pool.clone()))
        .register(system::ROLLUP_SENDS, system::RollupSends::new(pool.clone()))
        .register(
            system::CLASSIFY_RECIPIENT_DOMAINS,
            system::ClassifyRecipientDomains::new(pool.clone()),
        )
        .register(backup::KIND, backup::Backup::new(pool.clone()))
        .register(notify::DISPATCH, notify::DispatchNotifications::new(pool.clone()))
        .register(notify::KIND, notify::Notify::new(pool.clone(), providers.clone()))
        .register(system::EVALUATE_ALERTS, system::EvaluateAlerts::new(pool))
        .register(postrunner_queue::noop::KIND, postrunner_queue::noop::Noop);
    registry
}
