//! Core `v1` Events ↔ `events.k8s.io/v1` Events.

use serde_json::{Map, Value};

/// Fields named differently in the two APIs: (core, events.k8s.io).
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields with the same name and meaning in both.
const SHARED: &[&str] = &[
    "metadata",
    "reason",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingInstance",
];

pub(super) fn core_to_events(obj: Value) -> Value {
    rename(obj, "events.k8s.io/v1", |(core, events)| (core, events))
}

pub(super) fn events_to_core(obj: Value) -> Value {
    rename(obj, "v1", |(core, events)| (events, core))
}

fn rename(
    obj: Value,
    api_version: &str,
    direction: fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Value {
    let Value::Object(mut from) = obj else {
        return obj;
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    for field in SHARED {
        if let Some(v) = from.remove(*field) {
            out.insert((*field).to_string(), v);
        }
    }
    for pair in RENAMED {
        let (source, target) = direction(*pair);
        if let Some(v) = from.remove(source) {
            out.insert(target.to_string(), v);
        }
    }
    if api_version == "events.k8s.io/v1" {
        // A `series` count lives in `series`; core's `count` of 1 is not a series.
        if let Some(Value::Object(series)) = out.get_mut("series") {
            series
                .remove("lastObservedTime")
                .map(|t| series.insert("lastObservedTime".into(), t));
        }
    }
    Value::Object(out)
}
