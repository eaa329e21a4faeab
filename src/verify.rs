//! `postrunner verify`: checks the database against every promise postrunner makes and
//! reports each violation with the rows involved.
//!
//! The promises are SQL (`postrunner.verify()`, sql/definitions/530_verify_promises.sql), so an operator
//! can read and run them in psql; this module calls the function in one statement (one
//! snapshot) and shapes what it returns. A finding of severity `explained` is not a
//! violation: a duplicate the documented uncertain path accounts for, named with the
//! attempt that explains it.
//!
//! tests/verify.rs seeds each violation class and sees it reported; the feedback-loop,
//! uncertain, boundary and failover tests, the heavy tests and `postrunner demo` end
//! with it passing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use postrunner_schema::statements;
use sqlx::PgPool;

/// One finding: which promise, how serious, about what, in words, and the rows involved.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Finding {
    pub promise: String,
    /// `violation`, or `explained` (the uncertain path accounts for it).
    pub severity: String,
    pub subject: String,
    pub detail: String,
    pub involved: serde_json::Value,
}

impl Finding {
    pub fn is_violation(&self) -> bool {
        self.severity == "violation"
    }
}

/// What a run found, and how long it took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    #[serde(serialize_with = "as_millis")]
    pub elapsed: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Report {
    /// The findings that break a promise.
    pub fn violations(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_violation())
    }

    /// Every promise holds.
    pub fn holds(&self) -> bool {
        self.violations().next().is_none()
    }

    /// Violations per promise.
    pub fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for finding in self.violations() {
            *counts.entry(finding.promise.as_str()).or_default() += 1;
        }
        counts
    }

    /// Duplicates the uncertain path explains.
    pub fn explained(&self) -> usize {
        self.findings.iter().filter(|f| !f.is_violation()).count()
    }
}

/// Every promise postrunner keeps, by name (the `promise` of a finding), as
/// sql/definitions/530_verify_promises.sql lists them.
pub const PROMISES: &[&str] = &[
    "suppressed_recipient_mailed",
    "erased_in_clear",
    "duplicate_send",
    "address_day_limit",
    "pacing",
    "provider_minute",
    "monthly_budget",
    "mailbox_group_hour",
    "mailbox_group_day",
    "uncertain_unresolved",
    "job_without_message",
    "message_without_job",
    "status_not_job_state",
    "status_behind_events",
    "lane_parked_with_work",
];

/// The promises that are limits (a send beyond one is an overshoot).
pub const LIMIT_PROMISES: &[&str] = &[
    "address_day_limit",
    "pacing",
    "provider_minute",
    "monthly_budget",
    "mailbox_group_hour",
    "mailbox_group_day",
];

/// Checks every promise now.
///
/// # Errors
/// The database could not be read.
pub async fn verify(pool: &PgPool) -> Result<Report, sqlx::Error> {
    let started = Instant::now();
    let findings = statements::verify::findings().rows::<Finding>().fetch_all(pool).await?;
    Ok(Report {
        findings,
        elapsed: started.elapsed(),
    })
}

/// At most this many findings of one promise are printed in full (all are counted).
const SHOWN_PER_PROMISE: usize = 20;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for finding in &self.findings {
            let n = shown.entry(finding.promise.as_str()).or_default();
            *n += 1;
            if *n <= SHOWN_PER_PROMISE {
                writeln!(f, "{} [{}] {}", finding.promise, finding.severity, finding.detail)?;
                writeln!(f, "    {}", finding.involved)?;
            }
        }
        let counts = self.counts();
        for promise in PROMISES {
            let n = counts.get(promise).copied().unwrap_or(0);
            writeln!(
                f,
                "{promise:<28} {}",
                if n == 0 {
                    "holds".to_owned()
                } else {
                    format!("{n} VIOLATIONS")
                }
            )?;
        }
        let explained = self.explained();
        if explained > 0 {
            writeln!(
                f,
                "{explained} duplicates explained by the uncertain path (duplicate_policy resend)"
            )?;
        }
        write!(
            f,
            "{} in {} ms",
            if self.holds() {
                "every promise holds"
            } else {
                "PROMISES BROKEN"
            },
            self.elapsed.as_millis()
        )
    }
}
