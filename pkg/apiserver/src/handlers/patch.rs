//! PATCH: JSON patch, merge patch, strategic merge patch, and apply.

use crate::api::Call;
use crate::body::Body;
use crate::errors::{self, ApiResult};
use crate::field_manager::Ownership;
use crate::handlers::update::{requested_revision, write, write_owned};
use crate::output;
use http::{Response, StatusCode, header};
use kite_api::patch::PatchType;
use serde_json::{Value, json};

/// Applies the patch in the body to the object named in the path.
pub async fn patch(call: &Call<'_>, subresource: Option<&str>) -> ApiResult<Response<Body>> {
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let custom = crate::strategy::is_custom(&call.resource);
    let patch_type = PatchType::negotiate(content_type, custom).map_err(|e| e.status())?;
    let name = call.request.name.clone().unwrap_or_default();
    if patch_type == PatchType::Apply {
        return apply(call, subresource, &name).await;
    }
    if call.param("force").is_some() {
        return Err(kite_api::validation::invalid_status(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[kite_api::FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        ));
    }
    // A patch that names a resourceVersion makes the update conditional on it.
    let precondition = match serde_json::from_slice::<Value>(&call.body) {
        Ok(patch @ Value::Object(_)) => requested_revision(&patch)?,
        _ => None,
    };
    let schema = schema_of(call);
    // The closure runs again on a conflict; the last run's warnings count.
    let warnings = std::sync::Mutex::new(Vec::new());
    let apply_patch = |old: &Value| -> ApiResult<Value> {
        let mut patched =
            kite_api::patch::apply(patch_type, old, &call.body, schema).map_err(|e| e.status())?;
        let found = crate::field_validation::check_patched(call, &call.body, &mut patched)?;
        *warnings.lock().unwrap_or_else(|e| e.into_inner()) = found;
        Ok(patched)
    };
    let (object, code) = write(call, &name, subresource, precondition, apply_patch).await?;
    let warnings = warnings.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(crate::field_validation::add_warnings(
        output::object(call, code, &object)?,
        &warnings,
    ))
}

fn schema_of(call: &Call<'_>) -> Option<kite_api::schema::SchemaNode<'static>> {
    kite_api::schema::definition_name_for(
        &call.resource.group,
        &call.resource.version,
        &call.resource.kind,
    )
    .and_then(kite_api::schema::node)
}

/// `application/apply-patch+yaml` (server-side apply): merges the applied
/// configuration into the object (creating it if missing), records the
/// manager's ownership, and refuses with 409 to change fields other managers
/// own unless `force=true`.
async fn apply(
    call: &Call<'_>,
    subresource: Option<&str>,
    name: &str,
) -> ApiResult<Response<Body>> {
    let text = std::str::from_utf8(&call.body)
        .map_err(|_| errors::bad_request("the apply body is not UTF-8"))?;
    let mut applied: Value = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.to_string();
        errors::bad_request(format!(
            "error decoding YAML: {}",
            message.lines().next().unwrap_or("")
        ))
    })?;
    if !applied.is_object() {
        return Err(errors::bad_request("the apply body must be an object"));
    }
    crate::handlers::update::check_type(call, &applied)?;
    if crate::objects::name(&applied) != name {
        return Err(errors::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            crate::objects::name(&applied)
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(errors::bad_request("metadata.managedFields must be nil"));
    }
    let json = serde_json::to_vec(&applied).map_err(errors::internal)?;
    let warnings = crate::field_validation::check(call, &json, &mut applied)?;
    let ownership = Ownership::of(call, subresource, true)?;
    let force = call
        .param("force")
        .is_some_and(|v| crate::request::parse_bool(&v));
    let exists = crate::handlers::get::read(call, name).await?.is_some();
    if !exists && subresource.is_none() {
        let object = ownership.apply(&json!({}), &applied, force)?;
        return crate::handlers::create::create_object(call, object, None, &warnings).await;
    }
    let (object, _) = write_owned(call, name, subresource, None, None, |old| {
        ownership.apply(old, &applied, force)
    })
    .await?;
    Ok(crate::field_validation::add_warnings(
        output::object(call, StatusCode::OK, &object)?,
        &warnings,
    ))
}
