//! The disruption controller: keeps each PodDisruptionBudget's status saying
//! how many of its pods may be disrupted now, which is what the eviction
//! subresource (and so `kubectl drain`) spends.
//!
//! As kube-controller-manager's: `desiredHealthy` comes from `minAvailable`
//! (an integer, or a percentage of the pods' controllers' scale) or from
//! `maxUnavailable` (of that scale); `currentHealthy` counts the selected pods
//! that are Ready, not being deleted and not recently evicted (an eviction
//! records the pod in `disruptedPods`; an entry the pod outlives by two
//! minutes is dropped, as the eviction evidently did not happen). A budget
//! whose scale cannot be worked out fails safe: no disruptions allowed, with
//! the reason in its `DisruptionAllowed` condition.

use crate::util::{controller_of, is_ready, selector_matches};
use crate::{Config, Result, work};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::Api;
use kube::core::{DynamicObject, GroupVersionKind};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long an evicted pod may take to be deleted before its
/// `disruptedPods` entry is dropped (kube's `DeletionTimeout`).
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The shared informers the controller reads.
pub struct Sources {
    /// Every pod.
    pub pods: Informer<Pod>,
    /// ReplicaSets, for the scale of pods they control.
    pub replicasets: Informer<ReplicaSet>,
    /// Deployments, for the scale of their ReplicaSets' pods.
    pub deployments: Informer<Deployment>,
    /// StatefulSets, for the scale of pods they control.
    pub statefulsets: Informer<StatefulSet>,
}

/// The disruption controller.
pub struct Controller {
    client: kube::Client,
    budgets: Informer<PodDisruptionBudget>,
    sources: Sources,
    queue: WorkQueue,
    recorder: Recorder,
}

impl Controller {
    /// A controller over the shared informers; it runs its own for budgets.
    pub fn new(config: &Config, sources: Sources) -> Self {
        let client = config.client.clone();
        let queue = WorkQueue::new();
        let budgets = Informer::new(Api::<PodDisruptionBudget>::all(client.clone()));
        let q = queue.clone();
        budgets.on_change(move |change| {
            if !matches!(change, Change::Deleted(_)) {
                q.add(&key_of(&change.object().metadata));
            }
        });
        let (q, b) = (queue.clone(), budgets.clone());
        sources.pods.on_change(move |change| {
            let mut label_sets = vec![&change.object().metadata.labels];
            if let Change::Updated { old, .. } = change {
                label_sets.push(&old.metadata.labels);
            }
            let namespace = change.object().metadata.namespace.as_deref();
            for budget in b.filter(|b| b.metadata.namespace.as_deref() == namespace) {
                if label_sets.iter().any(|labels| selects(&budget, labels)) {
                    q.add(&key_of(&budget.metadata));
                }
            }
        });
        // A controller's scale feeds `expectedPods`: a change requeues its namespace's budgets.
        requeue_on_scale(&sources.replicasets, &queue, &budgets, |rs| {
            rs.spec.as_ref().and_then(|s| s.replicas)
        });
        requeue_on_scale(&sources.deployments, &queue, &budgets, |d| {
            d.spec.as_ref().and_then(|s| s.replicas)
        });
        requeue_on_scale(&sources.statefulsets, &queue, &budgets, |sts| {
            sts.spec.as_ref().and_then(|s| s.replicas)
        });
        Self {
            client: client.clone(),
            budgets,
            sources,
            queue,
            recorder: Recorder::new(client, "disruption-controller", &config.host),
        }
    }

