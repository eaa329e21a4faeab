//! Which backups to keep: the newest verified backup of each of the last `daily` days
//! that have one, and of each of the last `weekly` ISO weeks; anything newer than the
//! newest verified backup too (it may still be checked). Everything else is deleted
//! from storage and marked `pruned`.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike as _, Utc};
use sqlx::PgPool;

use super::store::BackupStore;
use super::BackupError;

use postrunner_schema::statements;

/// A backup as the policy sees it.
#[derive(Clone, Debug)]
pub struct Kept {
    pub key: String,
    pub started_at: DateTime<Utc>,
    pub status: String,
}

/// The keys to delete under the policy (see the module docs).
pub fn to_prune(backups: &[Kept], daily: usize, weekly: usize) -> Vec<String> {
    let mut verified: Vec<&Kept> = backups.iter().filter(|b| b.status == "verified").collect();
    verified.sort_by_key(|b| std::cmp::Reverse(b.started_at));
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for backup in &verified {
        let day = backup.started_at.date_naive();
        if days.len() < daily && days.insert(day) {
            keep.insert(&backup.key);
        }
        let week = (day.iso_week().year(), day.iso_week().week());
        if weeks.len() < weekly && weeks.insert(week) {
            keep.insert(&backup.key);
        }
    }
    let newest_verified = verified.first().map(|b| b.started_at);
    backups
        .iter()
        .filter(|b| b.status != "pruned" && b.status != "running")
        .filter(|b| !keep.contains(b.key.as_str()))
        .filter(|b| newest_verified.is_some_and(|newest| b.started_at < newest))
        .map(|b| b.key.clone())
        .collect()
}

/// Applies the policy: deletes from storage, marks pruned; returns how many.
///
/// # Errors
/// The database or the storage refused.
pub async fn prune(pool: &PgPool, store: &BackupStore, daily: usize, weekly: usize) -> Result<usize, BackupError> {
    // The list's first four columns: id, object_key, status, started_at.
    let rows: Vec<(i64, String, String, DateTime<Utc>)> = statements::backups::list().rows().fetch_all(pool).await?;
    let backups: Vec<Kept> = rows
        .into_iter()
        .map(|(_, key, status, started_at)| Kept {
            key,
            started_at,
            status,
        })
        .collect();
    let doomed = to_prune(&backups, daily, weekly);
    for key in &doomed {
        store.delete(key).await?;
    }
    statements::backups::pruned(&doomed).execute(pool).await?;
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn backup(day: u32, hour: u32, status: &str) -> Kept {
        let started_at = Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap();
        Kept {
            key: format!("{day:02}-{hour:02}"),
            started_at,
            status: status.to_owned(),
        }
    }

    #[test]
    fn keeps_the_newest_of_each_recent_day_and_week() {
        // 30 days of daily backups (November 2026), a second one on the 30th.
        let mut backups: Vec<Kept> = (1..=30).map(|d| backup(d, 3, "verified")).collect();
        backups.push(backup(30, 12, "verified"));
        let pruned: BTreeSet<String> = to_prune(&backups, 7, 4).into_iter().collect();
        let kept: BTreeSet<String> = backups
            .iter()
            .map(|b| b.key.clone())
            .filter(|k| !pruned.contains(k))
            .collect();
        // 7 days: 30 (12:00, the newest that day), 29 .. 24; weeks: the newest of the
        // weeks of the 30th, 29th (Sunday, same week as the 23rd), 22nd and 15th.
        let expected: BTreeSet<String> = [
            "30-12", "29-03", "28-03", "27-03", "26-03", "25-03", "24-03", "22-03", "15-03",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(kept, expected);
    }

    #[test]
    fn failed_backups_go_and_unchecked_new_ones_stay() {
        let backups = vec![
            backup(1, 3, "failed"),
            backup(2, 3, "verified"),
            backup(3, 3, "uploaded"),
            backup(3, 4, "running"),
        ];
        assert_eq!(to_prune(&backups, 7, 4), ["01-03"]);
        // Nothing verified yet: nothing is deleted.
        assert!(to_prune(&[backup(1, 3, "failed")], 7, 4).is_empty());
    }
}
