//! PUT: replacing an object (or its status), with optimistic concurrency.

use crate::api::Call;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::field_manager::Ownership;
use crate::objects;
use crate::output;
use crate::strategy;
use http::{Response, StatusCode};
use kite_api::validation::invalid_status;
use kite_store::UpdateOutcome;
use serde_json::Value;

/// Replaces the object named in the path with the body.
pub async fn update(call: &Call<'_>, subresource: Option<&str>) -> ApiResult<Response<Body>> {
    let r = &call.resource;
    let mut obj = codec::decode_typed(
        call.headers,
        &call.body,
        Some((&r.group, &r.version, &r.kind)),
    )?;
    check_type(call, &obj)?;
    let warnings = crate::field_validation::check(call, &call.body, &mut obj)?;
    let name = call.request.name.clone().unwrap_or_default();
    let body_name = objects::name(&obj);
    if body_name != name {
        return Err(errors::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(ns) = call.namespace() {
        let body_ns = objects::namespace(&obj);
        if !body_ns.is_empty() && body_ns != ns {
            return Err(errors::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let precondition = requested_revision(&obj)?;
    let (object, code) = write(call, &name, subresource, precondition, |_| Ok(obj.clone())).await?;
    Ok(crate::field_validation::add_warnings(
        output::object(call, code, &object)?,
        &warnings,
    ))
}

/// `metadata.resourceVersion` of a body, if it carries one.
pub fn requested_revision(obj: &Value) -> ApiResult<Option<i64>> {
    match objects::meta_str(obj, "resourceVersion") {
        "" => Ok(None),
        rv => rv
            .parse::<i64>()
            .map(Some)
            .map_err(|_| errors::bad_request(format!("invalid resource version {rv:?}"))),
    }
}

/// Reads the current object, computes the new one with `change`, and writes it
/// with compare-and-swap, retrying on races unless the client pinned a revision.
/// The write is recorded in `metadata.managedFields` as an `Update`.
pub async fn write<F>(
    call: &Call<'_>,
    name: &str,
    subresource: Option<&str>,
    precondition: Option<i64>,
    change: F,
) -> ApiResult<(Value, StatusCode)>
where
    F: Fn(&Value) -> ApiResult<Value>,
{
    let ownership = Ownership::of(call, subresource, false)?;
    write_owned(
        call,
        name,
        subresource,
        precondition,
        Some(&ownership),
        change,
    )
    .await
}

/// [`write`], recording ownership with `ownership` when given; `None` when
/// `change` has already set `metadata.managedFields` (server-side apply).
pub async fn write_owned<F>(
    call: &Call<'_>,
    name: &str,
    subresource: Option<&str>,
    precondition: Option<i64>,
    ownership: Option<&Ownership>,
    change: F,
) -> ApiResult<(Value, StatusCode)>
where
    F: Fn(&Value) -> ApiResult<Value>,
{
    let key = objects::key(&call.resource, call.namespace(), name);
    loop {
        let (old, revision) = crate::handlers::get::read(call, name)
            .await?
            .ok_or_else(|| errors::not_found(&call.resource, name))?;
        if precondition.is_some_and(|p| p != revision) {
            return Err(errors::conflict(&call.resource, name));
        }
        let proposed = change(&old)?;
        let mut new = if subresource == Some("status") {
            strategy::prepare_for_status_update(&call.resource, &proposed, &old)
        } else if subresource == Some("approval") {
            strategy::prepare_for_approval(&call.resource, &proposed, &old)
        } else if subresource == Some("finalize") {
            strategy::prepare_for_finalize(&call.resource, &proposed, &old)
        } else {
            let mut new = proposed;
            strategy::prepare_for_update(&call.resource, &mut new, &old);
            new
        };
        if let Some(ns) = call.namespace() {
            objects::metadata_mut(&mut new)
                .insert("namespace".into(), Value::String(ns.to_string()));
        }
        objects::set_resource_version(&mut new, revision);
        if let Some(ownership) = ownership {
            ownership.record_update(Some(&old), &mut new);
        }
        validate(call, &new, Some(&old))?;
        if new == old {
            // Nothing changed: kube-apiserver skips the write and keeps the resourceVersion.
            return Ok((old, StatusCode::OK));
        }
        if call.dry_run()? {
            return Ok((new, StatusCode::OK));
        }
        // Removing the last finalizer of an object being deleted completes the delete.
        if new.pointer("/metadata/deletionTimestamp").is_some() && !held(&new) {
            match call
                .api
                .store
                .delete(&key, Some(revision))
                .await
                .map_err(errors::from_store)?
            {
                kite_store::DeleteOutcome::Deleted { .. } => return Ok((new, StatusCode::OK)),
                _ if precondition.is_some() => return Err(errors::conflict(&call.resource, name)),
                _ => continue,
            }
        }
        match call
            .api
            .store
            .update(&key, strategy::encode(&call.resource, &new), revision, 0)
            .await
            .map_err(errors::from_store)?
        {
            UpdateOutcome::Updated { revision } => {
                objects::set_resource_version(&mut new, revision);
                return Ok((new, StatusCode::OK));
            }
            UpdateOutcome::Conflict { .. } if precondition.is_some() => {
                return Err(errors::conflict(&call.resource, name));
            }
            UpdateOutcome::Conflict { .. } => continue,
        }
    }
}

/// Whether something still holds a deleted object: metadata finalizers, or a
/// namespace's `spec.finalizers` (cleared by the namespace controller via `/finalize`).
pub fn held(obj: &Value) -> bool {
    let spec_finalizers = obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
        && obj.get("kind").and_then(Value::as_str) == Some("Namespace");
    !finalizers(obj).is_empty() || spec_finalizers
}

/// `metadata.finalizers` of an object.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The body's apiVersion and kind, when present, must be the resource's.
pub fn check_type(call: &Call<'_>, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(errors::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let expected_version = call.resource.api_version();
    if let Some(version) = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        && version != expected_version
    {
        return Err(errors::bad_request(format!(
            "the API version in the data ({version}) does not match the expected API version ({expected_version})"
        )));
    }
    if let Some(kind) = obj
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        && kind != call.resource.kind
    {
        return Err(errors::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            call.resource.kind
        )));
    }
    Ok(())
}

/// Runs the kind's validation; 422 with every cause on failure.
pub fn validate(call: &Call<'_>, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let errors = strategy::validate(&call.resource, obj, old);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_status(
            &call.resource.group,
            &call.resource.kind,
            objects::name(obj),
            &errors,
        ))
    }
}
