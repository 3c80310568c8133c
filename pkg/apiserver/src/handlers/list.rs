//! GET of a collection: from the watch cache for `resourceVersion=0`,
//! otherwise a consistent, paginated read from the store.

use crate::api::Call;
use crate::body::{self, Body};
use crate::codec::{self, Output};
use crate::errors::{self, ApiResult};
use crate::filter::Filter;
use crate::objects;
use crate::output;
use crate::watch_cache::CachedObject;
use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use kite_api::{Status, StatusReason};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long a consistent list waits for the watch cache before reading the store.
const CONSISTENT_WAIT: Duration = Duration::from_secs(3);

/// A page of matching objects at one revision.
pub struct Page {
    /// The objects as JSON (resourceVersion included), in key order.
    pub items: Vec<Bytes>,
    /// The revision the list was read at.
    pub revision: i64,
    /// The continue token, when more remain.
    pub continue_token: Option<String>,
    /// How many objects remain after this page, when known exactly.
    pub remaining: Option<i64>,
}

/// Lists a resource.
pub async fn list(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let output = codec::negotiate(call.headers)?;
    let page = read_page(call).await?;
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining.filter(|r| *r > 0) {
        metadata["remainingItemCount"] = json!(remaining);
    }
    if output == Output::Json {
        // The common case, assembled from the objects' stored bytes without parsing them.
        return Ok(body::json(
            StatusCode::OK,
            json_list(call, &metadata, &page.items),
        ));
    }
    let items: Vec<Value> = page
        .items
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    let value = match output {
        Output::Table => {
            let mut table = output::table(call, &items, json!(page.revision.to_string()))?;
            table["metadata"] = metadata;
            table
        }
        Output::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.iter().map(output::partial).collect::<Vec<_>>(),
        }),
        Output::Json | Output::Yaml => json!({
            "kind": format!("{}List", call.resource.kind),
            "apiVersion": call.resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    };
    Ok(codec::respond(StatusCode::OK, output, &value))
}

