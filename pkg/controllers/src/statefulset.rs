//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`, stable
//! storage and ordered changes, as kube-controller-manager's
//! `statefulset-controller` keeps them.
//!
//! Each pod gets hostname `<set>-<ordinal>` and the Service name as subdomain,
//! the labels `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//! and `controller-revision-hash` (the name of its ControllerRevision), and one
//! PersistentVolumeClaim `<claim>-<set>-<ordinal>` per volume claim template,
//! created before the pod. `persistentVolumeClaimRetentionPolicy` decides what
//! happens to the claims: kept (Retain, the default for both cases), or owned
//! by the set (`whenDeleted: Delete`) or, as its pod is scaled away, by that
//! pod (`whenScaled: Delete`), so the garbage collector removes them after
//! their owner. Under
//! `OrderedReady` one pod changes at a time: ordinal `n` is created only once
//! `0..n` are running and ready, and scale-down removes the highest ordinal
//! first; `Parallel` creates and deletes at once. RollingUpdate replaces pods
//! from the highest ordinal down to `partition`, one at a time, each after the
//! previous one is healthy again; OnDelete leaves replacing to the user.
//! [`plan`] is the pure decision; the rest writes.

use crate::history::{self, REVISION_LABEL};
use crate::util::{controlled_by, is_available, is_ready, pod_from_template, selector_matches};
use crate::{Config, Result, work};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The label with a StatefulSet pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(60);

/// One step the controller takes.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Create the pod with this ordinal from the revision named.
    Create(i32, String),
    /// Delete this pod; `true` when it is a finished pod being recreated.
    Delete(String, bool),
}

/// The parsed ordinal of a pod named `<set>-<n>`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok()
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

fn healthy(pod: &Pod, min_ready: i32) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && is_available(pod, min_ready)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// The steps toward `set`'s spec for its `pods` by ordinal, given the current
/// and update revisions; under OrderedReady at most one step.
pub fn plan(
    set: &StatefulSet,
    pods: &BTreeMap<i32, Arc<Pod>>,
    current: &str,
    update: &str,
) -> Vec<Action> {
    let spec = set.spec.clone().unwrap_or_default();
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let end = start.saturating_add(replicas);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let revision_for = |ord: i32| {
        if rolling && ord - start < partition {
            current.to_string()
        } else {
            update.to_string()
        }
    };
    let mut actions = Vec::new();
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    for ord in start..end {
        match pods.get(&ord) {
            None => {
                actions.push(Action::Create(ord, revision_for(ord)));
                if ordered {
                    return actions;
                }
            }
            Some(pod) if finished(pod) && pod.metadata.deletion_timestamp.is_none() => {
                actions.push(Action::Delete(name(pod), true));
                if ordered {
                    return actions;
                }
            }
            Some(pod) if ordered && !healthy(pod, min_ready) => return actions,
            Some(_) => {}
        }
    }
    // Condemned pods, highest ordinal first.
    let mut all_healthy = pods.range(start..end).all(|(_, p)| healthy(p, min_ready));
    for (_, pod) in pods.iter().rev().filter(|(o, _)| **o < start || **o >= end) {
        if pod.metadata.deletion_timestamp.is_some() {
            if ordered {
                return actions;
            }
            continue;
        }
        if ordered && !all_healthy {
            return actions;
        }
        actions.push(Action::Delete(name(pod), false));
        if ordered {
            return actions;
        }
        all_healthy = false;
    }
    if !actions.is_empty() || !rolling {
        return actions;
    }
    // Rolling update, from the highest ordinal down to the partition.
    for ord in (start.saturating_add(partition)..end).rev() {
        let Some(pod) = pods.get(&ord) else {
            return actions;
        };
        if revision_of(pod) != Some(update) && pod.metadata.deletion_timestamp.is_none() {
            actions.push(Action::Delete(name(pod), false));
            return actions;
        }
        if !healthy(pod, min_ready) {
            return actions;
        }
    }
    actions
}

/// The claim name for `template` of `set`'s pod `ordinal`.
pub fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

/// The template stored in a ControllerRevision.
fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

#[derive(Default)]
struct Expected {
    creating: HashSet<String>,
    deleting: HashSet<String>,
    since: Option<Instant>,
}

/// The StatefulSet controller.
pub struct Controller {
    client: kube::Client,
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
    queue: WorkQueue,
    recorder: Recorder,
    expected: Mutex<HashMap<String, Expected>>,
}

