//! `?fieldValidation=Strict|Warn|Ignore`: unknown and duplicate fields in
//! request bodies are errors (Strict), `Warning` headers (Warn, the server
//! default) or silently dropped (Ignore), as kube-apiserver does.

use crate::api::Call;
use crate::errors::{self, ApiResult};
use http::{HeaderValue, Response};
use serde_json::Value;

/// How unknown or duplicate fields are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Drop them silently.
    Ignore,
    /// Accept the request and warn.
    Warn,
    /// Reject the request.
    Strict,
}

/// The mode a call asks for.
pub fn mode(call: &Call<'_>) -> ApiResult<Mode> {
    match call.param("fieldValidation").as_deref() {
        None | Some("") | Some("Warn") => Ok(Mode::Warn),
        Some("Strict") => Ok(Mode::Strict),
        Some("Ignore") => Ok(Mode::Ignore),
        Some(other) => Err(errors::bad_request(format!(
            "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
        ))),
    }
}

/// Problems with the body of a create or update: unknown and duplicate fields.
pub fn problems(call: &Call<'_>, raw: &[u8], obj: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let is_json = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_json {
        for field in kite_api::schema::duplicate_fields(raw) {
            problems.push(format!("duplicate field {field:?}"));
        }
    }
    if let Some(custom) = &call.resource.custom {
        // What pruning will drop from a custom object is what Strict rejects.
        for field in kite_api::schema::unknown_fields_in_schema(&custom.schema, obj) {
            problems.push(format!("unknown field {field:?}"));
        }
    } else if !crate::strategy::is_custom(&call.resource)
        && let Some(def) = kite_api::schema::definition_name_for(
            &call.resource.group,
            &call.resource.version,
            &call.resource.kind,
        )
    {
        for field in kite_api::schema::unknown_fields(def, obj) {
            problems.push(format!("unknown field {field:?}"));
        }
    }
    problems
}

/// Applies the mode to a create or update body: Strict fails with
/// kube-apiserver's 400, otherwise the warnings (Warn) are returned. Unknown
/// fields of built-in kinds are then dropped, as decoding into kube's Go
/// types does (custom objects are pruned by their schema in the strategy).
pub fn check(call: &Call<'_>, raw: &[u8], obj: &mut Value) -> ApiResult<Vec<String>> {
    let problems = found(call, raw, obj)?;
    if mode(call)? == Mode::Strict && !problems.is_empty() {
        let kind = &call.resource.kind;
        return Err(errors::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: strict decoding error: {}",
            call.resource.version,
            problems.join(", ")
        )));
    }
    drop_unknown(call, obj, &problems)?;
    Ok(problems)
}

/// Applies the mode to the result of a JSON, merge or strategic merge patch:
/// duplicates in the patch and unknown fields in the patched object. Strict
/// fails as kube-apiserver's patch handler does, 422 Invalid on the field
/// `patch` whose value is the patched object.
pub fn check_patched(call: &Call<'_>, patch: &[u8], patched: &mut Value) -> ApiResult<Vec<String>> {
    let problems = found(call, patch, patched)?;
    if mode(call)? == Mode::Strict && !problems.is_empty() {
        let value = serde_json::to_string(patched).unwrap_or_default();
        let detail = format!("strict decoding error: {}", problems.join(", "));
        let cause = kite_api::StatusCause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value:?}: {detail}"),
            field: "patch".into(),
        };
        let status = kite_api::Status::failure(
            kite_api::StatusReason::Invalid,
            format!(" \"\" is invalid: patch: Invalid value: {value:?}: {detail}"),
        )
        .with_details(kite_api::StatusDetails {
            causes: vec![cause],
            ..Default::default()
        });
        return Err(status);
    }
    drop_unknown(call, patched, &problems)?;
    Ok(problems)
}

/// The problems Strict and Warn report; none are looked for under Ignore.
fn found(call: &Call<'_>, raw: &[u8], obj: &Value) -> ApiResult<Vec<String>> {
    Ok(match mode(call)? {
        Mode::Ignore => Vec::new(),
        Mode::Warn | Mode::Strict => problems(call, raw, obj),
    })
}

/// Prunes unknown fields; under Strict and Warn the walk already found
/// whether there are any, so a clean object is not walked twice.
fn drop_unknown(call: &Call<'_>, obj: &mut Value, problems: &[String]) -> ApiResult<()> {
    let looked = mode(call)? != Mode::Ignore;
    if call.resource.custom.is_some()
        || crate::strategy::is_custom(&call.resource)
        || (looked && !problems.iter().any(|p| p.starts_with("unknown field")))
    {
        return Ok(());
    }
    if let Some(def) = kite_api::schema::definition_name_for(
        &call.resource.group,
        &call.resource.version,
        &call.resource.kind,
    ) {
        kite_api::schema::drop_unknown_fields(def, obj);
    }
    Ok(())
}

/// Adds `Warning: 299 - "..."` headers to a response.
pub fn add_warnings<B>(mut response: Response<B>, warnings: &[String]) -> Response<B> {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}