    /// Runs until the future is dropped (the shared informers are run by the caller).
    pub async fn run(self) {
        let own = self.budgets.clone().run();
        let controller = async {
            self.budgets.wait_synced().await;
            self.sources.pods.wait_synced().await;
            self.sources.replicasets.wait_synced().await;
            self.sources.deployments.wait_synced().await;
            self.sources.statefulsets.wait_synced().await;
            work("disruption", self.queue.clone(), |key| self.reconcile(key)).await
        };
        tokio::join!(own, controller);
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(budget) = self.budgets.get(&key) else {
            return Ok(None);
        };
        let namespace = budget.metadata.namespace.as_deref();
        let pods = self.sources.pods.filter(|pod| {
            pod.metadata.namespace.as_deref() == namespace && selects(&budget, &pod.metadata.labels)
        });
        if pods.is_empty() {
            self.recorder.publish(
                budget.object_ref(&()),
                NORMAL,
                "NoPods",
                "No matching pods found",
            );
        }
        let now = Timestamp::now();
        let (disrupted, recheck) = still_disrupted(&budget, &pods, now);
        let status = match self.expected_and_desired(&budget, &pods).await {
            Ok((expected, desired)) => {
                let healthy = count_healthy(&pods, &disrupted);
                healthy_status(&budget, expected, desired, healthy, disrupted)
            }
            Err(why) => {
                self.recorder.publish(
                    budget.object_ref(&()),
                    WARNING,
                    "CalculateExpectedPodCountFailed",
                    &format!("Failed to calculate the number of expected pods: {why}"),
                );
                fail_safe(&budget, &why)
            }
        };
        self.write_status(&budget, status).await?;
        Ok(recheck)
    }

    /// `expectedPods` and `desiredHealthy` for the budget's spec.
    async fn expected_and_desired(
        &self,
        budget: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
    ) -> std::result::Result<(i32, i32), String> {
        let spec = budget.spec.as_ref();
        if let Some(max_unavailable) = spec.and_then(|s| s.max_unavailable.as_ref()) {
            let expected = self.expected_scale(budget, pods).await?;
            let unavailable = scaled(max_unavailable, expected)?;
            return Ok((expected, (expected - unavailable).max(0)));
        }
        match spec.and_then(|s| s.min_available.as_ref()) {
            Some(IntOrString::Int(min)) => Ok((pods.len() as i32, *min)),
            Some(percent @ IntOrString::String(_)) => {
                let expected = self.expected_scale(budget, pods).await?;
                Ok((expected, scaled(percent, expected)?))
            }
            None => Ok((0, 0)),
        }
    }

