//! The Deployment controller: one ReplicaSet per pod template, rolled over by
//! the Deployment's strategy.
//!
//! The ReplicaSet for the current template is `<deployment>-<pod-template-hash>`
//! and carries that hash as a label (also added to its selector and pods, so
//! ReplicaSets of one Deployment never fight over pods) and the
//! `deployment.kubernetes.io/revision` annotation. RollingUpdate grows the new
//! ReplicaSet while the total stays within `replicas + maxSurge` and shrinks old
//! ones while at least `replicas - maxUnavailable` pods stay available; Recreate
//! scales old ones to zero first. Status and the Available/Progressing
//! conditions use Kubernetes' reasons and messages.

use crate::util::{POD_TEMPLATE_HASH, controlled_by, controller_ref, template_hash};
use crate::{Config, Result, work};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kite_client::events::NORMAL;
use kite_client::{Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Annotation with the revision a ReplicaSet (and its Deployment) is at.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation listing the earlier revisions a rolled-back-to ReplicaSet had.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// The Deployment controller.
pub struct Controller {
    client: kube::Client,
    deployments: Informer<Deployment>,
    replicasets: Informer<ReplicaSet>,
    queue: WorkQueue,
    recorder: Recorder,
}

impl Controller {
    /// A controller over the shared Deployment and ReplicaSet informers.
    pub fn new(
        config: &Config,
        deployments: Informer<Deployment>,
        replicasets: Informer<ReplicaSet>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        deployments.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        replicasets.on_change(move |change| {
            let rs = change.object();
            if let Some(owner) = crate::util::controller_of(&rs.metadata)
                && owner.kind == "Deployment"
            {
                q.add(&format!(
                    "{}/{}",
                    rs.metadata.namespace.as_deref().unwrap_or_default(),
                    owner.name
                ));
            }
        });
        Self {
            client: config.client.clone(),
            deployments,
            replicasets,
            queue,
            recorder: Recorder::new(config.client.clone(), "deployment-controller", &config.host),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.deployments.wait_synced().await;
        self.replicasets.wait_synced().await;
        work("deployment", self.queue.clone(), |key| self.reconcile(key)).await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(d) = self.deployments.get(&key) else {
            return Ok(None);
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let mut owned: Vec<Arc<ReplicaSet>> = self.replicasets.filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(namespace.as_str())
                && controlled_by(&rs.metadata, &uid)
        });
        owned.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let (new_rs, old_rss): (Vec<_>, Vec<_>) = owned
            .iter()
            .cloned()
            .partition(|rs| same_template(rs, &spec.template));
        let new_rs = new_rs.into_iter().next();
        let (surge, unavailable) = rolling_limits(&spec, replicas);
        let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
        let max_old_revision = old_rss.iter().map(|rs| revision(rs)).max().unwrap_or(0);

        let Some(new_rs) = new_rs else {
            let old_total: i32 = old_rss.iter().map(|rs| spec_replicas(rs)).sum();
            let old_running: i32 = old_rss.iter().map(|rs| status_replicas(rs)).sum();
            let initial = if recreate {
                if old_running > 0 || old_total > 0 {
                    0
                } else {
                    replicas
                }
            } else if old_total == 0 {
                replicas
            } else {
                (replicas + surge - old_total).clamp(0, replicas)
            };
            let name = self
                .create_replicaset(&d, initial, max_old_revision + 1, surge)
                .await?;
            self.update_status(&d, &owned, None, replicas, unavailable, Some(&name))
                .await?;
            return Ok(None);
        };

        // A rollback makes an old ReplicaSet current again: it takes the next
        // revision, and remembers the ones it had (kube's revision-history).
        let current = revision(&new_rs);
        if current <= max_old_revision {
            self.bump_revision(&new_rs, current, max_old_revision + 1)
                .await?;
            self.set_revision(&d, max_old_revision + 1).await?;
        } else {
            self.set_revision(&d, current).await?;
        }

        if recreate {
            self.recreate(&d, &new_rs, &old_rss, replicas).await?;
        } else {
            self.rolling(&d, &new_rs, &old_rss, replicas, surge, unavailable)
                .await?;
        }
        self.cleanup(&spec, &old_rss).await?;
        self.update_status(&d, &owned, Some(&new_rs), replicas, unavailable, None)
            .await
    }

    async fn recreate(
        &self,
        d: &Deployment,
        new_rs: &ReplicaSet,
        old_rss: &[Arc<ReplicaSet>],
        replicas: i32,
    ) -> Result<()> {
        for rs in old_rss {
            if spec_replicas(rs) > 0 {
                self.scale(d, rs, 0).await?;
            }
        }
        // New pods start only once every old pod is gone.
        if old_rss.iter().all(|rs| status_replicas(rs) == 0) && spec_replicas(new_rs) != replicas {
            self.scale(d, new_rs, replicas).await?;
        }
        Ok(())
    }

    async fn rolling(
        &self,
        d: &Deployment,
        new_rs: &ReplicaSet,
        old_rss: &[Arc<ReplicaSet>],
        replicas: i32,
        surge: i32,
        unavailable: i32,
    ) -> Result<()> {
        let new_replicas = spec_replicas(new_rs);
        let old_active: Vec<&Arc<ReplicaSet>> =
            old_rss.iter().filter(|rs| spec_replicas(rs) > 0).collect();
        if old_active.is_empty() {
            // Settled (or just scaled): the new ReplicaSet takes the whole size.
            if new_replicas != replicas {
                self.scale(d, new_rs, replicas).await?;
            }
            return Ok(());
        }
        let old_total: i32 = old_active.iter().map(|rs| spec_replicas(rs)).sum();
        // Grow the new ReplicaSet within replicas + maxSurge.
        let mut new_target = new_replicas;
        if new_replicas < replicas {
            let room = replicas + surge - (old_total + new_replicas);
            if room > 0 {
                new_target = new_replicas + room.min(replicas - new_replicas);
            }
        } else if new_replicas > replicas {
            new_target = replicas;
        }
        if new_target != new_replicas {
            self.scale(d, new_rs, new_target).await?;
        }
        // Shrink old ReplicaSets while replicas - maxUnavailable stay available.
        let min_available = replicas - unavailable;
        let all_pods = old_total + new_target;
        let new_unavailable = (new_target - available(new_rs)).max(0);
        let mut budget = all_pods - min_available - new_unavailable;
        if budget <= 0 {
            return Ok(());
        }
        let mut targets: Vec<(Arc<ReplicaSet>, i32)> = old_active
            .iter()
            .map(|rs| ((*rs).clone(), spec_replicas(rs)))
            .collect();
        // First the pods that are not available anyway, oldest ReplicaSet first.
        for (rs, target) in &mut targets {
            let unhealthy = (*target - available(rs)).max(0);
            let cut = unhealthy.min(budget);
            *target -= cut;
            budget -= cut;
        }
        // Then available ones, as long as enough stay available overall.
        let total_available: i32 =
            old_active.iter().map(|rs| available(rs)).sum::<i32>() + available(new_rs);
        let mut spare = (total_available - min_available).min(budget);
        for (rs, target) in &mut targets {
            if spare <= 0 {
                break;
            }
            let cut = (*target).min(spare).min(available(rs));
            *target -= cut;
            spare -= cut;
        }
        for (rs, target) in targets {
            if target != spec_replicas(&rs) {
                self.scale(d, &rs, target).await?;
            }
        }
        Ok(())
    }

    async fn create_replicaset(
        &self,
        d: &Deployment,
        replicas: i32,
        revision: i64,
        surge: i32,
    ) -> Result<String> {
        let spec = d.spec.clone().unwrap_or_default();
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        let mut labels = meta.labels.clone().unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.to_string(), hash.clone());
        meta.labels = Some(labels.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.to_string(), hash.clone());
        let desired = spec.replicas.unwrap_or(1);
        let annotations = BTreeMap::from([
            (REVISION.to_string(), revision.to_string()),
            (DESIRED_REPLICAS.to_string(), desired.to_string()),
            (MAX_REPLICAS.to_string(), (desired + surge).to_string()),
        ]);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &rs).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Ours already, created by an earlier pass the cache has not seen yet.
                if let Some(existing) = api.get_opt(&name).await?
                    && controlled_by(
                        &existing.metadata,
                        d.metadata.uid.as_deref().unwrap_or_default(),
                    )
                    && same_template(&existing, &spec.template)
                {
                    return Ok(name);
                }
                // A ReplicaSet with this name but another template exists: count a
                // collision so the next hash differs (as Kubernetes does).
                let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
                let patch =
                    serde_json::json!({"status": {"collisionCount": collisions.unwrap_or(0) + 1}});
                deployments
                    .patch_status(
                        d.metadata.name.as_deref().unwrap_or_default(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                return Ok(name);
            }
            Err(error) => return Err(error.into()),
        }
        if replicas > 0 {
            self.recorder.publish(
                d.object_ref(&()),
                NORMAL,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {name} to {replicas}"),
            );
        }
        self.set_revision(d, revision).await?;
        Ok(name)
    }

    /// Moves a ReplicaSet to revision `to`, adding `from` to its revision history.
    async fn bump_revision(&self, rs: &ReplicaSet, from: i64, to: i64) -> Result<()> {
        let mut history: Vec<String> = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_HISTORY))
            .map(|h| h.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        if from > 0 {
            history.push(from.to_string());
        }
        let api: Api<ReplicaSet> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": rs.metadata.resource_version,
            "annotations": {REVISION: to.to_string(), REVISION_HISTORY: history.join(",")},
        }});
        api.patch(
            rs.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }

    /// Records the current revision on the Deployment, as `kubectl rollout history` reads it.
    async fn set_revision(&self, d: &Deployment, revision: i64) -> Result<()> {
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .cloned();
        if current.as_deref() == Some(revision.to_string().as_str()) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch =
            serde_json::json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
        api.patch(
            d.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }

    async fn scale(&self, d: &Deployment, rs: &ReplicaSet, to: i32) -> Result<()> {
        let from = spec_replicas(rs);
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let (surge, _) = rolling_limits(&d.spec.clone().unwrap_or_default(), desired);
        let api: Api<ReplicaSet> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = rs.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": rs.metadata.resource_version,
                "annotations": {
                    DESIRED_REPLICAS: desired.to_string(),
                    MAX_REPLICAS: (desired + surge).to_string(),
                },
            },
            "spec": {"replicas": to},
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let direction = if to > from { "up" } else { "down" };
        self.recorder.publish(
            d.object_ref(&()),
            NORMAL,
            "ScalingReplicaSet",
            &format!("Scaled {direction} replica set {name} to {to} from {from}"),
        );
        Ok(())
    }

    /// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit` (10 by default).
    async fn cleanup(
        &self,
        spec: &k8s_openapi::api::apps::v1::DeploymentSpec,
        old_rss: &[Arc<ReplicaSet>],
    ) -> Result<()> {
        let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(10);
        let mut empty: Vec<&Arc<ReplicaSet>> = old_rss
            .iter()
            .filter(|rs| {
                spec_replicas(rs) == 0
                    && status_replicas(rs) == 0
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if empty.len() <= limit {
            return Ok(());
        }
        empty.sort_by_key(|rs| revision(rs));
        for rs in &empty[..empty.len() - limit] {
            let api: Api<ReplicaSet> = Api::namespaced(
                self.client.clone(),
                rs.metadata.namespace.as_deref().unwrap_or_default(),
            );
            match api
                .delete(
                    rs.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn update_status(
        &self,
        d: &Deployment,
        owned: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
        replicas: i32,
        max_unavailable: i32,
        created: Option<&str>,
    ) -> Result<Option<Duration>> {
        let sum = |f: &dyn Fn(&ReplicaSet) -> i32| owned.iter().map(|rs| f(rs)).sum::<i32>();
        let total = sum(&status_replicas);
        let ready = sum(&|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        });
        let available_total = sum(&available);
        let updated = new_rs.map(status_replicas).unwrap_or(0);
        let old = d.status.clone().unwrap_or_default();
        let now = Time(Timestamp::now());
        let mut conditions = old.conditions.clone().unwrap_or_default();

        let (status, reason, message) = if available_total >= replicas - max_unavailable {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_string(),
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".to_string(),
            )
        };
        set_condition(
            &mut conditions,
            "Available",
            status,
            reason,
            &message,
            &now,
            false,
        );

        let new_name = created
            .map(str::to_string)
            .or_else(|| new_rs.and_then(|rs| rs.metadata.name.clone()))
            .unwrap_or_default();
        let complete = new_rs.is_some()
            && updated == replicas
            && total == replicas
            && available_total == replicas
            && new_rs.is_some_and(|rs| spec_replicas(rs) == replicas);
        let progressed = old.replicas != Some(total)
            || old.updated_replicas != Some(updated)
            || old.ready_replicas != Some(ready)
            || old.available_replicas != Some(available_total);
        let deadline = d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        let mut requeue = None;
        if created.is_some() {
            let message = format!("Created new replica set \"{new_name}\"");
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &message,
                &now,
                true,
            );
        } else if complete {
            let message = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &message,
                &now,
                false,
            );
        } else if progressed || !conditions.iter().any(|c| c.type_ == "Progressing") {
            let message = format!("ReplicaSet \"{new_name}\" is progressing.");
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &message,
                &now,
                true,
            );
            requeue = Some(Duration::from_secs(
                u64::try_from(deadline).unwrap_or(600) + 1,
            ));
        } else if let Some(c) = conditions.iter().find(|c| c.type_ == "Progressing")
            && c.reason.as_deref() != Some("NewReplicaSetAvailable")
            && c.status == "True"
        {
            let last = c
                .last_update_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now);
            let idle = Timestamp::now().duration_since(last).as_secs();
            if idle > i64::from(deadline) {
                let message = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
                set_condition(
                    &mut conditions,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &message,
                    &now,
                    true,
                );
            } else {
                requeue = Some(Duration::from_secs(
                    u64::try_from(i64::from(deadline) - idle + 1).unwrap_or(1),
                ));
            }
        }
        conditions.sort_by_key(|c| if c.type_ == "Available" { 0 } else { 1 });

        let status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(total),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            available_replicas: Some(available_total),
            unavailable_replicas: Some((replicas - available_total).max(0)),
            terminating_replicas: old.terminating_replicas,
            collision_count: old.collision_count,
            conditions: Some(conditions),
        };
        if status == old {
            return Ok(requeue);
        }
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({"status": status});
        match api
            .patch_status(
                d.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(requeue),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

/// Sets a condition, keeping `lastTransitionTime` unless the status flips and
/// `lastUpdateTime` unless something about it changed (or `touch` asks).
fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
    touch: bool,
) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now.clone());
            }
            let changed = c.status != status
                || c.reason.as_deref() != Some(reason)
                || c.message.as_deref() != Some(message);
            if changed || touch {
                c.last_update_time = Some(now.clone());
            }
            c.status = status.to_string();
            c.reason = Some(reason.to_string());
            c.message = Some(message.to_string());
        }
        None => conditions.push(DeploymentCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        }),
    }
}

