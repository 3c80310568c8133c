//! GET of one object.

use crate::api::Call;
use crate::body::Body;
use crate::errors::{self, ApiResult};
use crate::objects;
use crate::output;
use http::{Response, StatusCode};
use serde_json::Value;

/// Reads one object from the store (a consistent read).
pub async fn get(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.as_deref().unwrap_or_default();
    let object = read(call, name)
        .await?
        .ok_or_else(|| errors::not_found(&call.resource, name))?
        .0;
    output::object(call, StatusCode::OK, &object)
}

/// The current object (in the version the call asked for) and its revision, if it exists.
pub async fn read(call: &Call<'_>, name: &str) -> ApiResult<Option<(Value, i64)>> {
    let key = objects::key(&call.resource, call.namespace(), name);
    let (_, kv) = call
        .api
        .store
        .get(&key, 0)
        .await
        .map_err(errors::from_store)?;
    match kv {
        Some(kv) => {
            let mut object =
                objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
            crate::strategy::from_storage(&call.resource, &mut object);
            Ok(Some((object, kv.mod_revision)))
        }
        None => Ok(None),
    }
}

/// The watch cache's copy of the object at `key` and its revision, in the
/// version the call asked for: a starting point for compare-and-swap writes,
/// which may be stale (the write then fails and the caller reads the store).
pub fn cached(call: &Call<'_>, key: &str) -> Option<(Value, i64)> {
    let hint = call.api.cache(&call.resource).get(key)?;
    let mut object: Value = serde_json::from_slice(&hint.json).ok()?;
    crate::strategy::from_storage(&call.resource, &mut object);
    Some((object, hint.revision))
}
