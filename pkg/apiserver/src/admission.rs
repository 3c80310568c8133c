//! Admission of new pods, in Kubernetes' order: LimitRanger, ServiceAccount,
//! then DefaultTolerationSeconds; of new PersistentVolumeClaims,
//! DefaultStorageClass, then (for volumes too) StorageObjectInUseProtection.
//! The decisions are pure functions in
//! [`kite_api::admission`]; this module fetches what they consult (the
//! namespace's LimitRanges, the pod's ServiceAccount) from the store.

use crate::api::Call;
use crate::errors::{self, ApiResult};
use crate::objects;
use kite_api::admission::{
    default_storage_class, default_toleration_seconds, limit_range, resource_quota,
    service_account, storage_object_in_use_protection,
};
use kite_api::{Status, StatusDetails, StatusReason};
use serde_json::Value;

/// Runs the admission steps for creating `obj` (already defaulted).
pub async fn admit_create(call: &Call<'_>, obj: &mut Value) -> ApiResult<()> {
    let resource = &call.resource;
    if resource.group == "certificates.k8s.io" && resource.kind == "CertificateSigningRequest" {
        // kube-apiserver's CSR strategy records who asked; the user is known here.
        crate::csr::record_requester(obj, call.user);
        return Ok(());
    }
    if resource.group.is_empty() && resource.kind == "PersistentVolumeClaim" {
        default_storage_class::admit(obj, &storage_classes(call));
        storage_object_in_use_protection::admit(&resource.kind, obj);
        return Ok(());
    }
    if resource.group.is_empty() && resource.kind == "PersistentVolume" {
        storage_object_in_use_protection::admit(&resource.kind, obj);
        return Ok(());
    }
    if !(resource.group.is_empty() && resource.kind == "Pod") {
        return Ok(());
    }
    let Some(namespace) = call.namespace() else {
        return Ok(());
    };
    let name = objects::name(obj).to_string();

    kite_api::admission::priority::admit(obj, &priority_classes(call))
        .map_err(|why| forbidden(call, &name, &why))?;

    let ranges = list(call, "limitranges", namespace).await?;
    if !ranges.is_empty() {
        limit_range::apply_defaults(obj, &ranges);
        let problems = limit_range::violations(obj, &ranges);
        if !problems.is_empty() {
            let message = match problems.as_slice() {
                [one] => one.clone(),
                many => format!("[{}]", many.join(", ")),
            };
            return Err(forbidden(call, &name, &message));
        }
    }

    if let Some(account) = service_account::account_name(obj) {
        let Some(found) = get(call, "serviceaccounts", namespace, &account).await? else {
            return Err(forbidden(
                call,
                &name,
                &format!(
                    "error looking up service account {namespace}/{account}: serviceaccount {account:?} not found"
                ),
            ));
        };
        service_account::admit(obj, &found, &objects::name_suffix());
    }
    default_toleration_seconds::admit(obj);
    Ok(())
}

/// The cluster's StorageClasses, from the watch cache (as upstream's plugin
/// reads its informer).
fn storage_classes(call: &Call<'_>) -> Vec<Value> {
    cached(call, "storage.k8s.io", "storageclasses")
}

/// The cluster's PriorityClasses, from the watch cache.
fn priority_classes(call: &Call<'_>) -> Vec<Value> {
    cached(call, "scheduling.k8s.io", "priorityclasses")
}

/// Every cluster-scoped `group/plural` object the watch cache holds.
fn cached(call: &Call<'_>, group: &str, plural: &str) -> Vec<Value> {
    let Some(resource) = call.api.registry.get(group, "v1", plural) else {
        return Vec::new();
    };
    let prefix = objects::prefix(&resource, None);
    let (objects, _) = call.api.cache(&resource).list(&prefix);
    objects
        .iter()
        .filter_map(|o| serde_json::from_slice(&o.json).ok())
        .collect()
}

