//! `pods/<name>/binding`: the scheduler's (or anyone's) assignment of a pod to a node.
//!
//! As kube-apiserver's BindingREST: the pod must not be bound already or being
//! deleted (409 otherwise), an optional uid in the Binding must match, the
//! Binding's annotations are copied onto the pod, and the pod gets `spec.nodeName`
//! and the `PodScheduled=True` condition in one write.

use crate::api::Call;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::objects;
use http::Response;
use kite_store::UpdateOutcome;
use serde_json::{Value, json};

/// POST of a `Binding` to a pod.
pub async fn bind(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let binding = codec::decode_body(call.headers, &call.body)?;
    let target = binding.get("target").cloned().unwrap_or(Value::Null);
    let node = target.get("name").and_then(Value::as_str).unwrap_or("");
    let kind = target.get("kind").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() || !(kind.is_empty() || kind == "Node") {
        return Err(kite_api::validation::invalid_status(
            "",
            "Binding",
            &name,
            &[kite_api::FieldError::invalid(
                "target",
                target.to_string(),
                "must name a Node",
            )],
        ));
    }
    let uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    let key = objects::key(&call.resource, call.namespace(), &name);
    // As kube-apiserver's GuaranteedUpdate: the first try starts from the
    // watch cache's copy (a store read saved per binding, the scheduler's hot
    // path); the compare-and-swap catches a stale copy, and any refusal is
    // only given after a check against the store.
    let mut cached = crate::handlers::get::cached(call, &key);
    loop {
        let from_cache = cached.is_some();
        let (mut pod, revision) = match cached.take() {
            Some(hint) => hint,
            None => crate::handlers::get::read(call, &name)
                .await?
                .ok_or_else(|| errors::not_found(&call.resource, &name))?,
        };
        if let Some(refusal) = refusal(call, &pod, &name, uid) {
            if from_cache {
                continue;
            }
            return Err(refusal);
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(annotations) = binding
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            let meta = objects::metadata_mut(&mut pod);
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(target) = target.as_object_mut() {
                for (k, v) in annotations {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
        set_scheduled(&mut pod);
        if call.dry_run()? {
            break;
        }
        match call
            .api
            .store
            .update(&key, objects::encode(&pod), revision, 0)
            .await
            .map_err(errors::from_store)?
        {
            UpdateOutcome::Updated { .. } => break,
            UpdateOutcome::Conflict { .. } => continue,
        }
    }
    crate::output::created_success(call)
}

/// Why the pod cannot be bound as it is: a uid other than the Binding's, a
/// deletion under way, or a node already assigned (409s, as upstream words them).
fn refusal(
    call: &Call<'_>,
    pod: &Value,
    name: &str,
    uid: Option<&str>,
) -> Option<kite_api::Status> {
    if let Some(uid) = uid
        && objects::meta_str(pod, "uid") != uid
    {
        return Some(errors::conflict_with(
            &call.resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                objects::meta_str(pod, "uid")
            ),
        ));
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Some(errors::conflict_with(
            &call.resource,
            name,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    Some(errors::conflict_with(
        &call.resource,
        name,
        &format!("pod {name} is already assigned to node \"{bound}\""),
    ))
}

/// Sets `PodScheduled=True`, replacing an earlier `False` from failed attempts.
fn set_scheduled(pod: &mut Value) {
    let condition = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": objects::now_rfc3339(),
    });
    objects::replace_condition(pod, condition);
}
