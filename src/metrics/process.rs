//! Per-process metrics: one registry per process, counters and histograms with fixed
//! label sets (no job ids, no recipients, no sender addresses: bounded cardinality).
//! Instrumented code calls the small functions below; they never fail and cost an
//! atomic add (a hash lookup for labelled families).

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use postrunner_providers::SendError;
/// The queue's counters, for the code of this crate that reports through this module.
pub use postrunner_queue::metrics::{attempt_ended, claimed, database_error, AttemptEnd};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    provider: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    provider: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Provider call latency buckets, seconds.
const SEND_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

fn send_histogram() -> Histogram {
    Histogram::new(SEND_BUCKETS)
}

struct Metrics {
    registry: Registry,
    build_info: Family<BuildLabels, Gauge>,
    sends: Family<SendLabels, Counter>,
    send_duration: HistogramFamily<ProviderLabel>,
    reroutes: Family<ProviderLabel, Counter>,
    events: Family<EventLabels, Counter>,
    webhooks_refused: Family<RefusedLabels, Counter>,
    unsubscribes: Family<OutcomeLabel, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
static ROLE: OnceLock<&'static str> = OnceLock::new();

impl Metrics {
    fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("postrunner"),
            build_info: Family::default(),
            sends: Family::default(),
            send_duration: Family::new_with_constructor(send_histogram),
            reroutes: Family::default(),
            events: Family::default(),
            webhooks_refused: Family::default(),
            unsubscribes: Family::default(),
        };
        m.registry
            .register("build_info", "Which build runs in which role", m.build_info.clone());
        m.registry
            .register("sends", "Provider calls by outcome", m.sends.clone());
        m.registry.register(
            "send_duration_seconds",
            "Provider call latency",
            m.send_duration.clone(),
        );
        m.registry
            .register("events", "Provider events stored", m.events.clone());
        m.registry.register(
            "webhooks_refused",
            "Webhook requests refused",
            m.webhooks_refused.clone(),
        );
        m.registry
            .register("unsubscribes", "One-click unsubscribe POSTs", m.unsubscribes.clone());
        // The queue's families: claims, attempts, failed statements.
        postrunner_queue::metrics::register(&mut m.registry);
        // Known label sets exist from the start (at 0), so rates are defined before the
        // first event.
        for outcome in ["new", "repeated", "invalid"] {
            let _ = m.unsubscribes.get_or_create(&OutcomeLabel { outcome });
        }
        m
    }
}

/// Names this process's role in `postrunner_build_info` (the first call wins).
pub fn set_role(role: &'static str) {
    let _ = ROLE.set(role);
    METRICS
        .build_info
        .get_or_create(&BuildLabels {
            version: crate::VERSION.to_owned(),
            role: role.to_owned(),
        })
        .set(1);
}

/// The OpenMetrics text of this process's metrics.
pub fn encode() -> String {
    let mut text = String::with_capacity(8192);
    prometheus_client::encoding::text::encode(&mut text, &METRICS.registry).expect("writing to a String cannot fail");
    text
}

/// A provider call ended after `elapsed`.
pub fn send_finished(provider: &str, result: Result<(), &SendError>, elapsed: Duration) {
    let outcome = match result {
        Ok(()) => "sent",
        Err(SendError::RecipientRefused { .. }) => "recipient_refused",
        Err(SendError::Rejected { .. }) => "rejected",
        Err(SendError::Transient { .. }) => "transient",
        Err(e @ SendError::Unavailable { retry_after, .. }) => {
            if e.provider_may_have_taken() {
                "uncertain"
            } else if retry_after.is_some() {
                "rate_limited"
            } else {
                "unavailable"
            }
        }
    };
    METRICS
        .sends
        .get_or_create(&SendLabels {
            provider: provider.to_owned(),
            outcome,
        })
        .inc();
    METRICS
        .send_duration
        .get_or_create(&ProviderLabel {
            provider: provider.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
}

/// A message goes back to routing because `provider` was unavailable.
pub fn rerouted(provider: &str) {
    METRICS
        .reroutes
        .get_or_create(&ProviderLabel {
            provider: provider.to_owned(),
        })
        .inc();
}

/// `n` events of `kind` from `provider` were stored.
pub fn events_stored(provider: &str, kind: &str, n: u64) {
    METRICS
        .events
        .get_or_create(&EventLabels {
            provider: provider.to_owned(),
            kind: kind.to_owned(),
        })
        .inc_by(n);
}

/// A webhook request to `provider` was refused for `reason`.
pub fn webhook_refused(provider: &str, reason: &'static str) {
    METRICS
        .webhooks_refused
        .get_or_create(&RefusedLabels {
            provider: provider.to_owned(),
            reason,
        })
        .inc();
}

/// A one-click unsubscribe POST: `new`, `repeated` or `invalid`.
pub fn unsubscribe(outcome: &'static str) {
    METRICS.unsubscribes.get_or_create(&OutcomeLabel { outcome }).inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_exported_with_the_contracts_names() {
        set_role("worker");
        let error = SendError::Unavailable {
            provider: "sg".into(),
            detail: "timeout".into(),
            retry_after: None,
            may_have_taken: true,
        };
        send_finished("sg", Err(&error), Duration::from_millis(30));
        send_finished("sg", Ok(()), Duration::from_millis(20));
        claimed("routed", 3, Duration::from_millis(2));
        attempt_ended("email.send", AttemptEnd::Retried);
        let text = encode();
        for line in [
            "postrunner_sends_total{provider=\"sg\",outcome=\"uncertain\"} 1",
            "postrunner_sends_total{provider=\"sg\",outcome=\"sent\"} 1",
            "postrunner_send_duration_seconds_bucket{le=\"0.025\",provider=\"sg\"} 1",
            "postrunner_claimed_jobs_total{queue=\"routed\"} 3",
            "postrunner_retries_total{kind=\"email.send\"} 1",
            "postrunner_unsubscribes_total{outcome=\"invalid\"} 0",
            "# TYPE postrunner_build_info gauge",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
