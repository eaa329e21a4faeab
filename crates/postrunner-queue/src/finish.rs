//! Recording what happened to claimed jobs, in batches: one transaction completes,
//! records and fails a whole batch, so the cost per job is a few index operations
//! rather than a round trip and a commit.
//!
//! Every write is guarded by the claim's lease token (see `sql/statements/queue/complete.sql`): a
//! worker that lost its lease finishes nothing, and [`FinishReport::lost`] counts those.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::handler::Registry;
use super::leases::Lease;
use super::retry::Decision;
use super::{JobId, QueueError};

use postrunner_schema::statements;

/// A job whose attempt ended, and how.
#[derive(Clone, Debug)]
pub struct Finished {
    pub id: JobId,
    pub lease_token: Uuid,
    pub kind: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    /// Done; the value (if any) is handed to the kind's `record` in the same transaction.
    Completed(Option<serde_json::Value>),
    /// The attempt failed; `decision` says whether and when to retry.
    Failed { error: String, decision: Decision },
}

/// How a batch was recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishReport {
    pub completed: usize,
    pub retried: usize,
    pub discarded: usize,
    /// Jobs held because their attempt's outcome is uncertain.
    pub held: usize,
    /// Jobs whose lease this worker no longer held: nothing was written for them.
    pub lost: usize,
    /// Jobs whose rows another transaction held at that instant (an application's lock
    /// on a message): nothing was written for them yet; record them again shortly.
    pub busy: Vec<JobId>,
}

/// Records a batch of finished jobs in one transaction.
///
/// # Errors
/// [`QueueError`] when the transaction fails; nothing of the batch is then recorded and
/// the caller may retry it as a whole.
pub async fn finish(
    pool: &PgPool,
    registry: &Registry,
    batch: &[Finished],
    now: Option<DateTime<Utc>>,
) -> Result<FinishReport, QueueError> {
    // The common case, plain completions with nothing to record, is one autocommit
    // statement: no BEGIN/COMMIT round trips.
    if batch.iter().all(|f| matches!(f.outcome, Outcome::Completed(None))) {
        return complete_plain(pool, batch).await;
    }
    let mut report = FinishReport::default();
    let mut tx = postrunner_schema::begin(pool)
        .await
        .map_err(QueueError::wrap("begin finish"))?;
    let done: Vec<&Finished> = batch
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Completed(_)))
        .collect();
    let completed = complete(&mut tx, registry, &done).await?;
    report.completed = completed.len();
    record_results(&mut tx, registry, &done, &completed).await?;
    let failures_tried = fail(&mut tx, registry, batch, now, &mut report).await?;
    // Jobs that write their message, written neither way: their rows were held by
    // another transaction (try again) or they are no longer this worker's (lost). Rare:
    // one read tells which.
    let unwritten: Vec<&Finished> = batch
        .iter()
        .filter(|f| writes_message(registry, f))
        .filter(|f| !completed.contains(&f.id) && !failures_tried.contains(&f.id))
        .collect();
    report.busy = still_leased(&mut tx, &unwritten).await?;
    tx.commit().await.map_err(QueueError::wrap("commit finish"))?;
    report.lost = batch.len() - report.completed - report.retried - report.discarded - report.held - report.busy.len();
    Ok(report)
}

/// Jobs whose completion writes their outbox message: rows applications can lock
/// (SELECT ... FOR UPDATE). Their outcomes are written only for rows locked without
/// waiting; the others wait for a later write instead of holding up the batch
/// (sql/statements/queue/complete_email.sql).
fn writes_message(registry: &Registry, finished: &Finished) -> bool {
    registry
        .get(&finished.kind)
        .is_some_and(|handler| handler.completes_message())
}

/// A batch of plain completions, in one autocommit statement.
async fn complete_plain(pool: &PgPool, batch: &[Finished]) -> Result<FinishReport, QueueError> {
    let (ids, tokens): (Vec<JobId>, Vec<Uuid>) = batch.iter().map(|f| (f.id, f.lease_token)).unzip();
    let completed = statements::queue::complete(&ids, &tokens)
        .execute(pool)
        .await
        .map_err(QueueError::wrap("complete"))?
        .rows_affected() as usize;
    Ok(FinishReport {
        completed,
        lost: batch.len() - completed,
        ..FinishReport::default()
    })
}

/// `complete` or `complete_email`: the same parameters, the same result.
type Complete = for<'q> fn(&'q [JobId], &'q [Uuid]) -> statements::Statement<'q>;

/// Completes `done` (jobs that write their message through their own statement); the
/// ids really completed.
async fn complete(
    tx: &mut PgConnection,
    registry: &Registry,
    done: &[&Finished],
) -> Result<HashSet<JobId>, QueueError> {
    let mut completed = HashSet::new();
    let (messages, others): (Vec<&Finished>, Vec<&Finished>) = done.iter().partition(|f| writes_message(registry, f));
    let email: Complete = statements::queue::complete_email;
    let plain: Complete = statements::queue::complete;
    for (statement, jobs) in [(email, messages), (plain, others)] {
        if jobs.is_empty() {
            continue;
        }
        let (ids, tokens): (Vec<JobId>, Vec<Uuid>) = jobs.iter().map(|f| (f.id, f.lease_token)).unzip();
        let deleted: Vec<JobId> = statement(&ids, &tokens)
            .scalar()
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::wrap("complete"))?;
        completed.extend(deleted);
    }
    Ok(completed)
}