impl Controller {
    /// A controller over the shared informers.
    pub fn new(
        config: &Config,
        sets: Informer<StatefulSet>,
        pods: Informer<Pod>,
        revisions: Informer<ControllerRevision>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        sets.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        pods.on_change(move |change| {
            let mut pods = vec![change.object().clone()];
            if let Change::Updated { old, .. } = change {
                pods.push(old.clone());
            }
            for pod in pods {
                if let Some(owner) = crate::util::controller_of(&pod.metadata)
                    && owner.kind == "StatefulSet"
                {
                    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                    q.add(&format!("{ns}/{}", owner.name));
                }
            }
        });
        Self {
            client: config.client.clone(),
            sets,
            pods,
            revisions,
            queue,
            recorder: Recorder::new(
                config.client.clone(),
                "statefulset-controller",
                &config.host,
            ),
            expected: Mutex::default(),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.sets.wait_synced().await;
        self.pods.wait_synced().await;
        self.revisions.wait_synced().await;
        work("statefulset", self.queue.clone(), |key| self.reconcile(key)).await
    }

    fn caught_up(&self, key: &str) -> bool {
        let mut all = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(exp) = all.get_mut(key) else {
            return true;
        };
        let (namespace, _) = kite_client::split_key(key);
        let pod = |name: &String| self.pods.get(&format!("{namespace}/{name}"));
        exp.creating.retain(|name| pod(name).is_none());
        exp.deleting
            .retain(|name| pod(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        let expired = exp.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if (exp.creating.is_empty() && exp.deleting.is_empty()) || expired {
            all.remove(key);
            return true;
        }
        false
    }

    fn expect(&self, key: &str, created: Option<String>, deleted: Option<String>) {
        let mut all = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
        let exp = all.entry(key.to_string()).or_default();
        exp.creating.extend(created);
        exp.deleting.extend(deleted);
        exp.since = Some(Instant::now());
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(set) = self.sets.get(&key) else {
            self.expected
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            return Ok(None);
        };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let (namespace, set_name) = kite_client::split_key(&key);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let spec = set.spec.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let owned: Vec<Arc<Pod>> = self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && controlled_by(&p.metadata, &uid)
                && selector_matches(&spec.selector, p.metadata.labels.as_ref().unwrap_or(&empty))
        });
        let mut pods: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
        for pod in &owned {
            if let Some(ord) =
                ordinal_of(set_name, pod.metadata.name.as_deref().unwrap_or_default())
            {
                pods.insert(ord, pod.clone());
            }
        }
        let old = set.status.clone().unwrap_or_default();
        let mut in_use: HashSet<String> = owned
            .iter()
            .filter_map(|p| revision_of(p).map(str::to_string))
            .collect();
        in_use.extend(old.current_revision.clone());
        let update = history::sync(
            &self.client,
            &self.revisions,
            &set.metadata,
            "StatefulSet",
            &spec.template,
            old.collision_count,
            spec.revision_history_limit.unwrap_or(10),
            &in_use,
        )
        .await?;
        let current = old
            .current_revision
            .clone()
            .filter(|c| self.revisions.get(&format!("{namespace}/{c}")).is_some())
            .unwrap_or_else(|| update.name.clone());

        if self.caught_up(&key) {
            for action in plan(&set, &pods, &current, &update.name) {
                self.act(&set, action, &update.name, &spec.template).await?;
            }
        }

        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let live: Vec<&Arc<Pod>> = pods.values().collect();
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(live.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let replicas = count(&|_| true);
        let ready = count(&|p| is_ready(p) && p.metadata.deletion_timestamp.is_none());
        let mut status = StatefulSetStatus {
            replicas,
            ready_replicas: Some(ready),
            available_replicas: Some(count(&|p| {
                is_available(p, min_ready) && p.metadata.deletion_timestamp.is_none()
            })),
            current_replicas: Some(count(&|p| revision_of(p) == Some(current.as_str()))),
            updated_replicas: Some(count(&|p| revision_of(p) == Some(update.name.as_str()))),
            current_revision: Some(current.clone()),
            update_revision: Some(update.name.clone()),
            observed_generation: set.metadata.generation,
            collision_count: Some(old.collision_count.unwrap_or(0)),
            conditions: old.conditions.clone(),
        };
        let wanted = spec.replicas.unwrap_or(1);
        if status.updated_replicas == Some(wanted) && ready == wanted && replicas == wanted {
            // The rollout is done: the update revision becomes the current one.
            status.current_revision = Some(update.name.clone());
            status.current_replicas = status.updated_replicas;
        }
        if status != old {
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
            let patch = serde_json::json!({"status": status});
            match api
                .patch_status(set_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(None)
    }

    async fn act(
        &self,
        set: &StatefulSet,
        action: Action,
        update: &str,
        template: &PodTemplateSpec,
    ) -> Result<()> {
        let key = key_of(&set.metadata);
        let namespace = set.metadata.namespace.clone().unwrap_or_default();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let reference = set.object_ref(&());
        match action {
            Action::Delete(name, recreate) => {
                let Some(pod) = self.pods.get(&format!("{namespace}/{name}")) else {
                    return Ok(());
                };
                let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if retention(set).1
                    && ordinal_of(&set_name, &name).is_some_and(|ord| ord >= replicas)
                {
                    self.own_claims_by_pod(set, &pod).await?;
                }
                if recreate {
                    self.recorder.publish(
                        reference.clone(),
                        WARNING,
                        "RecreatingFailedPod",
                        &format!(
                            "StatefulSet {namespace}/{set_name} is recreating failed Pod {name}"
                        ),
                    );
                }
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        self.expect(&key, None, Some(name.clone()));
                        self.recorder.publish(
                            reference,
                            NORMAL,
                            "SuccessfulDelete",
                            &format!("delete Pod {name} in StatefulSet {set_name} successful"),
                        );
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(error) => {
                        self.recorder.publish(
                            reference,
                            WARNING,
                            "FailedDelete",
                            &format!(
                                "delete Pod {name} in StatefulSet {set_name} failed error: {error}"
                            ),
                        );
                        Err(error.into())
                    }
                }
            }
            Action::Create(ord, revision) => {
                let template = if revision == update {
                    template.clone()
                } else {
                    self.revisions
                        .get(&format!("{namespace}/{revision}"))
                        .and_then(|r| template_of(&r))
                        .unwrap_or_else(|| template.clone())
                };
                let pod_name = format!("{set_name}-{ord}");
                self.ensure_claims(set, &pod_name, ord).await?;
                let pod = pod_for(set, &template, ord, &revision);
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => {
                        self.expect(&key, Some(pod_name.clone()), None);
                        self.recorder.publish(
                            reference,
                            NORMAL,
                            "SuccessfulCreate",
                            &format!("create Pod {pod_name} in StatefulSet {set_name} successful"),
                        );
                        Ok(())
                    }
                    // The cache has not shown it yet.
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(error) => {
                        self.recorder.publish(
                            reference,
                            WARNING,
                            "FailedCreate",
                            &format!(
                                "create Pod {pod_name} in StatefulSet {set_name} failed error: {error}"
                            ),
                        );
                        Err(error.into())
                    }
                }
            }
        }
    }

    /// Makes `pod` the owner of its claims before a scale-down deletes it
    /// (`whenScaled: Delete`), so they go with it.
    async fn own_claims_by_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        let namespace = set.metadata.namespace.clone().unwrap_or_default();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let Some(ord) = ordinal_of(&set_name, &pod_name) else {
            return Ok(());
        };
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod_name.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            ..Default::default()
        };
        let spec = set.spec.clone().unwrap_or_default();
        for template in spec.volume_claim_templates.unwrap_or_default() {
            let claim = template.metadata.name.clone().unwrap_or_default();
            let name = claim_name(&claim, &set_name, ord);
            let Some(mut pvc) = api.get_opt(&name).await? else {
                continue;
            };
            let refs = pvc.metadata.owner_references.get_or_insert_default();
            let set_uid = set.metadata.uid.as_deref().unwrap_or_default();
            if refs.iter().any(|r| r.uid == owner.uid) && !refs.iter().any(|r| r.uid == set_uid) {
                continue;
            }
            // The pod becomes the only owner: with the set still there, the
            // garbage collector would only drop the pod as a dangling owner.
            refs.retain(|r| r.uid != set_uid && r.uid != owner.uid);
            refs.push(owner.clone());
            pvc.metadata.managed_fields = None;
            match api.replace(&name, &PostParams::default(), &pvc).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Creates the pod's claims from the volume claim templates if missing.
    async fn ensure_claims(&self, set: &StatefulSet, pod_name: &str, ord: i32) -> Result<()> {
        let namespace = set.metadata.namespace.clone().unwrap_or_default();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let spec = set.spec.clone().unwrap_or_default();
        for template in spec.volume_claim_templates.unwrap_or_default() {
            let claim = template.metadata.name.clone().unwrap_or_default();
            let name = claim_name(&claim, &set_name, ord);
            if api.get_opt(&name).await?.is_some() {
                continue;
            }
            let mut labels = template.metadata.labels.clone().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            let owners = retention(set).0.then(|| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "StatefulSet".into(),
                    name: set_name.clone(),
                    uid: set.metadata.uid.clone().unwrap_or_default(),
                    block_owner_deletion: Some(true),
                    ..Default::default()
                }]
            });
            let pvc = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels),
                    annotations: template.metadata.annotations.clone(),
                    owner_references: owners,
                    ..Default::default()
                },
                spec: template.spec.clone(),
                status: None,
            };
            let reference = set.object_ref(&());
            match api.create(&PostParams::default(), &pvc).await {
                Ok(_) => self.recorder.publish(
                    reference,
                    NORMAL,
                    "SuccessfulCreate",
                    &format!(
                        "create Claim {name} Pod {pod_name} in StatefulSet {set_name} success"
                    ),
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(error) => {
                    self.recorder.publish(
                        reference,
                        WARNING,
                        "FailedCreate",
                        &format!(
                            "create Claim {name} for Pod {pod_name} in StatefulSet {set_name} failed error: {error}"
                        ),
                    );
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }
}

/// Whether the set's claims go when it is deleted, and when their pod is
/// scaled away (`persistentVolumeClaimRetentionPolicy`, Retain by default).
pub fn retention(set: &StatefulSet) -> (bool, bool) {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
    (
        delete(policy.and_then(|p| p.when_deleted.as_ref())),
        delete(policy.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// The pod with ordinal `ord` of `set` from `template` at `revision`.
pub fn pod_for(set: &StatefulSet, template: &PodTemplateSpec, ord: i32, revision: &str) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let spec_of_set = set.spec.clone().unwrap_or_default();
    let name = format!("{set_name}-{ord}");
    let mut pod = pod_from_template(template, "apps/v1", "StatefulSet", &set.metadata);
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(REVISION_LABEL.to_string(), revision.to_string());
    labels.insert(POD_NAME_LABEL.to_string(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_string(), ord.to_string());
    let spec = pod.spec.get_or_insert_default();
    spec.hostname = Some(name);
    spec.subdomain = spec_of_set.service_name.clone().filter(|s| !s.is_empty());
    for claim in spec_of_set.volume_claim_templates.unwrap_or_default() {
        let claim = claim.metadata.name.unwrap_or_default();
        let volume = Volume {
            name: claim.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim, &set_name, ord),
                read_only: None,
            }),
            ..Default::default()
        };
        let volumes = spec.volumes.get_or_insert_default();
        volumes.retain(|v| v.name != claim);
        volumes.push(volume);
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(spec: serde_json::Value) -> StatefulSet {
        let mut base = json!({"selector": {"matchLabels": {"app": "web"}}, "serviceName": "web",
                              "template": {"metadata": {"labels": {"app": "web"}},
                                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}});
        if let (Some(b), serde_json::Value::Object(extra)) = (base.as_object_mut(), spec) {
            b.extend(extra);
        }
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "uid": "s1"},
                                      "spec": base}),
        )
        .expect("set")
    }

    fn pod(ord: i32, revision: &str, healthy: bool) -> (i32, Arc<Pod>) {
        let pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{ord}"), "labels": {REVISION_LABEL: revision}},
            "status": {"phase": if healthy {"Running"} else {"Pending"},
                       "conditions": [{"type": "Ready", "status": if healthy {"True"} else {"False"}}]},
        }))
        .expect("pod");
        (ord, Arc::new(pod))
    }

    fn pods(list: Vec<(i32, Arc<Pod>)>) -> BTreeMap<i32, Arc<Pod>> {
        list.into_iter().collect()
    }

    #[test]
    fn ordinals_parse_only_from_the_sets_own_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
    }

    #[test]
    fn ordered_ready_creates_one_pod_after_the_previous_is_ready() {
        let s = set(json!({"replicas": 3}));
        assert_eq!(
            plan(&s, &pods(vec![]), "r1", "r1"),
            vec![Action::Create(0, "r1".into())]
        );
        assert_eq!(
            plan(&s, &pods(vec![pod(0, "r1", false)]), "r1", "r1"),
            vec![]
        );
        assert_eq!(
            plan(&s, &pods(vec![pod(0, "r1", true)]), "r1", "r1"),
            vec![Action::Create(1, "r1".into())]
        );
    }

    #[test]
    fn parallel_creates_and_deletes_everything_at_once() {
        let s = set(json!({"replicas": 2, "podManagementPolicy": "Parallel"}));
        assert_eq!(
            plan(&s, &pods(vec![]), "r1", "r1"),
            vec![
                Action::Create(0, "r1".into()),
                Action::Create(1, "r1".into())
            ]
        );
        let s = set(json!({"replicas": 1, "podManagementPolicy": "Parallel"}));
        let all = pods(vec![
            pod(0, "r1", true),
            pod(1, "r1", false),
            pod(2, "r1", true),
        ]);
        assert_eq!(
            plan(&s, &all, "r1", "r1"),
            vec![
                Action::Delete("web-2".into(), false),
                Action::Delete("web-1".into(), false)
            ]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let s = set(json!({"replicas": 1}));
        let all = pods(vec![
            pod(0, "r1", true),
            pod(1, "r1", true),
            pod(2, "r1", true),
        ]);
        assert_eq!(
            plan(&s, &all, "r1", "r1"),
            vec![Action::Delete("web-2".into(), false)]
        );
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition_one_pod_at_a_time() {
        let s = set(json!({"replicas": 3,
                           "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}));
        let old = pods(vec![
            pod(0, "r1", true),
            pod(1, "r1", true),
            pod(2, "r1", true),
        ]);
        assert_eq!(
            plan(&s, &old, "r1", "r2"),
            vec![Action::Delete("web-2".into(), false)]
        );
        let half = pods(vec![
            pod(0, "r1", true),
            pod(1, "r1", true),
            pod(2, "r2", false),
        ]);
        assert_eq!(plan(&s, &half, "r1", "r2"), vec![]);
        let next = pods(vec![
            pod(0, "r1", true),
            pod(1, "r1", true),
            pod(2, "r2", true),
        ]);
        assert_eq!(
            plan(&s, &next, "r1", "r2"),
            vec![Action::Delete("web-1".into(), false)]
        );
        let done = pods(vec![
            pod(0, "r1", true),
            pod(1, "r2", true),
            pod(2, "r2", true),
        ]);
        assert_eq!(plan(&s, &done, "r1", "r2"), vec![]);
        // Below the partition, a missing pod comes back at the current revision.
        let gone = pods(vec![pod(1, "r2", true), pod(2, "r2", true)]);
        assert_eq!(
            plan(&s, &gone, "r1", "r2"),
            vec![Action::Create(0, "r1".into())]
        );
        let on_delete = set(json!({"replicas": 3, "updateStrategy": {"type": "OnDelete"}}));
        assert_eq!(plan(&on_delete, &old, "r1", "r2"), vec![]);
    }

    #[test]
    fn claims_are_retained_unless_the_policy_says_delete() {
        let with = |policy: serde_json::Value| -> StatefulSet {
            serde_json::from_value(json!({"metadata": {"name": "db"},
                "spec": {"selector": {}, "template": {}, "serviceName": "db",
                         "persistentVolumeClaimRetentionPolicy": policy}}))
            .unwrap()
        };
        assert_eq!(retention(&with(serde_json::Value::Null)), (false, false));
        assert_eq!(
            retention(&with(
                json!({"whenDeleted": "Retain", "whenScaled": "Delete"})
            )),
            (false, true)
        );
        assert_eq!(
            retention(&with(json!({"whenDeleted": "Delete"}))),
            (true, false)
        );
    }

    #[test]
    fn pods_get_stable_identity_and_their_claims() {
        let s = set(
            json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
                           "spec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}}}}]}),
        );
        let template = s.spec.clone().unwrap_or_default().template;
        let pod = pod_for(&s, &template, 2, "web-abc");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(POD_NAME_LABEL).map(String::as_str),
            Some("web-2")
        );
        assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
        assert_eq!(
            labels.get(REVISION_LABEL).map(String::as_str),
            Some("web-abc")
        );
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("web-2"), Some("web"))
        );
        let volumes = spec.volumes.unwrap_or_default();
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("data-web-2")
        );
    }
}