    /// The summed scale of the controllers of `pods`, each counted once
    /// (kube's `getExpectedScale`); pods without a controller are reported
    /// and left out.
    async fn expected_scale(
        &self,
        budget: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
    ) -> std::result::Result<i32, String> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let Some(owner) = controller_of(&pod.metadata) else {
                unmanaged.push(pod.metadata.name.clone().unwrap_or_default());
                continue;
            };
            if scales.contains_key(&owner.uid) {
                continue;
            }
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            match self
                .controller_scale(
                    namespace,
                    &owner.api_version,
                    &owner.kind,
                    &owner.name,
                    &owner.uid,
                )
                .await
            {
                Some((uid, scale)) => {
                    scales.insert(owner.uid.clone(), scale);
                    scales.entry(uid).or_insert(0);
                }
                None => {
                    let why = format!(
                        "found no controllers for pod {:?}",
                        pod.metadata.name.as_deref().unwrap_or_default()
                    );
                    self.recorder
                        .publish(budget.object_ref(&()), WARNING, "NoControllers", &why);
                    return Err(why);
                }
            }
        }
        if !unmanaged.is_empty() {
            self.recorder.publish(
                budget.object_ref(&()),
                WARNING,
                "UnmanagedPods",
                &format!(
                    "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                    budget
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .map(kite_api::matching::selector_string)
                        .unwrap_or_default()
                ),
            );
        }
        Ok(scales.values().sum())
    }

    /// The uid and desired replicas of the controller a pod names: a
    /// ReplicaSet's Deployment if it has one, a StatefulSet, a
    /// ReplicationController, or anything with a `scale` subresource.
    /// Scale is keyed by the uid of the workload at the top (a Deployment's
    /// ReplicaSets count once, as the Deployment).
    async fn controller_scale(
        &self,
        namespace: &str,
        api_version: &str,
        kind: &str,
        name: &str,
        uid: &str,
    ) -> Option<(String, i32)> {
        let key = format!("{namespace}/{name}");
        match (api_version, kind) {
            ("apps/v1", "ReplicaSet") => {
                let rs = self.sources.replicasets.get(&key)?;
                if rs.metadata.uid.as_deref() != Some(uid) {
                    return None;
                }
                if let Some(owner) = controller_of(&rs.metadata)
                    .filter(|o| o.kind == "Deployment" && o.api_version == "apps/v1")
                {
                    let deploy = self
                        .sources
                        .deployments
                        .get(&format!("{namespace}/{}", owner.name))?;
                    let replicas = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    return Some((owner.uid.clone(), replicas));
                }
                Some((
                    uid.into(),
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ))
            }
            ("apps/v1", "StatefulSet") => {
                let sts = self.sources.statefulsets.get(&key)?;
                (sts.metadata.uid.as_deref() == Some(uid)).then(|| {
                    (
                        uid.into(),
                        sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                })
            }
            ("v1", "ReplicationController") => {
                let api = Api::<ReplicationController>::namespaced(self.client.clone(), namespace);
                let rc = api.get_opt(name).await.ok()??;
                (rc.metadata.uid.as_deref() == Some(uid)).then(|| {
                    (
                        uid.into(),
                        rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                })
            }
            _ => {
                let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
                let gvk = GroupVersionKind::gvk(group, version, kind);
                let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .ok()?;
                let api = Api::<DynamicObject>::namespaced_with(
                    self.client.clone(),
                    namespace,
                    &resource,
                );
                let scale = api.get_scale(name).await.ok()?;
                Some((uid.into(), scale.spec.and_then(|s| s.replicas).unwrap_or(0)))
            }
        }
    }

    async fn write_status(
        &self,
        budget: &PodDisruptionBudget,
        status: PodDisruptionBudgetStatus,
    ) -> Result<()> {
        if budget.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut updated = budget.clone();
        updated.status = Some(status);
        let namespace = budget.metadata.namespace.as_deref().unwrap_or_default();
        let api = Api::<PodDisruptionBudget>::namespaced(self.client.clone(), namespace);
        crate::util::replace_status(&api, &updated).await
    }
}

/// Requeues the budgets of a workload's namespace when its `replicas` changes.
fn requeue_on_scale<K>(
    workloads: &Informer<K>,
    queue: &WorkQueue,
    budgets: &Informer<PodDisruptionBudget>,
    replicas: fn(&K) -> Option<i32>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (queue, budgets) = (queue.clone(), budgets.clone());
    workloads.on_change(move |change| {
        if let Change::Updated { old, new } = change
            && replicas(old) != replicas(new)
        {
            let namespace = new.meta().namespace.as_deref();
            for budget in budgets.filter(|b| b.metadata.namespace.as_deref() == namespace) {
                queue.add(&key_of(&budget.metadata));
            }
        }
    });
}

/// Whether the budget selects pods with `labels`: a missing selector selects
/// none, an empty one every pod (policy/v1).
fn selects(budget: &PodDisruptionBudget, labels: &Option<BTreeMap<String, String>>) -> bool {
    let Some(selector) = budget.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    selector_matches(selector, labels.as_ref().unwrap_or(&BTreeMap::new()))
}

/// `value` of `total`: an integer as is, a percentage rounded up
/// (`GetScaledValueFromIntOrPercent` with rounding up).
fn scaled(value: &IntOrString, total: i32) -> std::result::Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((percent * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// The budget's `disruptedPods` entries still pending: their pod exists, is
/// not yet being deleted, and the eviction is under [`DELETION_TIMEOUT`] old;
/// with when the earliest of them expires.
fn still_disrupted(
    budget: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>) {
    let recorded = budget
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(when) = recorded.get(&name) else {
            continue;
        };
        let age = now.duration_since(when.0);
        let age = Duration::try_from(age).unwrap_or_default();
        if age >= DELETION_TIMEOUT {
            tracing::info!(
                budget = %key_of(&budget.metadata),
                pod = %name,
                "pod in disruptedPods was not deleted in time"
            );
            continue;
        }
        let left = DELETION_TIMEOUT - age;
        recheck = Some(recheck.map_or(left, |r| r.min(left)));
        kept.insert(name, when.clone());
    }
    (kept, recheck)
}

/// Ready pods that are neither being deleted nor waiting on an eviction.
fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| !disrupted.contains_key(pod.metadata.name.as_deref().unwrap_or_default()))
        .filter(|pod| is_ready(pod))
        .count() as i32
}

