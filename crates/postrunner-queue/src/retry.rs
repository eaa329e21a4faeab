//! Retry policy: the backoff schedule and the give-up rule. Pure, so it is unit-tested
//! without a database; `finish` applies its decisions in SQL.
//!
//! The default follows the brief: three retries after 1, 5 and 15 minutes, then the job
//! fails (`max_attempts` = 4 counts the first try). Attempts past the end of the schedule
//! reuse its last step.

use std::str::FromStr;
use std::time::Duration;

/// Delays between attempts: `steps[0]` after the first failure, and so on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    steps: Vec<Duration>,
}

/// What to do with a job whose attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run again after this delay.
    RetryIn(Duration),
    /// Give up: the job is discarded (its message `failed`), keeping the error.
    Discard,
    /// The attempt does not count (the job's handler could not even start it, e.g. its
    /// provider was unavailable): run again at once, attempt given back.
    Reroute,
    /// The attempt's outcome is unknown: hold the job until evidence or the uncertain
    /// wait decides (sql/definitions/340_outbox_uncertain.sql), its attempt counted.
    Hold,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            steps: vec![
                Duration::from_secs(60),
                Duration::from_secs(300),
                Duration::from_secs(900),
            ],
        }
    }
}

impl Backoff {
    /// # Panics
    /// When `steps` is empty: a schedule needs at least one delay.
    pub fn new(steps: Vec<Duration>) -> Self {
        assert!(!steps.is_empty(), "a backoff schedule needs at least one step");
        Self { steps }
    }

    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: i32) -> Duration {
        let index = usize::try_from(attempt.max(1) - 1)
            .unwrap_or(0)
            .min(self.steps.len() - 1);
        self.steps[index]
    }

    /// Decides after attempt `attempt` of `max_attempts` failed; a `permanent` failure
    /// (the job can never succeed) is discarded at once.
    pub fn decide(&self, attempt: i32, max_attempts: i32, permanent: bool) -> Decision {
        if permanent || attempt >= max_attempts {
            Decision::Discard
        } else {
            Decision::RetryIn(self.delay_after(attempt))
        }
    }
}

/// A backoff schedule that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid backoff schedule {input:?}: expected durations separated by commas, like \"1m,5m,15m\"")]
pub struct InvalidBackoff {
    input: String,
}

impl FromStr for Backoff {
    type Err = InvalidBackoff;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidBackoff { input: s.to_owned() };
        let steps = s
            .split(',')
            .map(|part| humantime::parse_duration(part.trim()).map_err(|_| err()))
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err(err());
        }
        Ok(Self { steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn default_schedule_is_one_five_fifteen_minutes_then_give_up() {
        let b = Backoff::default();
        assert_eq!(b.decide(1, 4, false), Decision::RetryIn(MIN));
        assert_eq!(b.decide(2, 4, false), Decision::RetryIn(5 * MIN));
        assert_eq!(b.decide(3, 4, false), Decision::RetryIn(15 * MIN));
        assert_eq!(b.decide(4, 4, false), Decision::Discard);
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        assert_eq!(Backoff::default().decide(1, 4, true), Decision::Discard);
    }

    #[test]
    fn attempts_past_the_schedule_reuse_its_last_step() {
        let b: Backoff = "10s, 1m".parse().unwrap();
        assert_eq!(b.decide(5, 10, false), Decision::RetryIn(MIN));
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!("".parse::<Backoff>().is_err());
        assert!("1m,soon".parse::<Backoff>().is_err());
    }
}
