//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386) via the json-patch crate.

use super::{PatchError, Result};
use serde_json::Value;

/// kube-apiserver's limit on operations in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 patch. An undecodable body is 400; an operation that
/// fails (a `test` mismatch, a missing path) is 422, as kube-apiserver answers.
pub fn apply_json_patch(current: &Value, body: &[u8]) -> Result<Value> {
    let patch: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    if patch.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: patch.0.len(),
            max: MAX_JSON_PATCH_OPERATIONS,
        });
    }
    let mut doc = current.clone();
    json_patch::patch(&mut doc, &patch).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    Ok(doc)
}

/// Applies an RFC 7386 merge patch. A body that is not JSON, or is `null`,
/// is 400 `Invalid JSON Patch`; a non-object patch replaces the document.
pub fn apply_merge_patch(current: &Value, body: &[u8]) -> Result<Value> {
    let patch: Value = serde_json::from_slice(body).map_err(|_| bad_merge_patch())?;
    if patch.is_null() {
        return Err(bad_merge_patch());
    }
    let mut doc = current.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

fn bad_merge_patch() -> PatchError {
    PatchError::BadRequest("Invalid JSON Patch".into())
}
