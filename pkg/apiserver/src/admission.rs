//! Admission of new pods, in Kubernetes' order: LimitRanger, ServiceAccount,
//! then DefaultTolerationSeconds. The decisions are pure functions in
//! [`kite_api::admission`]; this module fetches what they consult (the
//! namespace's LimitRanges, the pod's ServiceAccount) from the store.

use crate::api::Call;
use crate::errors::{self, ApiResult};
use crate::objects;
use kite_api::admission::{default_toleration_seconds, limit_range, service_account};
use kite_api::{Status, StatusDetails, StatusReason};
use serde_json::Value;

/// Runs the admission steps for creating `obj` (already defaulted).
pub async fn admit_create(call: &Call<'_>, obj: &mut Value) -> ApiResult<()> {
    let resource = &call.resource;
    if !(resource.group.is_empty() && resource.kind == "Pod") {
        return Ok(());
    }
    let Some(namespace) = call.namespace() else {
        return Ok(());
    };
    let name = objects::name(obj).to_string();

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