fn healthy_status(
    budget: &PodDisruptionBudget,
    expected: i32,
    desired: i32,
    healthy: i32,
    disrupted: BTreeMap<String, Time>,
) -> PodDisruptionBudgetStatus {
    let allowed = (healthy - desired).max(0);
    let (status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    PodDisruptionBudgetStatus {
        observed_generation: budget.metadata.generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        conditions: Some(with_condition(budget, status, reason, "")),
    }
}

/// No disruptions while the budget cannot be computed (kube's `failSafe`).
fn fail_safe(budget: &PodDisruptionBudget, why: &str) -> PodDisruptionBudgetStatus {
    let mut status = budget.status.clone().unwrap_or_default();
    status.observed_generation = budget.metadata.generation;
    status.disruptions_allowed = 0;
    status.conditions = Some(with_condition(budget, "False", "SyncFailed", why));
    status
}

/// The budget's conditions with `DisruptionAllowed` set; its transition
/// time moves only when its status changes.
fn with_condition(
    budget: &PodDisruptionBudget,
    status: &str,
    reason: &str,
    message: &str,
) -> Vec<Condition> {
    let mut conditions = budget
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    conditions.retain(|c| c.type_ != "DisruptionAllowed");
    conditions.push(Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: budget.metadata.generation,
        last_transition_time: transition,
    });
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
    }

    fn budget(selector: Option<LabelSelector>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector,
                min_available: Some(IntOrString::Int(2)),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("25%".into()), 4), Ok(1));
        assert_eq!(scaled(&IntOrString::String("0%".into()), 4), Ok(0));
        assert_eq!(scaled(&IntOrString::Int(7), 4), Ok(7));
        assert!(scaled(&IntOrString::String("half".into()), 4).is_err());
    }

    #[test]
    fn a_missing_selector_selects_nothing_and_an_empty_one_everything() {
        let labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
        assert!(!selects(&budget(None), &labels));
        assert!(selects(&budget(Some(LabelSelector::default())), &labels));
        let other = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "db".into())])),
            ..LabelSelector::default()
        };
        assert!(!selects(&budget(Some(other)), &labels));
    }

    #[test]
    fn evicted_and_unready_pods_are_not_healthy() {
        let now = Timestamp::now();
        let pods = vec![pod("a", true), pod("b", true), pod("c", false)];
        let disrupted = BTreeMap::from([("b".to_string(), Time(now))]);
        assert_eq!(count_healthy(&pods, &disrupted), 1);
        let status = healthy_status(&budget(None), 3, 2, 1, disrupted);
        assert_eq!(status.disruptions_allowed, 0);
        assert_eq!(status.observed_generation, Some(2));
        let condition = &status.conditions.unwrap_or_default()[0];
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "InsufficientPods")
        );
    }

    #[test]
    fn stale_disruptions_expire() {
        let now = Timestamp::now();
        let old = now - jiff_span(121);
        let recent = now - jiff_span(30);
        let mut b = budget(None);
        b.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([
                ("a".to_string(), Time(old)),
                ("b".to_string(), Time(recent)),
                ("gone".to_string(), Time(recent)),
            ])),
            ..PodDisruptionBudgetStatus::default()
        });
        let pods = vec![pod("a", true), pod("b", true)];
        let (kept, recheck) = still_disrupted(&b, &pods, now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["b"]);
        let recheck = recheck.expect("recheck");
        assert!(recheck <= Duration::from_secs(90) && recheck >= Duration::from_secs(89));
    }

    fn jiff_span(seconds: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(seconds)
    }
}
