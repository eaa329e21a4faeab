//! The completer: writes job outcomes in batches, one transaction per batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::{ExecutorStats, Outage};
use crate::finish::{finish, Finished};
use crate::handler::Registry;
use crate::leases::Leases;

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 2000;

/// How soon an outcome whose rows another transaction held is written again.
const BUSY_RETRY: Duration = Duration::from_millis(50);

pub(super) struct Completer {
    pub(super) pool: PgPool,
    pub(super) registry: Arc<Registry>,
    pub(super) stats: Arc<ExecutorStats>,
    pub(super) outage: Arc<Outage>,
    pub(super) leases: Arc<Leases>,
    /// Once cancelled, an outcome that cannot be written is given up on (logged) instead
    /// of retried: its job's lease then runs out and it is rescued.
    pub(super) give_up: CancellationToken,
}

impl Completer {
    /// Writes everything received, batching whatever piled up during the previous write,
    /// until every sender is gone. Outcomes whose rows another transaction held are
    /// kept (still held, still heartbeated, their claim budget still taken) and written
    /// again shortly, with whatever arrived meanwhile.
    pub(super) async fn run(self, mut done: mpsc::UnboundedReceiver<(Finished, OwnedSemaphorePermit)>) {
        let (mut batch, mut permits) = (Vec::new(), Vec::new());
        let mut waiting: Vec<(Finished, OwnedSemaphorePermit)> = Vec::new();
        let mut retry_at = tokio::time::Instant::now();
        let mut open = true;
        while open || !waiting.is_empty() {
            tokio::select! {
                received = done.recv(), if open => match received {
                    Some((f, p)) => {
                        batch.push(f);
                        permits.push(p);
                    }
                    None => open = false,
                },
                _ = tokio::time::sleep_until(retry_at), if !waiting.is_empty() => {}
            }
            if !waiting.is_empty() && tokio::time::Instant::now() >= retry_at {
                for (f, p) in waiting.drain(..) {
                    batch.push(f);
                    permits.push(p);
                }
            }
            while batch.len() < MAX_BATCH {
                match done.try_recv() {
                    Ok((f, p)) => {
                        batch.push(f);
                        permits.push(p);
                    }
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            let busy = self.write(&batch).await;
            // Written or given up on: either way this process no longer holds them, the
            // heartbeat stops extending their leases, and their claim budget returns.
            for (f, p) in batch.drain(..).zip(permits.drain(..)) {
                if busy.contains(&f.id) && !self.give_up.is_cancelled() {
                    waiting.push((f, p));
                } else {
                    self.leases.forget([(f.id, f.lease_token)]);
                }
            }
            if !waiting.is_empty() && tokio::time::Instant::now() >= retry_at {
                retry_at = tokio::time::Instant::now() + BUSY_RETRY;
            }
        }
    }

    /// Writes a batch, retrying through database outages. A batch that fails for another
    /// reason is written job by job, so that one bad outcome cannot hold the others back.
    /// Returns the jobs whose rows another transaction held (not written yet).
    async fn write(&self, batch: &[Finished]) -> Vec<crate::JobId> {
        let mut delay = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            let written = finish(&self.pool, &self.registry, batch, None).await;
            self.stats
                .finish_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            match written {
                Ok(report) => {
                    self.outage.ok();
                    self.stats.finishes.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .completed
                        .fetch_add(report.completed as u64, Ordering::Relaxed);
                    self.stats.retried.fetch_add(report.retried as u64, Ordering::Relaxed);
                    self.stats
                        .discarded
                        .fetch_add(report.discarded as u64, Ordering::Relaxed);
                    self.stats.lost.fetch_add(report.lost as u64, Ordering::Relaxed);
                    if report.lost > 0 {
                        tracing::warn!(
                            jobs.lost = report.lost,
                            "outcomes not recorded: these jobs' leases had been rescued"
                        );
                    }
                    if !report.busy.is_empty() {
                        tracing::debug!(
                            jobs.busy = report.busy.len(),
                            "rows held by another transaction; writing those outcomes later"
                        );
                    }
                    return report.busy;
                }
                Err(e) if e.is_connection_error() && !self.give_up.is_cancelled() => {
                    self.outage.failed(&e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) if batch.len() > 1 && !e.is_connection_error() => {
                    tracing::error!(error = %e, source = %e.source, "recording a batch failed; recording its jobs one by one");
                    let mut busy = Vec::new();
                    for one in batch {
                        busy.extend(Box::pin(self.write(std::slice::from_ref(one))).await);
                    }
                    return busy;
                }
                Err(e) => {
                    tracing::error!(error = %e, source = %e.source, jobs = batch.len(), "could not record outcomes; the jobs run again once their leases expire");
                    return Vec::new();
                }
            }
        }
    }
}