/// Whether the ReplicaSet's template is the Deployment's, ignoring the hash label.
fn same_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    let Some(mut theirs) = rs.spec.as_ref().and_then(|s| s.template.clone()) else {
        return false;
    };
    let mut ours = template.clone();
    for t in [&mut theirs, &mut ours] {
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
    }
    // Compare as JSON so absent and empty collections count as the same.
    let normal = |t: &PodTemplateSpec| {
        let mut value = serde_json::to_value(t).unwrap_or_default();
        strip_empty(&mut value);
        value
    };
    normal(&theirs) == normal(&ours)
}

fn strip_empty(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                strip_empty(v);
            }
            map.retain(|_, v| match v {
                serde_json::Value::Null => false,
                serde_json::Value::Object(m) => !m.is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                _ => true,
            });
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_empty),
        _ => {}
    }
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// maxSurge and maxUnavailable as pod counts for `replicas`: percentages round
/// up for surge and down for unavailable, and both zero becomes one unavailable
/// so that a rollout can always move (Kubernetes' rule).
pub fn rolling_limits(
    spec: &k8s_openapi::api::apps::v1::DeploymentSpec,
    replicas: i32,
) -> (i32, i32) {
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = rolling
        .and_then(|r| r.max_surge.clone())
        .unwrap_or_else(|| quarter.clone());
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(quarter);
    if spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return (0, replicas);
    }
    let scaled = |v: &IntOrString, round_up: bool| match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = percent * i64::from(replicas);
            let value = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            i32::try_from(value).unwrap_or(0)
        }
    };
    let surge = scaled(&surge, true);
    let mut unavailable = scaled(&unavailable, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;

    fn spec(strategy: serde_json::Value) -> DeploymentSpec {
        serde_json::from_value(serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
            "strategy": strategy,
        }))
        .expect("spec")
    }

    #[test]
    fn rolling_limits_round_surge_up_and_unavailable_down() {
        assert_eq!(rolling_limits(&spec(serde_json::json!({})), 3), (1, 0));
        assert_eq!(rolling_limits(&spec(serde_json::json!({})), 10), (3, 2));
        let fixed = spec(serde_json::json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}));
        assert_eq!(rolling_limits(&fixed, 5), (0, 1));
        let recreate = spec(serde_json::json!({"type": "Recreate"}));
        assert_eq!(rolling_limits(&recreate, 4), (0, 4));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let d = spec(serde_json::json!({}));
        let mut template = d.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), "abc".into());
        let rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                template: Some(template),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(same_template(&rs, &d.template));
    }
}
