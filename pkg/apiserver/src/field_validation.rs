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

/// Applies the mode: Strict fails with kube-apiserver's 400, Warn returns the warnings.
pub fn check(call: &Call<'_>, raw: &[u8], obj: &Value) -> ApiResult<Vec<String>> {
    let mode = mode(call)?;
    if mode == Mode::Ignore {
        return Ok(Vec::new());
    }
    let problems = problems(call, raw, obj);
    if problems.is_empty() {
        return Ok(Vec::new());
    }
    if mode == Mode::Strict {
        let kind = &call.resource.kind;
        return Err(errors::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: strict decoding error: {}",
            call.resource.version,
            problems.join(", ")
        )));
    }
    Ok(problems)
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
