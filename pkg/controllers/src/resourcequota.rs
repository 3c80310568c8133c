//! The ResourceQuota controller: keeps each quota's `status.hard` equal to
//! `spec.hard` and `status.used` equal to what the namespace's objects charge
//! (the sums come from [`kite_api::admission::resource_quota`], the same
//! evaluators admission uses).
//!
//! As in kube-controller-manager, admission charges creates itself, so the
//! controller recomputes a namespace's quotas when a quota's spec changes and
//! when counted objects go away or charge less (a pod finishing or being
//! deleted, a service changing type), plus a full resync every five minutes.
//! Pods, services, ConfigMaps, Secrets, claims and ReplicationControllers are
//! read from informers (ConfigMaps, Secrets and ReplicationControllers only
//! count, so their informers hold metadata alone: at 10,000 ConfigMaps the
//! full objects cost tens of megabytes); other `count/<resource>.<group>`
//! kinds are listed through the API when a quota names them.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kite_api::admission::resource_quota::{self as rq, ResourceList};
use kite_client::{Change, Informer, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How often every quota is recomputed from scratch (kube's `--resource-quota-sync-period`).
const RESYNC: Duration = Duration::from_secs(300);

/// The ResourceQuota controller.
pub struct Controller {
    client: kube::Client,
    quotas: Informer<ResourceQuota>,
    pods: Informer<Pod>,
    services: Informer<Service>,
    configmaps: Informer<PartialObjectMeta<ConfigMap>>,
    secrets: Informer<PartialObjectMeta<Secret>>,
    claims: Informer<PersistentVolumeClaim>,
    controllers: Informer<PartialObjectMeta<ReplicationController>>,
    queue: WorkQueue,
}

impl Controller {
    /// A controller over the shared Pod and Service informers; it runs its
    /// own for quotas and the other counted core kinds.
    pub fn new(config: &Config, pods: Informer<Pod>, services: Informer<Service>) -> Self {
        let client = config.client.clone();
        let queue = WorkQueue::new();
        let quotas = Informer::new(Api::<ResourceQuota>::all(client.clone()));
        let q = queue.clone();
        quotas.on_change(move |change| {
            let wanted = match change {
                Change::Added(_) => true,
                Change::Updated { old, new } => old.spec != new.spec || stale(new),
                Change::Deleted(_) => false,
            };
            if wanted {
                q.add(&key_of(&change.object().metadata));
            }
        });
        let this = Self {
            client: client.clone(),
            quotas,
            pods,
            services,
            configmaps: Informer::new(Api::all(client.clone())),
            secrets: Informer::new(Api::all(client.clone())),
            claims: Informer::new(Api::all(client.clone())),
            controllers: Informer::new(Api::all(client)),
            queue,
        };
        this.replenish(&this.pods);
        this.replenish(&this.services);
        this.replenish(&this.configmaps);
        this.replenish(&this.secrets);
        this.replenish(&this.claims);
        this.replenish(&this.controllers);
        this
    }

    /// Recomputes a namespace's quotas when one of its objects of kind `K`
    /// goes away or comes to charge less than before.
    fn replenish<K>(&self, informer: &Informer<K>)
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Serialize
            + Send
            + Sync
            + 'static,
    {
        let quotas = self.quotas.clone();
        let queue = self.queue.clone();
        let (group, plural) = (K::group(&()).to_string(), K::plural(&()).to_string());
        informer.on_change(move |change| {
            let shrank = match change {
                Change::Added(_) => false,
                Change::Deleted(_) => true,
                Change::Updated { old, new } => {
                    let before = rq::usage(&group, &plural, &to_value(old));
                    let after = rq::usage(&group, &plural, &to_value(new));
                    before != after || before.keys().ne(after.keys())
                }
            };
            if !shrank {
                return;
            }
            let namespace = change.object().meta().namespace.clone().unwrap_or_default();
            for quota in quotas.filter(|q| q.metadata.namespace.as_deref() == Some(&namespace)) {
                queue.add(&key_of(&quota.metadata));
            }
        });
    }

    /// Runs until the future is dropped (the shared Pod and Service informers
    /// are run by the caller).
    pub async fn run(self) {
        let own = async {
            tokio::join!(
                self.quotas.clone().run(),
                self.configmaps.clone().run(),
                self.secrets.clone().run(),
                self.claims.clone().run(),
                self.controllers.clone().run(),
            )
        };
        let controller = async {
            self.quotas.wait_synced().await;
            self.pods.wait_synced().await;
            self.services.wait_synced().await;
            self.configmaps.wait_synced().await;
            self.secrets.wait_synced().await;
            self.claims.wait_synced().await;
            self.controllers.wait_synced().await;
            work("resourcequota", self.queue.clone(), |key| {
                self.reconcile(key)
            })
            .await
        };
        tokio::join!(own, controller);
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(quota) = self.quotas.get(&key) else {
            return Ok(None);
        };
        let namespace = quota.metadata.namespace.clone().unwrap_or_default();
        let name = quota.metadata.name.clone().unwrap_or_default();
        let quota_value = to_value(&quota);
        let hard = quota
            .spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default();
        let mut kinds: Vec<(String, String)> =
            hard.keys().filter_map(|n| rq::counted_kind(n)).collect();
        kinds.sort();
        kinds.dedup();
        let mut used = ResourceList::new();
        for (group, plural) in kinds {
            let Some(objects) = self.objects(&namespace, &group, &plural).await? else {
                continue;
            };
            rq::add(
                &mut used,
                &rq::calculate_usage(&quota_value, &group, &plural, &objects),
            );
        }
        // Names no evaluator counts keep what was observed before.
        let mut status_used = quota_value
            .pointer("/status/used")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(map) = status_used.as_object_mut() {
            map.retain(|k, _| hard.contains_key(k));
            if let Value::Object(fresh) = rq::to_json(&used) {
                map.extend(fresh);
            }
        }
        let mut hard_json = json!({});
        for (k, v) in &hard {
            hard_json[k] = json!(
                kite_api::validation::Quantity::parse(&v.0)
                    .map(|q| q.canonical())
                    .unwrap_or_else(|_| v.0.clone())
            );
        }
        let status = json!({"hard": hard_json, "used": status_used});
        if quota_value.get("status") != Some(&status) {
            let api = Api::<ResourceQuota>::namespaced(self.client.clone(), &namespace);
            let patch = json!({"status": status});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(RESYNC))
    }

    /// The namespace's objects of a kind, from a cache when there is one, else
    /// listed through the API (`None`: the API does not serve the kind).
    async fn objects(
        &self,
        namespace: &str,
        group: &str,
        plural: &str,
    ) -> Result<Option<Vec<Value>>> {
        fn of<K>(informer: &Informer<K>, namespace: &str) -> Vec<Value>
        where
            K: Resource<DynamicType = ()>
                + Clone
                + serde::de::DeserializeOwned
                + std::fmt::Debug
                + Send
                + Sync
                + Serialize
                + 'static,
        {
            informer
                .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
                .iter()
                .map(to_value)
                .collect()
        }
        let cached = match (group, plural) {
            ("", "pods") => Some(of(&self.pods, namespace)),
            ("", "services") => Some(of(&self.services, namespace)),
            ("", "configmaps") => Some(of(&self.configmaps, namespace)),
            ("", "secrets") => Some(of(&self.secrets, namespace)),
            ("", "persistentvolumeclaims") => Some(of(&self.claims, namespace)),
            ("", "replicationcontrollers") => Some(of(&self.controllers, namespace)),
            ("", "resourcequotas") => Some(of(&self.quotas, namespace)),
            _ => None,
        };
        if cached.is_some() {
            return Ok(cached);
        }
        let Some(resource) = self.discover(group, plural).await else {
            return Ok(None);
        };
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource);
        let list = match api.list_metadata(&ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(
            list.items
                .iter()
                .map(|o| json!({"metadata": serde_json::to_value(&o.metadata).unwrap_or(Value::Null)}))
                .collect(),
        ))
    }

    /// The served version of `plural` in `group`.
    async fn discover(&self, group: &str, plural: &str) -> Option<ApiResource> {
        let versions: Vec<String> = if group.is_empty() {
            vec!["v1".into()]
        } else {
            let groups = self.client.list_api_groups().await.ok()?;
            let found = groups.groups.into_iter().find(|g| g.name == group)?;
            let preferred = found.preferred_version.map(|v| v.version);
            preferred
                .into_iter()
                .chain(found.versions.into_iter().map(|v| v.version))
                .collect()
        };
        for version in versions {
            let api_version = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            let Ok(list) = self.client.list_api_group_resources(&api_version).await else {
                continue;
            };
            if let Some(r) = list.resources.iter().find(|r| r.name == plural) {
                let gvk = GroupVersionKind::gvk(group, &version, &r.kind);
                return Some(ApiResource::from_gvk_with_plural(&gvk, plural));
            }
        }
        None
    }
}

/// Whether the quota's status does not yet reflect its spec.
fn stale(quota: &ResourceQuota) -> bool {
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    let status = quota.status.as_ref();
    let status_hard = status.and_then(|s| s.hard.as_ref());
    let used = status.and_then(|s| s.used.as_ref());
    hard.map(|h| h.keys().collect::<Vec<_>>()) != status_hard.map(|h| h.keys().collect())
        || hard.is_some_and(|h| h.keys().any(|k| used.is_none_or(|u| !u.contains_key(k))))
}

fn to_value<T: Serialize + ?Sized>(obj: &Arc<T>) -> Value {
    serde_json::to_value(&**obj).unwrap_or(Value::Null)
}
