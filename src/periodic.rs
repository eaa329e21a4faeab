//! Periodic tasks: `postrunner.schedules` rows with seconds-first cron expressions.
//!
//! Any number of schedulers may run. For each due schedule every scheduler tries to move
//! `next_run_at` from the tick it saw to the following tick with a compare-and-set
//! (`sql/statements/periodic/advance.sql`); the one whose UPDATE returns the row owns the tick and,
//! in the same transaction, enqueues the task's job and logs the tick in
//! `schedule_runs`. Exactly one replica wins each tick; missed ticks (every scheduler
//! was down) are skipped, not replayed, because the next tick is computed from "now".

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use postrunner_schema::statements;

/// A schedule's cron expression does not parse.
#[derive(Debug, thiserror::Error)]
#[error("schedule {schedule:?}: invalid cron expression {cron:?}: {reason}")]
pub struct InvalidCron {
    pub schedule: String,
    pub cron: String,
    pub reason: String,
}

/// The first tick of `cron` strictly after `after`.
///
/// # Errors
/// [`InvalidCron`] when the expression does not parse or has no future tick.
pub fn next_tick(schedule: &str, cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, InvalidCron> {
    let invalid = |reason: String| InvalidCron {
        schedule: schedule.into(),
        cron: cron.into(),
        reason,
    };
    let parsed = cron::Schedule::from_str(cron).map_err(|e| invalid(e.to_string()))?;
    parsed
        .after(&after)
        .next()
        .ok_or_else(|| invalid("it has no future tick".into()))
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    name: String,
    cron: String,
    kind: String,
    args: serde_json::Value,
    priority: i16,
    next_run_at: Option<DateTime<Utc>>,
}

/// What one pass over the schedules did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Ticks this scheduler won: (schedule, tick, enqueued job or None if still pending).
    pub won: Vec<(String, DateTime<Utc>, Option<i64>)>,
    /// The earliest upcoming tick of any schedule, to sleep until.
    pub next_tick: Option<DateTime<Utc>>,
}

/// Errors of a pass.
#[derive(Debug, thiserror::Error)]
pub enum PeriodicError {
    #[error("schedules: database error")]
    Db(#[from] sqlx::Error),
}

/// Runs one pass at `now` (`None`: the database clock) for scheduler `me`.
///
/// # Errors
/// [`PeriodicError`] on database errors; invalid cron expressions are logged and skipped.
pub async fn run_due(pool: &PgPool, me: Uuid, now: Option<DateTime<Utc>>) -> Result<Pass, PeriodicError> {
    let now = match now {
        Some(now) => now,
        None => statements::common::database_now().scalar().fetch_one(pool).await?,
    };
    let schedules: Vec<ScheduleRow> = statements::periodic::due().rows().fetch_all(pool).await?;
    let mut pass = Pass::default();
    for s in schedules {
        let following = match next_tick(&s.name, &s.cron, now) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "skipping schedule");
                continue;
            }
        };
        match s.next_run_at {
            // Never run: set its first tick; nothing is due yet.
            None => {
                statements::periodic::advance(&s.name, None, following)
                    .execute(pool)
                    .await?;
                pass.next_tick = earliest(pass.next_tick, following);
            }
            Some(tick) if tick <= now => {
                let mut tx = postrunner_schema::begin(pool).await?;
                let won = statements::periodic::advance(&s.name, Some(tick), following)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if won {
                    let job: Option<i64> =
                        statements::periodic::record_run(&s.name, &s.kind, &s.args, s.priority, tick, me)
                            .scalar()
                            .fetch_one(&mut *tx)
                            .await?;
                    tx.commit().await?;
                    tracing::debug!(schedule = %s.name, %tick, job.id = ?job, "tick won");
                    pass.won.push((s.name.clone(), tick, job));
                }
                pass.next_tick = earliest(pass.next_tick, following);
            }
            Some(tick) => pass.next_tick = earliest(pass.next_tick, tick),
        }
    }
    Ok(pass)
}

fn earliest(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.min(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_five_seconds_ticks_on_multiples_of_five() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 3).unwrap();
        let next = next_tick("t", "*/5 * * * * *", at).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap());
        // Strictly after: a tick at `after` itself is not returned.
        assert_eq!(
            next_tick("t", "*/5 * * * * *", next).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap()
        );
    }

    #[test]
    fn invalid_expressions_name_the_schedule() {
        let err = next_tick("nightly", "every night", Utc::now()).unwrap_err();
        assert!(err.to_string().contains("nightly"));
    }
}
