//! PATCH: JSON patch, merge patch and strategic merge patch.

use crate::api::Call;
use crate::body::Body;
use crate::errors::{self, ApiResult};
use crate::handlers::update::{requested_revision, write};
use crate::output;
use http::{Response, header};
use kite_api::{Status, StatusReason};
use serde_json::Value;

/// Applies the patch in the body to the object named in the path.
pub async fn patch(call: &Call<'_>, subresource: Option<&str>) -> ApiResult<Response<Body>> {
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let name = call.request.name.clone().unwrap_or_default();
    let patch: Value = serde_json::from_slice(&call.body)
        .map_err(|e| errors::bad_request(format!("error decoding patch: {e}")))?;
    let precondition = match &patch {
        Value::Object(_) => requested_revision(&patch)?,
        _ => None,
    };
    let apply = |old: &Value| -> ApiResult<Value> {
        match content_type.as_str() {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let mut doc = old.clone();
                json_patch::merge(&mut doc, &patch);
                Ok(doc)
            }
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| errors::bad_request(format!("error decoding patch: {e}")))?;
                let mut doc = old.clone();
                json_patch::patch(&mut doc, &ops).map_err(|e| {
                    Status::failure(StatusReason::Invalid, format!("the server rejected our request due to an error in our request: {e}"))
                })?;
                Ok(doc)
            }
            other => Err(Status::failure(
                StatusReason::UnsupportedMediaType,
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"),
            )),
        }
    };
    let (object, code) = write(call, &name, subresource, precondition, apply).await?;
    output::object(call, code, &object)
}
