//! Kinds served in more than one shape share one storage: objects are kept
//! in a storage version and converted on the way in and out, as
//! kube-apiserver does.
//!
//! - `events.k8s.io/v1` Events are core `v1` Events seen differently
//!   (`regarding` is `involvedObject`, `note` is `message`...): both APIs
//!   list the same objects ([`events`]).
//! - `autoscaling/v1` HorizontalPodAutoscalers are `autoscaling/v2` ones with
//!   only the CPU target as a field; everything else travels in annotations
//!   ([`autoscaling`]).

mod autoscaling;
mod events;

use serde_json::Value;

/// Where a resource's objects are stored, when another API shares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storage {
    /// The storage group (`""` for core).
    pub group: &'static str,
    /// The storage resource (plural).
    pub plural: &'static str,
    /// The `apiVersion` objects are stored at.
    pub api_version: &'static str,
    /// The stored `kind`.
    pub kind: &'static str,
}

/// The shared storage of `group`/`plural`, if it has one.
pub fn storage(group: &str, plural: &str) -> Option<Storage> {
    match (group, plural) {
        ("" | "events.k8s.io", "events") => Some(Storage {
            group: "",
            plural: "events",
            api_version: "v1",
            kind: "Event",
        }),
        ("autoscaling", "horizontalpodautoscalers") => Some(Storage {
            group: "autoscaling",
            plural: "horizontalpodautoscalers",
            api_version: "autoscaling/v2",
            kind: "HorizontalPodAutoscaler",
        }),
        _ => None,
    }
}

/// `obj` at `api_version`: converted when it is one of the shared kinds at
/// another version, returned unchanged otherwise.
pub fn convert(obj: Value, api_version: &str) -> Value {
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if from == api_version {
        return obj;
    }
    match (from, api_version) {
        ("v1", "events.k8s.io/v1") => events::core_to_events(obj),
        ("events.k8s.io/v1", "v1") => events::events_to_core(obj),
        ("autoscaling/v2", "autoscaling/v1") => autoscaling::v2_to_v1(obj),
        ("autoscaling/v1", "autoscaling/v2") => autoscaling::v1_to_v2(obj),
        _ => obj,
    }
}

/// The storage form of an object about to be written.
pub fn to_storage(obj: &Value) -> Option<Value> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str)?;
    let (group, _) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match obj.get("kind").and_then(Value::as_str)? {
        "Event" => "events",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        _ => return None,
    };
    let storage = storage(group, plural)?;
    (storage.api_version != api_version).then(|| convert(obj.clone(), storage.api_version))
}

#[cfg(test)]
mod tests;
