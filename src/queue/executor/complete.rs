//! The completer: writes job outcomes in batches, one transaction per batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::{ExecutorStats, Outage};
use crate::queue::finish::{finish, Finished};
use crate::queue::handler::Registry;
use crate::queue::held::Held;

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 2000;

pub(super) struct Completer {
    pub(super) pool: PgPool,
    pub(super) registry: Arc<Registry>,
    pub(super) stats: Arc<ExecutorStats>,
    pub(super) outage: Arc<Outage>,
    pub(super) held: Arc<Held>,
    /// Once cancelled, an outcome that cannot be written is given up on (logged) instead
    /// of retried: its job's lease then runs out and it is rescued.
    pub(super) give_up: CancellationToken,
}

impl Completer {
    /// Writes everything received, batching whatever piled up during the previous write,
    /// until every sender is gone.
    pub(super) async fn run(self, mut done: mpsc::UnboundedReceiver<(Finished, OwnedSemaphorePermit)>) {
        let (mut batch, mut permits) = (Vec::new(), Vec::new());
        while let Some((first, permit)) = done.recv().await {
            batch.push(first);
            permits.push(permit);
            while batch.len() < MAX_BATCH {
                match done.try_recv() {
                    Ok((f, p)) => {
                        batch.push(f);
                        permits.push(p);
                    }
                    Err(_) => break,
                }
            }
            self.write(&batch).await;
            // Written or given up on: either way this process no longer holds them, the
            // heartbeat stops extending their leases, and their claim budget returns.
            self.held.forget(batch.drain(..).map(|f| (f.id, f.lease_token)));
            permits.clear();
        }
    }

    /// Writes a batch, retrying through database outages. A batch that fails for another
    /// reason is written job by job, so that one bad outcome cannot hold the others back.
    async fn write(&self, batch: &[Finished]) {
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
                    return;
                }
                Err(e) if e.is_connection_error() && !self.give_up.is_cancelled() => {
                    self.outage.failed(&e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) if batch.len() > 1 && !e.is_connection_error() => {
                    tracing::error!(error = %e, source = %e.source, "recording a batch failed; recording its jobs one by one");
                    for one in batch {
                        Box::pin(self.write(std::slice::from_ref(one))).await;
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, source = %e.source, jobs = batch.len(), "could not record outcomes; the jobs run again once their leases expire");
                    return;
                }
            }
        }
    }
}
