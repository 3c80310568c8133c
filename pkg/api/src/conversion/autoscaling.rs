//! `autoscaling/v2` ↔ `autoscaling/v1` HorizontalPodAutoscalers.
//!
//! v1 has one metric, a CPU utilisation target, as a field. The rest of a v2
//! object (other metrics, behaviour, conditions, current metrics) travels in
//! `autoscaling.alpha.kubernetes.io/*` annotations, so a v2 object read and
//! written back through v1 keeps it.

use serde_json::{Map, Value, json};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

fn is_cpu_utilization(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && metric
            .pointer("/resource/target/type")
            .and_then(Value::as_str)
            == Some("Utilization")
}

fn annotations(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    meta.entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn set_annotation(obj: &mut Value, key: &str, value: &Value) {
    if let Some(map) = annotations(obj) {
        map.insert(key.into(), Value::String(value.to_string()));
    }
}

fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let map = annotations(obj)?;
    let text = map.remove(key)?;
    serde_json::from_str(text.as_str()?).ok()
}

fn drop_empty_annotations(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

pub(super) fn v2_to_v1(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v1");
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut v1_spec = Map::new();
    for field in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(field) {
            v1_spec.insert(field.into(), v.clone());
        }
    }
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_utilization(m))
        && let Some(target) = cpu.pointer("/resource/target/averageUtilization")
    {
        v1_spec.insert("targetCPUUtilizationPercentage".into(), target.clone());
    }
    let others: Vec<Value> = metrics
        .into_iter()
        .filter(|m| !is_cpu_utilization(m))
        .collect();
    if !others.is_empty() {
        set_annotation(&mut obj, METRICS, &Value::Array(others));
    }
    if let Some(behavior) = spec.get("behavior") {
        set_annotation(&mut obj, BEHAVIOR, behavior);
    }

    let status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut v1_status = Map::new();
    for field in [
        "observedGeneration",
        "lastScaleTime",
        "currentReplicas",
        "desiredReplicas",
    ] {
        if let Some(v) = status.get(field) {
            v1_status.insert(field.into(), v.clone());
        }
    }
    let current = status
        .get("currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(cpu) = current.iter().find(|m| {
        m.get("type").and_then(Value::as_str) == Some("Resource")
            && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
    }) && let Some(value) = cpu.pointer("/resource/current/averageUtilization")
    {
        v1_status.insert("currentCPUUtilizationPercentage".into(), value.clone());
    }
    if !current.is_empty() {
        set_annotation(&mut obj, CURRENT_METRICS, &Value::Array(current));
    }
    if let Some(conditions) = status
        .get("conditions")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        set_annotation(&mut obj, CONDITIONS, conditions);
    }
    obj["spec"] = Value::Object(v1_spec);
    if v1_status.is_empty() && obj.get("status").is_none() {
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    } else {
        // v1 always carries both replica counts (Go int32 fields without omitempty).
        for field in ["currentReplicas", "desiredReplicas"] {
            v1_status.entry(field).or_insert(json!(0));
        }
        obj["status"] = Value::Object(v1_status);
    }
    obj
}

pub(super) fn v1_to_v2(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v2");
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut v2_spec = Map::new();
    for field in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(field) {
            v2_spec.insert(field.into(), v.clone());
        }
    }
    let mut metrics = Vec::new();
    if let Some(target) = spec.get("targetCPUUtilizationPercentage") {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target}}}));
    }
    if let Some(Value::Array(others)) = take_annotation(&mut obj, METRICS) {
        metrics.extend(others);
    }
    if !metrics.is_empty() {
        v2_spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(behavior) = take_annotation(&mut obj, BEHAVIOR) {
        v2_spec.insert("behavior".into(), behavior);
    }

    let status = obj.get("status").cloned();
    let mut v2_status = Map::new();
    if let Some(status) = &status {
        for field in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(v) = status.get(field) {
                v2_status.insert(field.into(), v.clone());
            }
        }
    }
    match take_annotation(&mut obj, CURRENT_METRICS) {
        Some(current) => {
            v2_status.insert("currentMetrics".into(), current);
        }
        None => {
            if let Some(cpu) = status
                .as_ref()
                .and_then(|s| s.get("currentCPUUtilizationPercentage"))
            {
                v2_status.insert(
                    "currentMetrics".into(),
                    json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
                );
            }
        }
    }
    if let Some(conditions) = take_annotation(&mut obj, CONDITIONS) {
        v2_status.insert("conditions".into(), conditions);
    }
    drop_empty_annotations(&mut obj);
    obj["spec"] = Value::Object(v2_spec);
    if status.is_some() || !v2_status.is_empty() {
        obj["status"] = Value::Object(v2_status);
    }
    obj
}
