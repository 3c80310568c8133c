//! LimitRanger admission: a namespace's LimitRanges give containers default
//! requests and limits and bound what containers and pods may ask for.

use crate::validation::quantity::Quantity;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The annotation recording which defaults were set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Sets default requests and limits on the pod's containers from the
/// `Container` items of `ranges` (LimitRange objects), and records them in
/// the `kubernetes.io/limit-ranger` annotation as Kubernetes words it.
pub fn apply_defaults(pod: &mut Value, ranges: &[Value]) {
    // Ranges stored before their defaulting rules existed get them here too.
    let ranges: Vec<Value> = ranges
        .iter()
        .map(|r| {
            let mut r = r.clone();
            crate::defaults::apply("", "LimitRange", &mut r);
            r
        })
        .collect();
    let mut defaults: Map<String, Value> = Map::new();
    let mut default_requests: Map<String, Value> = Map::new();
    for item in items(&ranges, "Container") {
        if let Some(Value::Object(d)) = item.get("default") {
            defaults.extend(d.clone());
        }
        if let Some(Value::Object(d)) = item.get("defaultRequest") {
            default_requests.extend(d.clone());
        }
    }
    if defaults.is_empty() && default_requests.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (kind, label) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{kind}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in containers {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let requests = fill(container, "requests", &default_requests);
            let limits = fill(container, "limits", &defaults);
            if !requests.is_empty() {
                notes.push(format!(
                    "{} request for {label} {name}",
                    requests.join(", ")
                ));
            }
            if !limits.is_empty() {
                notes.push(format!("{} limit for {label} {name}", limits.join(", ")));
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(
            ANNOTATION.into(),
            json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
        );
    }
}

/// Sets each missing `resources.<field>` entry from `defaults`; returns the names set.
fn fill(container: &mut Value, field: &str, defaults: &Map<String, Value>) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    let Some(container) = container.as_object_mut() else {
        return Vec::new();
    };
    let resources = container.entry("resources").or_insert_with(|| json!({}));
    let Some(resources) = resources.as_object_mut() else {
        return Vec::new();
    };
    let list = resources.entry(field).or_insert_with(|| json!({}));
    let Some(list) = list.as_object_mut() else {
        return Vec::new();
    };
    let mut set = Vec::new();
    for (name, value) in defaults {
        if !list.contains_key(name) {
            list.insert(name.clone(), value.clone());
            set.push(name.clone());
        }
    }
    set
}

fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .filter_map(|r| r.pointer("/spec/limits").and_then(Value::as_array))
        .flatten()
        .filter(move |item| item.get("type").and_then(Value::as_str) == Some(kind))
}

