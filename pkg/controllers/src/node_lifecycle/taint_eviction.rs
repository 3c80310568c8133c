//! Taint-based eviction, as kube-controller-manager's
//! `taint-eviction-controller` does it: a pod on a node with a NoExecute taint
//! it does not tolerate is deleted at once; one that tolerates every such
//! taint for a while (`tolerationSeconds`) is deleted when the shortest of
//! those runs out, counted from when this controller first saw it due, and
//! the deletion is cancelled if the taints go first.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kite_api::taints::{NO_EXECUTE, matching_tolerations};
use kite_client::{Change, Informer, Recorder, WorkQueue, events, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// What to do with a pod given its node's NoExecute taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It stays: no NoExecute taints, or it tolerates them forever.
    Never,
    /// Delete it now.
    Now,
    /// Delete it this long after it was first due.
    After(Duration),
}

/// The eviction of a pod with `tolerations` on a node with `taints` (only the
/// NoExecute ones count): kube's minimum toleration time over the first
/// toleration matching each taint.
pub fn eviction(taints: &[Taint], tolerations: &[Toleration]) -> Eviction {
    let taints: Vec<Taint> = taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect();
    if taints.is_empty() {
        return Eviction::Never;
    }
    let Some(used) = matching_tolerations(&taints, tolerations) else {
        return Eviction::Now;
    };
    let mut shortest = None;
    for seconds in used.iter().filter_map(|t| t.toleration_seconds) {
        if seconds <= 0 {
            return Eviction::Now;
        }
        shortest = Some(shortest.map_or(seconds, |s: i64| s.min(seconds)));
    }
    match shortest {
        Some(seconds) => Eviction::After(Duration::from_secs(seconds.unsigned_abs())),
        None => Eviction::Never,
    }
}

/// The taint eviction controller.
pub(crate) struct Controller {
    client: kube::Client,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
    /// Pods due for deletion: when each was first seen due.
    due: Mutex<HashMap<String, Timestamp>>,
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn no_execute(node: &Node) -> Vec<&Taint> {
    crate::nodes::taints_of(node)
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .collect()
}

impl Controller {
    pub(crate) fn new(config: &Config, nodes: Informer<Node>, pods: Informer<Pod>) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        pods.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        let all = pods.clone();
        nodes.on_change(move |change| {
            // Only a change of NoExecute taints moves the node's pods.
            if let Change::Updated { old, new } = change
                && no_execute(old) == no_execute(new)
            {
                return;
            }
            let name = change.object().metadata.name.clone().unwrap_or_default();
            for pod in all.filter(|p| node_of(p) == Some(name.as_str())) {
                q.add(&key_of(&pod.metadata));
            }
        });
        Self {
            client: config.client.clone(),
            nodes,
            pods,
            queue,
            recorder: Recorder::new(
                config.client.clone(),
                "taint-eviction-controller",
                &config.host,
            ),
            due: Mutex::default(),
        }
    }

    pub(crate) async fn run(&self) {
        self.nodes.wait_synced().await;
        self.pods.wait_synced().await;
        work("taint-eviction", self.queue.clone(), |key| {
            self.reconcile(key)
        })
        .await
    }

    fn forget(&self, key: &str) -> bool {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
            .is_some()
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let pod = self.pods.get(&key);
        let node = pod
            .as_deref()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .and_then(node_of)
            .and_then(|n| self.nodes.get(n));
        let (Some(pod), Some(node)) = (pod, node) else {
            self.forget(&key);
            return Ok(None);
        };
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let now = Timestamp::now();
        let wait = match eviction(crate::nodes::taints_of(&node), tolerations) {
            Eviction::Never => {
                if self.forget(&key) {
                    self.recorder.publish(
                        pod.object_ref(&()),
                        events::NORMAL,
                        "TaintManagerEviction",
                        &format!("Cancelling deletion of Pod {key}"),
                    );
                }
                return Ok(None);
            }
            Eviction::Now => Duration::ZERO,
            Eviction::After(wait) => wait,
        };
        let since = *self
            .due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(now);
        let deadline = SignedDuration::try_from(wait)
            .ok()
            .and_then(|w| since.checked_add(w).ok())
            .unwrap_or(Timestamp::MAX);
        if deadline > now {
            return Ok(Some(deadline.duration_since(now).unsigned_abs()));
        }
        self.evict(&pod, &key).await?;
        self.forget(&key);
        Ok(None)
    }

    /// Marks the pod `DisruptionTarget` and deletes it, with kube's event.
    async fn evict(&self, pod: &Pod, key: &str) -> Result<()> {
        self.recorder.publish(
            pod.object_ref(&()),
            events::NORMAL,
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {key}"),
        );
        let (namespace, name) = kite_client::split_key(key);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": Timestamp::now().to_string(),
        }]}});
        let gone =
            |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
        if let Err(error) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
            .await
        {
            if gone(&error) {
                return Ok(());
            }
            return Err(error.into());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(error) if gone(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kite_api::taints::{NO_SCHEDULE, UNREACHABLE};
    use serde_json::json;

    fn tolerations(value: serde_json::Value) -> Vec<Toleration> {
        serde_json::from_value(value).expect("tolerations")
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pods_go_at_once_after_their_shortest_toleration_or_never() {
        let unreachable = [
            taint(UNREACHABLE, NO_EXECUTE),
            taint(UNREACHABLE, NO_SCHEDULE),
        ];
        let secs = |n: i64| {
            json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                   "tolerationSeconds": n})
        };
        let defaults = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                              "effect": "NoExecute", "tolerationSeconds": 300});
        assert_eq!(eviction(&unreachable, &[]), Eviction::Now);
        assert_eq!(
            eviction(&[taint(UNREACHABLE, NO_SCHEDULE)], &[]),
            Eviction::Never
        );
        assert_eq!(
            eviction(&unreachable, &tolerations(json!([secs(3), defaults]))),
            Eviction::After(Duration::from_secs(3))
        );
        assert_eq!(
            eviction(&unreachable, &tolerations(json!([secs(0)]))),
            Eviction::Now
        );
        assert_eq!(
            eviction(
                &unreachable,
                &tolerations(json!([{"key": UNREACHABLE, "operator": "Exists"}]))
            ),
            Eviction::Never
        );
        // Two taints: the shortest toleration decides; one untolerated taint evicts.
        let both = [
            taint(UNREACHABLE, NO_EXECUTE),
            taint("dedicated", NO_EXECUTE),
        ];
        let two = tolerations(json!([secs(30), {"key": "dedicated", "operator": "Exists",
                                                "tolerationSeconds": 10}]));
        assert_eq!(
            eviction(&both, &two),
            Eviction::After(Duration::from_secs(10))
        );
        assert_eq!(eviction(&both, &two[..1]), Eviction::Now);
    }
}
