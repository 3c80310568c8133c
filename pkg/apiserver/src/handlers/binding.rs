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
    loop {
        let (mut pod, revision) = crate::handlers::get::read(call, &name)
            .await?
            .ok_or_else(|| errors::not_found(&call.resource, &name))?;
        if let Some(uid) = uid
            && objects::meta_str(&pod, "uid") != uid
        {
            return Err(errors::conflict_with(
                &call.resource,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    objects::meta_str(&pod, "uid")
                ),
            ));
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(errors::conflict_with(
                &call.resource,
                &name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(bound) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(errors::conflict_with(
                &call.resource,
                &name,
                &format!("pod {name} is already assigned to node \"{bound}\""),
            ));
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
