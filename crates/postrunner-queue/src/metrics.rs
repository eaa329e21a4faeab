//! The queue's metrics: claims, finished attempts and failed statements. The families
//! live here, where they are counted; the process that serves `/metrics` adds them to its
//! registry with [`register`]. Labels are fixed sets (queue, kind, outcome, what was
//! being done): bounded cardinality.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DoingLabel {
    doing: &'static str,
}

/// Claim statement latency buckets, seconds.
const CLAIM_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

fn claim_histogram() -> Histogram {
    Histogram::new(CLAIM_BUCKETS)
}

struct Metrics {
    claims: Family<QueueLabel, Counter>,
    claimed_jobs: Family<QueueLabel, Counter>,
    claim_duration: Family<QueueLabel, Histogram, fn() -> Histogram>,
    jobs_finished: Family<EndLabels, Counter>,
    retries: Family<KindLabel, Counter>,
    database_errors: Family<DoingLabel, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        claims: Family::default(),
        claimed_jobs: Family::default(),
        claim_duration: Family::new_with_constructor(claim_histogram),
        jobs_finished: Family::default(),
        retries: Family::default(),
        database_errors: Family::default(),
    };
    // Known label sets exist from the start (at 0), so rates are defined before the
    // first claim.
    for queue in ["generic", "routed"] {
        let _ = m.claims.get_or_create(&QueueLabel { queue });
        let _ = m.claimed_jobs.get_or_create(&QueueLabel { queue });
    }
    m
});

/// Adds the queue's families to a process's registry (under its prefix).
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register("claims", "Claim statements run", m.claims.clone());
    registry.register("claimed_jobs", "Jobs the claims took", m.claimed_jobs.clone());
    registry.register(
        "claim_duration_seconds",
        "Claim statement latency",
        m.claim_duration.clone(),
    );
    registry.register(
        "jobs_finished",
        "Job attempts finished, by outcome",
        m.jobs_finished.clone(),
    );
    registry.register("retries", "Attempts that ended in a retry", m.retries.clone());
    registry.register(
        "database_errors",
        "Statements that failed, by what was being done",
        m.database_errors.clone(),
    );
}

/// A claim statement of `queue` ("generic" or "routed") took `jobs` in `elapsed`.
pub fn claimed(queue: &'static str, jobs: usize, elapsed: Duration) {
    let label = QueueLabel { queue };
    METRICS.claims.get_or_create(&label).inc();
    METRICS.claimed_jobs.get_or_create(&label).inc_by(jobs as u64);
    METRICS
        .claim_duration
        .get_or_create(&label)
        .observe(elapsed.as_secs_f64());
}

/// How a job attempt ended.
#[derive(Clone, Copy, Debug)]
pub enum AttemptEnd {
    Completed,
    Retried,
    Failed,
    /// Its outcome is uncertain: the job waits in the `held` state.
    Held,
    Rerouted,
}

/// A job attempt of `kind` ended.
pub fn attempt_ended(kind: &str, how: AttemptEnd) {
    let outcome = match how {
        AttemptEnd::Completed => "completed",
        AttemptEnd::Retried => "retried",
        AttemptEnd::Failed => "failed",
        AttemptEnd::Held => "held",
        AttemptEnd::Rerouted => "rerouted",
    };
    METRICS
        .jobs_finished
        .get_or_create(&EndLabels {
            kind: kind.to_owned(),
            outcome,
        })
        .inc();
    if matches!(how, AttemptEnd::Retried) {
        METRICS
            .retries
            .get_or_create(&KindLabel { kind: kind.to_owned() })
            .inc();
    }
}

/// A statement failed while `doing` something (the queue's, or any other part of the
/// process's: one family for all).
pub fn database_error(doing: &'static str) {
    METRICS.database_errors.get_or_create(&DoingLabel { doing }).inc();
}