/// Checks the pod against the `Container` and `Pod` items' `min`, `max` and
/// `maxLimitRequestRatio`; returns Kubernetes' message for each violation.
pub fn violations(pod: &Value, ranges: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items(ranges, "Container") {
        for kind in ["initContainers", "containers"] {
            let Some(containers) = pod
                .pointer(&format!("/spec/{kind}"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for container in containers {
                let requests = resources(container.pointer("/resources/requests"));
                let limits = resources(container.pointer("/resources/limits"));
                check(item, "Container", &requests, &limits, &mut out);
            }
        }
    }
    for item in items(ranges, "Pod") {
        let (requests, limits) = pod_totals(pod);
        check(item, "Pod", &requests, &limits, &mut out);
    }
    out
}

type Resources = BTreeMap<String, Quantity>;

/// A `ResourceList` (`{"cpu": "500m", ...}`) as quantities; unparsable entries are skipped.
pub(super) fn resources(value: Option<&Value>) -> Resources {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Quantity::from_json(v).ok().map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

/// What a pod asks for in all: the sum over its containers, or the largest
/// init container if that is more.
fn pod_totals(pod: &Value) -> (Resources, Resources) {
    let mut totals = (Resources::new(), Resources::new());
    for (field, total) in [("requests", &mut totals.0), ("limits", &mut totals.1)] {
        let sum_of = |kind: &str, combine: fn(i128, i128) -> i128, into: &mut Resources| {
            for container in pod
                .pointer(&format!("/spec/{kind}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for (name, q) in resources(container.pointer(&format!("/resources/{field}"))) {
                    let merged = match into.get(&name) {
                        Some(old) => {
                            Quantity::from_nanos(combine(old.nanos(), q.nanos()), q.format())
                        }
                        None => q,
                    };
                    into.insert(name, merged);
                }
            }
        };
        sum_of("containers", |a, b| a + b, total);
        sum_of("initContainers", i128::max, total);
    }
    totals
}

fn check(
    item: &Value,
    kind: &str,
    requests: &Resources,
    limits: &Resources,
    out: &mut Vec<String>,
) {
    for (name, enforced) in resources(item.get("min")) {
        let shown = enforced.canonical();
        match (requests.get(&name), limits.get(&name)) {
            (None, _) => out.push(format!(
                "minimum {name} usage per {kind} is {shown}.  No request is specified"
            )),
            (Some(r), _) if r.nanos() < enforced.nanos() => out.push(format!(
                "minimum {name} usage per {kind} is {shown}, but request is {}",
                r.canonical()
            )),
            (_, Some(l)) if l.nanos() < enforced.nanos() => out.push(format!(
                "minimum {name} usage per {kind} is {shown}, but limit is {}",
                l.canonical()
            )),
            _ => {}
        }
    }
    for (name, enforced) in resources(item.get("max")) {
        let shown = enforced.canonical();
        match (requests.get(&name), limits.get(&name)) {
            (_, None) => out.push(format!(
                "maximum {name} usage per {kind} is {shown}.  No limit is specified"
            )),
            (_, Some(l)) if l.nanos() > enforced.nanos() => out.push(format!(
                "maximum {name} usage per {kind} is {shown}, but limit is {}",
                l.canonical()
            )),
            (Some(r), _) if r.nanos() > enforced.nanos() => out.push(format!(
                "maximum {name} usage per {kind} is {shown}, but request is {}",
                r.canonical()
            )),
            _ => {}
        }
    }
    for (name, enforced) in resources(item.get("maxLimitRequestRatio")) {
        let shown = enforced.canonical();
        let request = requests.get(&name).filter(|q| !q.is_zero());
        let limit = limits.get(&name).filter(|q| !q.is_zero());
        match (request, limit) {
            (None, _) => out.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but no request is specified or request is 0"
            )),
            (_, None) => out.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0"
            )),
            (Some(r), Some(l)) => {
                let ratio = l.nanos() as f64 / r.nanos() as f64;
                if ratio * 1e9 > enforced.nanos() as f64 {
                    out.push(format!(
                        "{name} max limit to request ratio per {kind} is {shown}, but provided ratio is {ratio:.6}"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Vec<Value> {
        vec![json!({"spec": {"limits": limits}})]
    }

    #[test]
    fn defaults_fill_what_containers_leave_out_and_are_recorded() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "web", "resources": {"limits": {"cpu": "2"}}}
        ]}});
        apply_defaults(
            &mut pod,
            &range(json!([{"type": "Container",
            "default": {"cpu": "1", "memory": "512Mi"}, "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}])),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({
                "limits": {"cpu": "2", "memory": "512Mi"},
                "requests": {"cpu": "100m", "memory": "256Mi"}
            })
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container web; memory limit for container web"
        );
    }

    #[test]
    fn min_max_and_ratio_are_enforced_with_kubernetes_wording() {
        let ranges = range(json!([{"type": "Container",
            "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "4"}}]));
        let pod = json!({"spec": {"containers": [{"name": "web", "resources": {
            "requests": {"cpu": "50m"}, "limits": {"cpu": "2"}}}]}});
        assert_eq!(violations(&pod, &ranges), vec![
            "minimum cpu usage per Container is 100m, but request is 50m".to_string(),
            "maximum cpu usage per Container is 1, but limit is 2".to_string(),
            "maximum memory usage per Container is 1Gi.  No limit is specified".to_string(),
            "cpu max limit to request ratio per Container is 4, but provided ratio is 40.000000".to_string(),
        ]);
        let fine = json!({"spec": {"containers": [{"name": "web", "resources": {
            "requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert!(violations(&fine, &ranges).is_empty());
    }

    #[test]
    fn pod_items_bound_the_sum_of_containers() {
        let ranges = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "600Mi"}}},
            {"name": "b", "resources": {"limits": {"memory": "600Mi"}}}
        ]}});
        assert_eq!(
            violations(&pod, &ranges),
            vec!["maximum memory usage per Pod is 1Gi, but limit is 1200Mi".to_string()]
        );
    }
}
