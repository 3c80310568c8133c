//! The ReplicaSet controller: keeps `spec.replicas` pods matching the template.
//!
//! Pods are created from the template with a controller owner reference
//! (`blockOwnerDeletion`, so foreground deletion waits for them) and deleted
//! unscheduled-first, then not-ready, then newest. *Expectations* guard against
//! acting twice: pods this controller created or deleted that its cache has not
//! seen yet are counted as done, so a reconcile that runs before their watch
//! events arrive neither creates nor deletes again.

use crate::util::{
    controlled_by, is_active, is_available, is_ready, pod_from_template, selector_matches,
};
use crate::{Config, Result, work};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most pods created or deleted in one pass (kube-controller-manager's burst).
const BURST: usize = 500;
/// Expectations older than this are dropped: a watch event must have been lost.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Expectation {
    creating: HashSet<String>,
    deleting: HashSet<String>,
    since: Option<Instant>,
}

/// The ReplicaSet controller.
pub struct Controller {
    client: kube::Client,
    replicasets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
    expectations: Mutex<HashMap<String, Expectation>>,
}

impl Controller {
    /// A controller over the shared ReplicaSet and Pod informers.
    pub fn new(config: &Config, replicasets: Informer<ReplicaSet>, pods: Informer<Pod>) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        replicasets.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        pods.on_change(move |change| {
            let mut owners = Vec::new();
            if let Change::Updated { old, .. } = change {
                owners.push(owner_key(old));
            }
            owners.push(owner_key(change.object()));
            for key in owners.into_iter().flatten() {
                q.add(&key);
            }
        });
        Self {
            client: config.client.clone(),
            replicasets,
            pods,
            queue,
            recorder: Recorder::new(config.client.clone(), "replicaset-controller", &config.host),
            expectations: Mutex::default(),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.replicasets.wait_synced().await;
        self.pods.wait_synced().await;
        work("replicaset", self.queue.clone(), |key| self.reconcile(key)).await
    }

    /// Whether earlier creations and deletions for `key` have all been observed.
    fn expectations_met(&self, key: &str) -> bool {
        let mut all = self
            .expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(exp) = all.get_mut(key) else {
            return true;
        };
        let (namespace, _) = kite_client::split_key(key);
        exp.creating
            .retain(|name| self.pods.get(&format!("{namespace}/{name}")).is_none());
        exp.deleting.retain(|name| {
            self.pods
                .get(&format!("{namespace}/{name}"))
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
        });
        let expired = exp.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if (exp.creating.is_empty() && exp.deleting.is_empty()) || expired {
            all.remove(key);
            return true;
        }
        false
    }

    fn expect(&self, key: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut all = self
            .expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let exp = all.entry(key.to_string()).or_default();
        exp.creating.extend(created);
        exp.deleting.extend(deleted);
        exp.since = Some(Instant::now());
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(rs) = self.replicasets.get(&key) else {
            self.expectations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            return Ok(None);
        };
        let namespace = rs.metadata.namespace.clone().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let spec = rs.spec.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let pods: Vec<Arc<Pod>> = self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && controlled_by(&p.metadata, &uid)
                && is_active(p)
                && selector_matches(&spec.selector, p.metadata.labels.as_ref().unwrap_or(&empty))
        });
        let wanted = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
        let mut requeue = None;
        if rs.metadata.deletion_timestamp.is_none() && self.expectations_met(&key) {
            requeue = self.manage(&rs, &key, &pods, wanted).await?;
        }
        self.update_status(&rs, &pods, spec.min_ready_seconds.unwrap_or(0))
            .await?;
        Ok(requeue)
    }

    /// Creates or deletes pods to reach `wanted`.
    async fn manage(
        &self,
        rs: &Arc<ReplicaSet>,
        key: &str,
        pods: &[Arc<Pod>],
        wanted: usize,
    ) -> Result<Option<Duration>> {
        let namespace = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let reference = rs.object_ref(&());
        if pods.len() < wanted {
            let missing = (wanted - pods.len()).min(BURST);
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.clone())
                .unwrap_or_default();
            let mut created = Vec::new();
            let mut failed = None;
            // Slow start: 1, 2, 4, ... so a template the API rejects fails fast.
            let mut batch = 1;
            while created.len() < missing && failed.is_none() {
                let size = batch.min(missing - created.len());
                let pod = self.pod_from_template(rs, &template);
                let params = PostParams::default();
                let results =
                    futures::future::join_all((0..size).map(|_| api.create(&params, &pod))).await;
                for result in results {
                    match result {
                        Ok(pod) => {
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            self.recorder.publish(
                                reference.clone(),
                                NORMAL,
                                "SuccessfulCreate",
                                &format!("Created pod: {name}"),
                            );
                            created.push(name);
                        }
                        Err(error) => {
                            self.recorder.publish(
                                reference.clone(),
                                WARNING,
                                "FailedCreate",
                                &format!("Error creating: {error}"),
                            );
                            failed = Some(error);
                        }
                    }
                }
                batch *= 2;
            }
            self.expect(key, created, Vec::new());
            if let Some(error) = failed {
                return Err(error.into());
            }
        } else if pods.len() > wanted {
            let mut victims: Vec<&Arc<Pod>> = pods.iter().collect();
            victims.sort_by_key(|p| deletion_rank(p));
            let victims = &victims[..(pods.len() - wanted).min(BURST)];
            let mut deleted = Vec::new();
            for pod in victims {
                let name = pod.metadata.name.clone().unwrap_or_default();
                match crate::util::delete_pod(&api, pod, &self.recorder, &reference).await {
                    Ok(true) => deleted.push(name),
                    Ok(false) => {}
                    Err(error) => {
                        self.expect(key, Vec::new(), deleted);
                        return Err(error.into());
                    }
                }
            }
            self.expect(key, Vec::new(), deleted);
        }
        Ok(None)
    }

    fn pod_from_template(
        &self,
        rs: &ReplicaSet,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    ) -> Pod {
        let mut pod = pod_from_template(template, "apps/v1", "ReplicaSet", &rs.metadata);
        pod.metadata.generate_name =
            Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or("rs")));
        pod
    }

    async fn update_status(
        &self,
        rs: &ReplicaSet,
        pods: &[Arc<Pod>],
        min_ready: i32,
    ) -> Result<()> {
        let template_labels = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let old = rs.status.clone().unwrap_or_default();
        let status = ReplicaSetStatus {
            replicas: count(&|_| true),
            fully_labeled_replicas: Some(count(&|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                template_labels
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })),
            ready_replicas: Some(count(&|p| is_ready(p))),
            available_replicas: Some(count(&|p| is_available(p, min_ready))),
            observed_generation: rs.metadata.generation,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        if status == old {
            return Ok(());
        }
        let api: Api<ReplicaSet> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({"status": status});
        match api
            .patch_status(
                rs.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// `namespace/name` of the ReplicaSet controlling `pod`, if one does.
fn owner_key(pod: &Pod) -> Option<String> {
    let owner = crate::util::controller_of(&pod.metadata)?;
    (owner.kind == "ReplicaSet").then(|| {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            owner.name
        )
    })
}

/// Which pods go first when scaling down: unscheduled, then not ready, then the newest.
fn deletion_rank(pod: &Pod) -> (u8, u8, std::cmp::Reverse<String>) {
    let unscheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    (
        u8::from(!unscheduled),
        u8::from(is_ready(pod)),
        std::cmp::Reverse(created),
    )
}