/// `{"kind":"XList","apiVersion":...,"metadata":...,"items":[...]}` from raw item bytes.
fn json_list(call: &Call<'_>, metadata: &Value, items: &[Bytes]) -> Vec<u8> {
    let size: usize = items.iter().map(|i| i.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(b"{\"kind\":");
    out.extend_from_slice(
        &serde_json::to_vec(&format!("{}List", call.resource.kind)).unwrap_or_default(),
    );
    out.extend_from_slice(b",\"apiVersion\":");
    out.extend_from_slice(&serde_json::to_vec(&call.resource.api_version()).unwrap_or_default());
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(&serde_json::to_vec(metadata).unwrap_or_default());
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The list parameters and the page they select.
pub async fn read_page(call: &Call<'_>) -> ApiResult<Page> {
    let filter = Filter::new(
        &call.resource,
        call.namespace(),
        call.param("labelSelector").as_deref(),
        call.param("fieldSelector").as_deref(),
    )?;
    let limit = match call.param("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| errors::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        _ => 0,
    };
    let resource_version = call.param("resourceVersion").unwrap_or_default();
    let continue_token = call.param("continue").filter(|c| !c.is_empty());
    let match_rule = call.param("resourceVersionMatch").unwrap_or_default();
    if !match_rule.is_empty() && !matches!(match_rule.as_str(), "Exact" | "NotOlderThan") {
        return Err(errors::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {match_rule:?}: supported values: \"Exact\", \"NotOlderThan\""
        )));
    }
    if !match_rule.is_empty() && resource_version.is_empty() {
        return Err(errors::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if continue_token.is_some() && !resource_version.is_empty() && resource_version != "0" {
        return Err(errors::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let prefix = objects::prefix(&call.resource, call.namespace());

    // resourceVersion=0 (or NotOlderThan): any recent state will do, served from memory.
    let from_cache = continue_token.is_none()
        && (resource_version == "0"
            || (match_rule == "NotOlderThan" && !resource_version.is_empty()));
    if from_cache {
        let cache = call.cache();
        cache.wait_ready().await;
        let (objects, revision) = cache.list(&prefix);
        let items = objects
            .iter()
            .filter(|o| filter.matches_cached(o))
            .map(|o| crate::strategy::serve_bytes(&call.resource, &o.json))
            .collect();
        return Ok(Page {
            items,
            revision: revision.max(1),
            continue_token: None,
            remaining: None,
        });
    }

    // A consistent read (no resourceVersion) is served from the cache too, once the
    // cache has applied the newest write under the prefix (kube-apiserver's
    // consistent reads from cache). Later pages read the store at the same revision.
    if continue_token.is_none() && resource_version.is_empty() {
        let cache = call.cache();
        cache.wait_ready().await;
        let (current, latest) = call
            .api
            .store
            .latest_revision(&prefix)
            .await
            .map_err(errors::from_store)?;
        if cache.wait_for_revision(latest, CONSISTENT_WAIT).await {
            let (objects, cache_revision) = cache.list(&prefix);
            let revision = current.max(cache_revision).max(1);
            let matching: Vec<&Arc<CachedObject>> = objects
                .iter()
                .filter(|o| filter.matches_cached(o))
                .collect();
            let take = if limit == 0 {
                matching.len()
            } else {
                limit.min(matching.len())
            };
            let more = take < matching.len();
            let continue_token = match (more, take.checked_sub(1).and_then(|i| matching.get(i))) {
                (true, Some(last)) => Some(encode_continue(revision, &last.key)),
                _ => None,
            };
            let remaining =
                (more && filter.is_namespace_only()).then(|| (matching.len() - take) as i64);
            let items = matching[..take]
                .iter()
                .map(|o| crate::strategy::serve_bytes(&call.resource, &o.json))
                .collect();
            return Ok(Page {
                items,
                revision,
                continue_token,
                remaining,
            });
        }
    }

    let (mut revision, mut start_after) = match &continue_token {
        Some(token) => decode_continue(token)?,
        None => {
            let rv = if resource_version.is_empty() {
                0
            } else {
                resource_version.parse::<i64>().map_err(|_| {
                    errors::bad_request(format!("invalid resource version {resource_version:?}"))
                })?
            };
            (rv, None)
        }
    };
    let mut items = Vec::new();
    loop {
        let want = if limit == 0 { 0 } else { limit - items.len() };
        let result = call
            .api
            .store
            .list(&prefix, start_after.as_deref(), want, revision)
            .await
            .map_err(|e| match e {
                kite_store::Error::Compacted { .. } if continue_token.is_some() => Status::failure(
                    StatusReason::Expired,
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => errors::from_store(other),
            })?;
        revision = result.revision;
        let examined = result.kvs.len() as i64;
        for kv in &result.kvs {
            if !filter.is_namespace_only() {
                let obj = objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
                if !filter.matches(&obj) {
                    continue;
                }
            }
            let item = objects::with_resource_version(&kv.value, kv.mod_revision)
                .map_err(errors::internal)?;
            items.push(crate::strategy::serve_bytes(&call.resource, &item));
        }
        start_after = result.kvs.last().map(|kv| kv.key.clone());
        let full = limit != 0 && items.len() >= limit;
        if !result.more || full {
            let more = result.more;
            let remaining = (filter.is_namespace_only() && more).then(|| result.count - examined);
            let token = match (more, &start_after) {
                (true, Some(last)) => Some(encode_continue(revision, last)),
                _ => None,
            };
            return Ok(Page {
                items,
                revision,
                continue_token: token,
                remaining,
            });
        }
    }
}

/// Continue tokens as kube-apiserver makes them: base64 of the list revision and the last key.
fn encode_continue(revision: i64, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, Option<String>)> {
    let bad = || {
        errors::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let revision = value
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let start = value.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((revision, Some(start.trim_end_matches('\u{0}').to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "/registry/core/configmaps/default/c1");
        assert_eq!(
            decode_continue(&token).expect("decode"),
            (42, Some("/registry/core/configmaps/default/c1".into()))
        );
        assert_eq!(decode_continue("garbage!").map_err(|s| s.code), Err(400));
    }
}
