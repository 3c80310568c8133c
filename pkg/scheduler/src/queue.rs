//! The scheduling queue: pods ready for an attempt, pods backing off after a
//! failed bind or attempt, and pods parked as unschedulable until the cluster
//! changes, as kube-scheduler's activeQ, backoffQ and unschedulable pool.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// First back-off after a failure; doubled per attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long an unschedulable pod waits without any cluster change before a new try.
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where each pending pod waits.
#[derive(Debug, Default)]
pub struct Queue {
    active: VecDeque<String>,
    in_active: HashSet<String>,
    backoff: HashMap<String, Instant>,
    unschedulable: HashMap<String, Instant>,
    attempts: HashMap<String, u32>,
}

impl Queue {
    /// Queues a new or changed pod for an attempt now, unless it is backing off.
    pub fn add(&mut self, key: &str) {
        if self.in_active.contains(key) || self.backoff.contains_key(key) {
            return;
        }
        self.unschedulable.remove(key);
        self.in_active.insert(key.to_string());
        self.active.push_back(key.to_string());
    }

    /// The next pod to try.
    pub fn pop(&mut self) -> Option<String> {
        let key = self.active.pop_front()?;
        self.in_active.remove(&key);
        Some(key)
    }

    /// Forgets a pod that was bound or deleted.
    pub fn remove(&mut self, key: &str) {
        if self.in_active.remove(key) {
            self.active.retain(|k| k != key);
        }
        self.backoff.remove(key);
        self.unschedulable.remove(key);
        self.attempts.remove(key);
    }

    /// The back-off for the next attempt of `key`, counting this failure.
    fn next_backoff(&mut self, key: &str) -> Duration {
        let attempts = self.attempts.entry(key.to_string()).or_default();
        *attempts = attempts.saturating_add(1);
        backoff_for(*attempts)
    }

    /// Parks a pod that fits nowhere until the cluster changes.
    pub fn park_unschedulable(&mut self, key: &str, now: Instant) {
        let backoff = self.next_backoff(key);
        // Remember when it may be retried at the earliest (after its back-off).
        self.unschedulable.insert(key.to_string(), now + backoff);
    }

    /// Retries a pod after its back-off (a failed bind, an API error).
    pub fn back_off(&mut self, key: &str, now: Instant) {
        let backoff = self.next_backoff(key);
        self.backoff.insert(key.to_string(), now + backoff);
    }

    /// Something changed that may let parked pods fit: retry them once their back-off ends.
    pub fn cluster_changed(&mut self, now: Instant) {
        for (key, ready_at) in std::mem::take(&mut self.unschedulable) {
            if ready_at <= now {
                self.in_active.insert(key.clone());
                self.active.push_back(key);
            } else {
                self.backoff.insert(key, ready_at);
            }
        }
    }

    /// Moves pods whose back-off has ended (and long-parked pods) to the active queue.
    pub fn promote_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .backoff
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.backoff.remove(&key);
            self.in_active.insert(key.clone());
            self.active.push_back(key);
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, at)| **at + UNSCHEDULABLE_TIMEOUT <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.unschedulable.remove(&key);
            self.in_active.insert(key.clone());
            self.active.push_back(key);
        }
    }

    /// When the next backing-off or parked pod becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        let backoff = self.backoff.values().min().copied();
        let parked = self
            .unschedulable
            .values()
            .min()
            .map(|at| *at + UNSCHEDULABLE_TIMEOUT);
        match (backoff, parked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a pod is anywhere in the queue.
    pub fn contains(&self, key: &str) -> bool {
        self.in_active.contains(key)
            || self.backoff.contains_key(key)
            || self.unschedulable.contains_key(key)
    }

    /// Whether a pod is parked as unschedulable.
    pub fn is_parked(&self, key: &str) -> bool {
        self.unschedulable.contains_key(key)
    }

    /// Pods waiting for an attempt now.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }
}

/// 1 s, 2 s, 4 s, ... up to 10 s for the n-th failure.
pub fn backoff_for(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(8);
    INITIAL_BACKOFF
        .saturating_mul(1u32 << shift)
        .min(MAX_BACKOFF)
}
