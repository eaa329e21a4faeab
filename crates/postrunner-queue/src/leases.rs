//! The jobs a worker process holds, and what stage each is at.
//!
//! This is the process's own account of its leases. The heartbeat extends exactly these
//! (so a job the process lost track of is not kept alive by it), and on shutdown the ones
//! that never started, or were interrupted, are released. Entries are keyed by job id
//! *and* lease token: if a lease was rescued and the same worker claimed the job again,
//! the two claims are different entries.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use super::JobId;

/// Where a held job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Claimed (prefetched), waiting for a run slot.
    Waiting,
    /// Its handler is running.
    Running,
    /// Its outcome is with the completer, not yet written.
    Finishing,
}

/// A claim: the job and the token it was claimed with.
pub type Lease = (JobId, Uuid);

/// The held jobs of one process.
#[derive(Debug, Default)]
pub struct Leases {
    jobs: Mutex<HashMap<Lease, Stage>>,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Lease, Stage>> {
        self.jobs.lock().expect("leases lock")
    }

    pub fn insert(&self, lease: Lease) {
        self.lock().insert(lease, Stage::Waiting);
    }

    pub fn set(&self, lease: Lease, stage: Stage) {
        if let Some(s) = self.lock().get_mut(&lease) {
            *s = stage;
        }
    }

    /// Runs `hand_over` and marks the job finishing in one critical section, so that a
    /// shutdown looking at the map sees the job either before (and releases it) or after
    /// (and leaves it to the completer), never half-way. `hand_over` must not block.
    pub fn finish_with(&self, lease: Lease, hand_over: impl FnOnce() -> bool) {
        let mut jobs = self.lock();
        if hand_over() {
            if let Some(s) = jobs.get_mut(&lease) {
                *s = Stage::Finishing;
            }
        }
    }

    /// Forgets jobs whose outcome was written (or given up on).
    pub fn forget(&self, leases: impl IntoIterator<Item = Lease>) {
        let mut jobs = self.lock();
        for lease in leases {
            jobs.remove(&lease);
        }
    }

    /// Every held lease, for the heartbeat.
    pub fn leases(&self) -> Vec<Lease> {
        self.lock().keys().copied().collect()
    }

    /// Removes and returns the jobs at `stage` (shutdown: the ones to release).
    pub fn take(&self, stage: Stage) -> Vec<Lease> {
        let mut jobs = self.lock();
        let taken: Vec<Lease> = jobs.iter().filter(|(_, s)| **s == stage).map(|(l, _)| *l).collect();
        for lease in &taken {
            jobs.remove(lease);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handed_over_job_is_not_released_but_still_heartbeated() {
        let leases = Leases::default();
        let (a, b) = ((1, Uuid::new_v4()), (2, Uuid::new_v4()));
        leases.insert(a);
        leases.insert(b);
        leases.set(b, Stage::Running);
        leases.finish_with(b, || true);

        assert_eq!(leases.take(Stage::Waiting), vec![a]);
        assert!(leases.take(Stage::Running).is_empty());
        assert_eq!(leases.leases(), vec![b]);
        leases.forget([b]);
        assert!(leases.leases().is_empty());
    }

    #[test]
    fn a_reclaimed_job_is_a_separate_entry() {
        let leases = Leases::default();
        leases.insert((7, Uuid::new_v4()));
        leases.insert((7, Uuid::new_v4()));
        assert_eq!(leases.leases().len(), 2);
    }
}