/// Hands results to their kind's record hook, only for jobs really completed.
async fn record_results(
    tx: &mut PgConnection,
    registry: &Registry,
    done: &[&Finished],
    completed: &HashSet<JobId>,
) -> Result<(), QueueError> {
    let mut by_kind: BTreeMap<&str, Vec<(JobId, serde_json::Value)>> = BTreeMap::new();
    for f in done {
        if let Outcome::Completed(Some(value)) = &f.outcome {
            if completed.contains(&f.id) {
                by_kind.entry(f.kind.as_str()).or_default().push((f.id, value.clone()));
            }
        }
    }
    for (kind, results) in by_kind {
        if let Some(handler) = registry.get(kind) {
            handler
                .record(tx, &results)
                .await
                .map_err(QueueError::wrap("record results"))?;
        }
    }
    Ok(())
}

/// Records the failed attempts of `batch` (retry, discard, reroute, hold), counting
/// them in `report`; the ids it tried to write (a message job whose row was busy is not
/// tried).
async fn fail(
    tx: &mut PgConnection,
    registry: &Registry,
    batch: &[Finished],
    now: Option<DateTime<Utc>>,
    report: &mut FinishReport,
) -> Result<HashSet<JobId>, QueueError> {
    let mut failed: Vec<&Finished> = batch
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Failed { .. }))
        .collect();
    let message_failures: Vec<JobId> = failed
        .iter()
        .filter(|f| writes_message(registry, f))
        .map(|f| f.id)
        .collect();
    if !message_failures.is_empty() {
        let locked: HashSet<JobId> = statements::queue::lock_batch(&message_failures)
            .scalar()
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::wrap("lock the batch"))?
            .into_iter()
            .collect();
        failed.retain(|f| !writes_message(registry, f) || locked.contains(&f.id));
    }
    if failed.is_empty() {
        return Ok(HashSet::new());
    }
    let mut ids = Vec::with_capacity(failed.len());
    let mut tokens = Vec::with_capacity(failed.len());
    let mut states = Vec::with_capacity(failed.len());
    let mut delays = Vec::with_capacity(failed.len());
    let mut errors = Vec::with_capacity(failed.len());
    for f in &failed {
        let Outcome::Failed { error, decision } = &f.outcome else {
            continue;
        };
        ids.push(f.id);
        tokens.push(f.lease_token);
        let (state, delay) = match decision {
            Decision::RetryIn(delay) => ("retryable", delay.as_secs_f64()),
            Decision::Discard => ("discarded", 0.0),
            Decision::Reroute => ("reroute", 0.0),
            Decision::Hold => ("held", 0.0),
        };
        states.push(state);
        delays.push(delay);
        errors.push(storable(error));
    }
    let written: HashSet<JobId> = statements::queue::fail(&ids, &tokens, &states, &delays, &errors, now)
        .scalar()
        .fetch_all(&mut *tx)
        .await
        .map_err(QueueError::wrap("record failures"))?
        .into_iter()
        .collect();
    for (id, state) in ids.iter().zip(&states) {
        if written.contains(id) {
            match *state {
                "retryable" | "reroute" => report.retried += 1,
                "held" => report.held += 1,
                _ => report.discarded += 1,
            }
        }
    }
    Ok(ids.into_iter().collect())
}

/// Which of `unwritten` this worker still leases (their rows were busy: write them
/// again shortly); the others were lost.
async fn still_leased(tx: &mut PgConnection, unwritten: &[&Finished]) -> Result<Vec<JobId>, QueueError> {
    if unwritten.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, tokens): (Vec<JobId>, Vec<Uuid>) = unwritten.iter().map(|f| (f.id, f.lease_token)).unzip();
    let still_ours: HashSet<JobId> = statements::queue::still_leased(&ids, &tokens)
        .scalar()
        .fetch_all(&mut *tx)
        .await
        .map_err(QueueError::wrap("look for jobs still leased"))?
        .into_iter()
        .collect();
    Ok(ids.into_iter().filter(|id| still_ours.contains(id)).collect())
}

/// An error message as it can be stored: PostgreSQL text cannot hold NUL, and a
/// provider's error page should not fill the table.
fn storable(error: &str) -> String {
    const MAX: usize = 2000;
    let mut clean: String = error.chars().filter(|c| *c != '\0').take(MAX).collect();
    if error.chars().count() > MAX {
        clean.push('…');
    }
    clean
}

/// Gives back jobs this worker claimed but will not finish (shutdown): they become
/// available at once. `started` says whether the attempt had begun (it then counts, and
/// a last attempt is discarded) or the job was only prefetched (it does not count).
/// Returns how many were released.
///
/// # Errors
/// [`QueueError`] when the update fails; the jobs are then rescued when their lease expires.
pub async fn release(pool: &PgPool, jobs: &[Lease], started: bool) -> Result<i64, QueueError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let (ids, tokens): (Vec<JobId>, Vec<Uuid>) = jobs.iter().copied().unzip();
    let started = vec![started; ids.len()];
    let released: i64 = statements::queue::release(&ids, &tokens, &started)
        .scalar()
        .fetch_one(pool)
        .await
        .map_err(QueueError::wrap("release"))?;
    Ok(released)
}