/// Serialises quota admission, so back-to-back creates each see the usage
/// the one before charged.
static QUOTA_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// ResourceQuota admission, after the object is defaulted, mutated and
/// validated: refuses `obj` if it would take any of the namespace's quotas
/// over `status.hard`, else charges it to their `status.used` (kept as is for
/// a dry run) before the object is stored, retrying when a quota changed
/// under it.
pub async fn admit_quota(
    call: &Call<'_>,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> ApiResult<()> {
    let resource = &call.resource;
    let Some(namespace) = call.namespace() else {
        return Ok(());
    };
    let namespace_creation = resource.group.is_empty() && resource.kind == "Namespace";
    if namespace_creation
        || call.request.subresource.is_some()
        || !resource_quota::handles(&resource.group, &resource.plural, old.is_some())
    {
        return Ok(());
    }
    let Some(quotas_resource) = call.api.registry.get("", "v1", "resourcequotas") else {
        return Ok(());
    };
    let name = objects::name(obj).to_string();
    // Most namespaces have no quota: ask the watch cache (memory) before
    // serialising on the lock and reading the store.
    let prefix = objects::prefix(&quotas_resource, Some(namespace));
    if call.api.cache(&quotas_resource).list(&prefix).0.is_empty() {
        return Ok(());
    }
    let _serial = QUOTA_LOCK.lock().await;
    // Quotas already charged; a retry weighs only those whose write lost a race.
    let mut done = std::collections::HashSet::new();
    for _ in 0..5 {
        let page = call
            .api
            .store
            .list(&prefix, None, 0, 0)
            .await
            .map_err(errors::from_store)?;

        let mut quotas = Vec::new();
        for kv in &page.kvs {
            let quota = objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
            if !done.contains(&kv.key) {
                quotas.push((quota, kv.key.clone(), kv.mod_revision));
            }
        }
        if quotas.is_empty() {
            return Ok(());
        }
        let values: Vec<Value> = quotas.iter().map(|(q, _, _)| q.clone()).collect();
        let charged = resource_quota::admit(&values, &resource.group, &resource.plural, obj, old)
            .map_err(|why| forbidden(call, &name, &why))?;
        if dry_run || charged.is_empty() {
            return Ok(());
        }
        let mut conflict = false;
        for (i, used) in charged {
            let (quota, key, revision) = &quotas[i];
            let mut updated = quota.clone();
            updated["status"]["used"] = resource_quota::to_json(&used);
            match call
                .api
                .store
                .update(
                    key,
                    crate::strategy::encode(&quotas_resource, &updated),
                    *revision,
                    0,
                )
                .await
                .map_err(errors::from_store)?
            {
                kite_store::UpdateOutcome::Updated { .. } => {
                    done.insert(key.clone());
                }
                kite_store::UpdateOutcome::Conflict { .. } => conflict = true,
            }
        }
        if !conflict {
            return Ok(());
        }
    }
    Err(Status::failure(
        StatusReason::Conflict,
        format!(
            "{} {name:?} is forbidden: quota status kept changing",
            resource.group_resource()
        ),
    ))
}

fn forbidden(call: &Call<'_>, name: &str, why: &str) -> Status {
    let resource = &call.resource;
    Status::failure(
        StatusReason::Forbidden,
        format!("{} {name:?} is forbidden: {why}", resource.group_resource()),
    )
    .with_details(StatusDetails {
        name: name.to_string(),
        group: resource.group.clone(),
        kind: resource.plural.clone(),
        ..StatusDetails::default()
    })
}

/// A core/v1 object read from the store, if it exists (`namespace` is ignored
/// for cluster-scoped resources).
pub(crate) async fn get(
    call: &Call<'_>,
    plural: &str,
    namespace: &str,
    name: &str,
) -> ApiResult<Option<Value>> {
    let Some(resource) = call.api.registry.get("", "v1", plural) else {
        return Ok(None);
    };
    let key = objects::key(&resource, Some(namespace), name);
    let (_, kv) = call
        .api
        .store
        .get(&key, 0)
        .await
        .map_err(errors::from_store)?;
    kv.map(|kv| serde_json::from_slice(&kv.value).map_err(errors::internal))
        .transpose()
}

async fn list(call: &Call<'_>, plural: &str, namespace: &str) -> ApiResult<Vec<Value>> {
    let Some(resource) = call.api.registry.get("", "v1", plural) else {
        return Ok(Vec::new());
    };
    let prefix = objects::prefix(&resource, Some(namespace));
    let page = call
        .api
        .store
        .list(&prefix, None, 0, 0)
        .await
        .map_err(errors::from_store)?;
    page.kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).map_err(errors::internal))
        .collect()
}
