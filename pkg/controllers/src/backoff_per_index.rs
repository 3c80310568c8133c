//! `backoffLimitPerIndex` of Indexed Jobs, as kube-controller-manager's Job
//! controller runs it: each index may fail that many times before it is
//! marked failed (listed in `status.failedIndexes`) and gets no more pods,
//! while the other indexes go on. A `FailIndex` rule of the pod failure
//! policy marks the index failed at once. More failed indexes than
//! `maxFailedIndexes` fail the Job at once; otherwise it fails once every
//! index has either completed or failed.
//!
//! An index's failure count travels on its pods: each replacement carries
//! the count so far in `batch.kubernetes.io/job-index-failure-count`, so the
//! count survives the failed pods being removed.

use crate::job::{index_of, latest_failure, outcome};
use crate::pod_failure_policy::{self, Action};
use k8s_openapi::api::batch::v1::PodFailurePolicy;
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Annotation holding how often the pod's index had failed before it was created.
pub const FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";

/// Reason and message of a Job failed because an index failed.
pub const FAILED_INDEXES: (&str, &str) = ("FailedIndexes", "Job has failed indexes");
/// Reason and message of a Job with more failed indexes than `maxFailedIndexes`.
pub const MAX_FAILED_INDEXES_EXCEEDED: (&str, &str) = (
    "MaxFailedIndexesExceeded",
    "Job has exceeded the specified maximal number of failed indexes",
);

/// The failures of each index of a Job.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IndexFailures {
    /// Counted failures so far, per index that has any.
    pub counts: BTreeMap<i32, i32>,
    /// Indexes that may not run again.
    pub failed: BTreeSet<i32>,
}

fn failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FAILURE_COUNT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The failures of the Job's `pods` for indexes below `completions`, with
/// the indexes `status.failedIndexes` already lists.
pub fn tally(
    pods: &[Arc<Pod>],
    completions: i32,
    limit: i32,
    policy: Option<&PodFailurePolicy>,
    already_failed: &BTreeSet<i32>,
) -> IndexFailures {
    let mut out = IndexFailures {
        failed: already_failed.clone(),
        ..Default::default()
    };
    for pod in pods {
        let Some(index) = index_of(pod).filter(|i| (0..completions).contains(i)) else {
            continue;
        };
        if outcome(pod) != Some(false) {
            continue;
        }
        let action = pod_failure_policy::evaluate(policy, pod);
        if action == Action::Ignore {
            continue;
        }
        let count = out.counts.entry(index).or_insert(0);
        *count = (*count).max(failure_count(pod).saturating_add(1));
        if action == Action::FailIndex || *count > limit {
            out.failed.insert(index);
        }
    }
    out
}

/// Whether the Job has failed by its indexes: too many failed, or every
/// index finished with some failed.
pub fn verdict(
    completions: i32,
    completed: &BTreeSet<i32>,
    failed: &BTreeSet<i32>,
    max_failed: Option<i32>,
) -> Option<(&'static str, &'static str)> {
    if max_failed.is_some_and(|m| i64::try_from(failed.len()).unwrap_or(i64::MAX) > i64::from(m)) {
        return Some(MAX_FAILED_INDEXES_EXCEEDED);
    }
    let finished = (0..completions).all(|i| completed.contains(&i) || failed.contains(&i));
    (finished && !failed.is_empty()).then_some(FAILED_INDEXES)
}

/// When index `index` last failed (the latest container finish among its
/// failed pods), for its own back-off.
pub fn last_failure(pods: &[Arc<Pod>], index: i32) -> Option<k8s_openapi::jiff::Timestamp> {
    latest_failure(
        pods.iter()
            .map(|p| &**p)
            .filter(|p| index_of(p) == Some(index)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(index: i32, phase: &str, count: Option<i32>, exit: i32) -> Arc<Pod> {
        let mut annotations =
            json!({"batch.kubernetes.io/job-completion-index": index.to_string()});
        if let Some(c) = count {
            annotations[FAILURE_COUNT] = json!(c.to_string());
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("p{index}"), "namespace": "default", "annotations": annotations},
                "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit, "finishedAt": "2026-01-01T00:00:00Z"}}}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn an_index_fails_after_more_failures_than_its_limit() {
        let none = BTreeSet::new();
        // Index 0 failed twice (the second pod says one failure came before it).
        let pods = [pod(0, "Failed", None, 1), pod(0, "Failed", Some(1), 1)];
        let t = tally(&pods, 3, 1, None, &none);
        assert_eq!(t.counts, BTreeMap::from([(0, 2)]));
        assert_eq!(t.failed, BTreeSet::from([0]));
        // With a limit of 2 it may run once more.
        assert!(tally(&pods, 3, 2, None, &none).failed.is_empty());
        // Running and succeeded pods, and indexes out of range, count nothing.
        let others = [
            pod(1, "Running", None, 0),
            pod(2, "Succeeded", None, 0),
            pod(7, "Failed", None, 1),
        ];
        assert_eq!(tally(&others, 3, 0, None, &none), IndexFailures::default());
    }

    #[test]
    fn fail_index_and_ignore_rules_of_the_pod_failure_policy() {
        let policy: PodFailurePolicy = serde_json::from_value(json!({"rules": [
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}}]}))
        .unwrap();
        let none = BTreeSet::new();
        let t = tally(
            &[pod(1, "Failed", None, 42), pod(2, "Failed", None, 7)],
            3,
            5,
            Some(&policy),
            &none,
        );
        assert_eq!(t.failed, BTreeSet::from([1]));
        assert_eq!(t.counts, BTreeMap::from([(1, 1)]));
        // Indexes already recorded as failed stay failed.
        let t = tally(&[], 3, 5, None, &BTreeSet::from([2]));
        assert_eq!(t.failed, BTreeSet::from([2]));
    }

    #[test]
    fn the_job_fails_when_all_indexes_finished_with_some_failed_or_too_many_failed() {
        let completed = BTreeSet::from([0, 2]);
        assert_eq!(
            verdict(3, &completed, &BTreeSet::from([1]), None),
            Some(FAILED_INDEXES)
        );
        assert_eq!(verdict(4, &completed, &BTreeSet::from([1]), None), None);
        assert_eq!(verdict(3, &completed, &BTreeSet::new(), None), None);
        assert_eq!(
            verdict(10, &completed, &BTreeSet::from([1, 3]), Some(1)),
            Some(MAX_FAILED_INDEXES_EXCEEDED)
        );
        assert_eq!(verdict(10, &completed, &BTreeSet::from([1]), Some(1)), None);
    }
}
