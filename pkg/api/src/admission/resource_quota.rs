//! ResourceQuota: what an object charges against its namespace's quotas, and
//! the decision kube-apiserver's `ResourceQuota` admission plugin makes.
//!
//! Each kind has an *evaluator*, as in Kubernetes: pods charge `pods`, compute
//! requests and limits (`requests.cpu`, `limits.memory`, ...); services
//! `services`, `services.nodeports` and `services.loadbalancers`;
//! PersistentVolumeClaims `persistentvolumeclaims` and `requests.storage`;
//! every kind its object count `count/<resource>[.<group>]` (and the legacy
//! name for ConfigMaps, Secrets, ReplicationControllers and ResourceQuotas).
//! The quota controller sums [`usage`] over a namespace's objects
//! ([`calculate_usage`]); admission adds one object's usage to a quota's
//! `status.used` and refuses what goes over `status.hard` ([`admit`]).

use crate::validation::quantity::{Quantity, QuantityFormat};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Resource names and amounts, in name order (how Kubernetes prints them).
pub type ResourceList = BTreeMap<String, Quantity>;

/// What pods charge (besides hugepages and extended resources).
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// Compute resources a pod's every container must state when a quota limits
/// them (a Kubernetes compatibility rule kept for these six only).
const MUST_SPECIFY: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];

const CLAIM_RESOURCES: &[&str] = &[
    "count/persistentvolumeclaims",
    "persistentvolumeclaims",
    "requests.storage",
];

/// The per-StorageClass resource names end in these.
const CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Kinds whose object count also has a legacy name without `count/`.
const LEGACY_COUNTS: &[&str] = &[
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Evaluator {
    Pods,
    Services,
    Claims,
    Count,
}

fn evaluator(group: &str, plural: &str) -> Evaluator {
    match (group, plural) {
        ("", "pods") => Evaluator::Pods,
        ("", "services") => Evaluator::Services,
        ("", "persistentvolumeclaims") => Evaluator::Claims,
        _ => Evaluator::Count,
    }
}

/// The object-count name of a kind: `count/configmaps`, `count/deployments.apps`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

fn one() -> Quantity {
    Quantity::from_nanos(1_000_000_000, QuantityFormat::DecimalSi)
}

fn zero() -> Quantity {
    Quantity::from_nanos(0, QuantityFormat::DecimalSi)
}

/// `a + b` as Kubernetes adds quantities: a zero takes the other's format.
fn sum(a: Quantity, b: Quantity) -> Quantity {
    let format = if a.is_zero() { b.format() } else { a.format() };
    Quantity::from_nanos(a.nanos() + b.nanos(), format)
}

/// Adds `b` into `a`, name by name.
pub fn add(a: &mut ResourceList, b: &ResourceList) {
    for (name, q) in b {
        let merged = match a.get(name) {
            Some(old) => sum(*old, *q),
            None => *q,
        };
        a.insert(name.clone(), merged);
    }
}

/// Whether `name` is an extended resource a quota can limit (`requests.example.com/gpu`).
fn is_extended_request(name: &str) -> bool {
    name.strip_prefix("requests.").is_some_and(is_extended)
}

/// Not a native resource: has a domain, and the domain is not kubernetes.io's.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// The names among `names` that objects of this kind charge.
pub fn matching_resources(group: &str, plural: &str, names: &[String]) -> Vec<String> {
    let count = count_name(group, plural);
    names
        .iter()
        .filter(|name| match evaluator(group, plural) {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name.as_str())
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || is_extended_request(name)
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(&name.as_str()),
            Evaluator::Claims => {
                CLAIM_RESOURCES.contains(&name.as_str())
                    || name.split_once(CLASS_SUFFIX).is_some_and(|(_, r)| {
                        r == "requests.storage" || r == "persistentvolumeclaims"
                    })
            }
            Evaluator::Count => {
                **name == count
                    || (group.is_empty()
                        && LEGACY_COUNTS.contains(&plural)
                        && name.as_str() == plural)
            }
        })
        .cloned()
        .collect()
}

/// The kind (group, plural) whose objects a quota's resource name counts,
/// if it names one.
pub fn counted_kind(name: &str) -> Option<(String, String)> {
    let core = |plural: &str| Some((String::new(), plural.to_string()));
    if let Some(counted) = name.strip_prefix("count/") {
        return match counted.split_once('.') {
            Some((plural, group)) => Some((group.to_string(), plural.to_string())),
            None => core(counted),
        };
    }
    if LEGACY_COUNTS.contains(&name) {
        return core(name);
    }
    let names = [name.to_string()];
    for plural in ["pods", "services", "persistentvolumeclaims"] {
        if !matching_resources("", plural, &names).is_empty() {
            return core(plural);
        }
    }
    None
}

fn containers<'a>(pod: &'a Value, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
    pod.pointer(&format!("/spec/{kind}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The pod's effective requests or limits (`field`): the sum over its
/// containers and sidecars (init containers that keep running), or what the
/// largest one-off init container needs if that is more, plus the overhead.
fn pod_total(pod: &Value, field: &str) -> ResourceList {
    let mut total = ResourceList::new();
    for c in containers(pod, "containers") {
        add(
            &mut total,
            &super::limit_range::resources(c.pointer(&format!("/resources/{field}"))),
        );
    }
    let mut sidecars = ResourceList::new();
    for c in containers(pod, "initContainers") {
        let own = super::limit_range::resources(c.pointer(&format!("/resources/{field}")));
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            continue;
        }
        // A one-off init container runs beside the sidecars started before it.
        let mut need = sidecars.clone();
        add(&mut need, &own);
        for (name, q) in need {
            if total.get(&name).is_none_or(|t| q.nanos() > t.nanos()) {
                total.insert(name, q);
            }
        }
    }
    let overhead = super::limit_range::resources(pod.pointer("/spec/overhead"));
    if !overhead.is_empty() {
        // Overhead only adds to what the containers state.
        for (name, q) in overhead {
            if let Some(t) = total.get_mut(&name) {
                *t = sum(*t, q);
            } else if field == "requests" {
                total.insert(name, q);
            }
        }
    }
    total
}

/// The compute part of a pod's charge, from its (or one container's) requests and limits.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), one());
    for base in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(base) {
            out.insert(base.into(), *q);
            out.insert(format!("requests.{base}"), *q);
        }
        if let Some(q) = limits.get(base) {
            out.insert(format!("limits.{base}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *q);
            out.insert(format!("requests.{name}"), *q);
        } else if is_extended(name) {
            out.insert(format!("requests.{name}"), *q);
        }
    }
    out
}

/// Whether a pod is still charged for compute: not finished, not being deleted.
pub fn pod_is_active(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    !matches!(phase, Some("Succeeded" | "Failed"))
        && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// What one object of the kind charges, for every resource its evaluator knows.
pub fn usage(group: &str, plural: &str, obj: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(count_name(group, plural), one());
    match evaluator(group, plural) {
        Evaluator::Pods => {
            // count/pods counts every stored pod; the rest only live ones.
            if pod_is_active(obj) {
                let requests = pod_total(obj, "requests");
                let limits = pod_total(obj, "limits");
                add(&mut out, &compute_usage(&requests, &limits));
            }
        }
        Evaluator::Services => {
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let count = |n: usize| {
                Quantity::from_nanos(n as i128 * 1_000_000_000, QuantityFormat::DecimalSi)
            };
            out.insert("services".into(), one());
            let (node_ports, balancers) = match obj.pointer("/spec/type").and_then(Value::as_str) {
                Some("NodePort") => (count(ports.len()), zero()),
                Some("LoadBalancer") => {
                    let allocate = obj
                        .pointer("/spec/allocateLoadBalancerNodePorts")
                        .and_then(Value::as_bool)
                        != Some(false);
                    let n = if allocate {
                        ports.len()
                    } else {
                        ports
                            .iter()
                            .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                            .count()
                    };
                    (count(n), one())
                }
                _ => (zero(), zero()),
            };
            out.insert("services.nodeports".into(), node_ports);
            out.insert("services.loadbalancers".into(), balancers);
        }
        Evaluator::Claims => {
            out.insert("persistentvolumeclaims".into(), one());
            let class = obj
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .or_else(|| {
                    obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                        .and_then(Value::as_str)
                })
                .filter(|c| !c.is_empty());
            if let Some(class) = class {
                out.insert(
                    format!("{class}{CLASS_SUFFIX}persistentvolumeclaims"),
                    one(),
                );
            }
            let requested = super::limit_range::resources(obj.pointer("/spec/resources/requests"));
            let allocated =
                super::limit_range::resources(obj.pointer("/status/allocatedResources"));
            let storage = match (requested.get("storage"), allocated.get("storage")) {
                (Some(r), Some(a)) => Some(if a.nanos() > r.nanos() { *a } else { *r }),
                (r, a) => r.or(a).copied(),
            };
            if let Some(storage) = storage {
                out.insert("requests.storage".into(), storage);
                if let Some(class) = class {
                    out.insert(format!("{class}{CLASS_SUFFIX}requests.storage"), storage);
                }
            }
        }
        Evaluator::Count => {
            if group.is_empty() && LEGACY_COUNTS.contains(&plural) {
                out.insert(plural.to_string(), one());
            }
        }
    }
    out
}

/// A quota's scope selectors: `spec.scopes` (as `Exists`) and `spec.scopeSelector`.
fn scope_selectors(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.push((text("scopeName"), text("operator"), values));
    }
    out
}

/// Whether the pod is BestEffort: no container requests or limits cpu or memory.
fn is_best_effort(pod: &Value) -> bool {
    containers(pod, "containers")
        .chain(containers(pod, "initContainers"))
        .all(|c| {
            ["requests", "limits"].iter().all(|field| {
                let list = super::limit_range::resources(c.pointer(&format!("/resources/{field}")));
                ["cpu", "memory"]
                    .iter()
                    .all(|r| list.get(*r).is_none_or(|q| q.nanos() <= 0))
            })
        })
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(affinity) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = affinity
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let preferred = affinity
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"));
        required.chain(preferred).any(|term| {
            term.get("namespaces")
                .and_then(Value::as_array)
                .is_some_and(|n| !n.is_empty())
                || term.get("namespaceSelector").is_some_and(|s| !s.is_null())
        })
    })
}

fn pod_matches_scope(pod: &Value, scope: &str, operator: &str, values: &[String]) -> bool {
    match scope {
        "Terminating" => terminating(pod),
        "NotTerminating" => !terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match operator {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || values.iter().all(|v| v != class),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

/// Whether the object falls in every scope of the quota; only pods have
/// scopes, so other kinds match scoped quotas never and unscoped ones always.
pub fn matches_scopes(group: &str, plural: &str, quota: &Value, obj: &Value) -> bool {
    let selectors = scope_selectors(quota);
    if selectors.is_empty() {
        return true;
    }
    evaluator(group, plural) == Evaluator::Pods
        && selectors
            .iter()
            .all(|(scope, op, values)| pod_matches_scope(obj, scope, op, values))
}

fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// What the quota's controller counts for one kind: the usage of `objects`
/// (the namespace's objects of that kind) summed over the resources in
/// `spec.hard` the kind charges, each starting at zero.
pub fn calculate_usage(
    quota: &Value,
    group: &str,
    plural: &str,
    objects: &[Value],
) -> ResourceList {
    let hard = names(quota.pointer("/spec/hard"));
    let matched = matching_resources(group, plural, &hard);
    let mut out: ResourceList = matched.iter().map(|n| (n.clone(), zero())).collect();
    if matched.is_empty() {
        return out;
    }
    for obj in objects {
        if !matches_scopes(group, plural, quota, obj) {
            continue;
        }
        let charge: ResourceList = usage(group, plural, obj)
            .into_iter()
            .filter(|(n, _)| matched.contains(n))
            .collect();
        add(&mut out, &charge);
    }
    out
}

/// `name=value` pairs in name order, comma-separated, as kube prints them in errors.
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={}", v.canonical()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A resource list as JSON (canonical quantities).
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.canonical())))
            .collect::<Map<_, _>>(),
    )
}

/// The pod's containers that leave out a compute resource the quota limits;
/// kube's "must specify" message, if any do.
fn missing_compute(pod: &Value, restricted: &[String]) -> Option<String> {
    let required: BTreeSet<&str> = restricted
        .iter()
        .map(String::as_str)
        .filter(|n| MUST_SPECIFY.contains(n))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let stated = compute_usage(
            &super::limit_range::resources(c.pointer("/resources/requests")),
            &super::limit_range::resources(c.pointer("/resources/limits")),
        );
        for r in &required {
            if !stated.contains_key(*r) {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                missing.entry(r).or_default().insert(name.to_string());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Whether admission weighs this operation for the kind: creates always;
/// updates of services (their type may change) and claims (they may grow).
pub fn handles(group: &str, plural: &str, update: bool) -> bool {
    !update
        || matches!(
            evaluator(group, plural),
            Evaluator::Services | Evaluator::Claims
        )
}

/// A quota's name, for messages.
fn quota_name(quota: &Value) -> &str {
    quota
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Admission of `obj` (replacing `old` on an update) against the namespace's
/// `quotas`. Returns the index and new `status.used` of every quota the object
/// is charged to, or kube-apiserver's reason for refusing it (the caller
/// wraps it as 403 Forbidden). Hard limits and usage come from the quotas'
/// status, as kube reads them.
pub fn admit(
    quotas: &[Value],
    group: &str,
    plural: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Vec<(usize, ResourceList)>, String> {
    let mut interesting = Vec::new();
    for (i, quota) in quotas.iter().enumerate() {
        let hard = names(quota.pointer("/status/hard"));
        let restricted = matching_resources(group, plural, &hard);
        if restricted.is_empty() || !matches_scopes(group, plural, quota, obj) {
            continue;
        }
        let name = quota_name(quota);
        if evaluator(group, plural) == Evaluator::Pods
            && let Some(why) = missing_compute(obj, &restricted)
        {
            return Err(format!("failed quota: {name}: {why}"));
        }
        let used = quota.pointer("/status/used").and_then(Value::as_object);
        if !restricted
            .iter()
            .all(|r| used.is_some_and(|u| u.contains_key(r)))
        {
            let mut sorted = restricted.clone();
            sorted.sort();
            return Err(format!(
                "status unknown for quota: {name}, resources: {}",
                sorted.join(",")
            ));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let input = usage(group, plural, obj);
    let negative: Vec<&str> = input
        .iter()
        .filter(|(_, q)| q.is_negative())
        .map(|(n, _)| n.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        ));
    }
    // An update is charged only what it adds (a replaced object that never
    // was stored is charged in full).
    let previous = old
        .filter(|o| {
            o.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|rv| !rv.is_empty())
        })
        .map(|o| (o, usage(group, plural, o)));
    let mut out = Vec::new();
    for i in interesting {
        let quota = &quotas[i];
        let mut delta = input.clone();
        if let Some((old, prev)) = &previous
            && matches_scopes(group, plural, quota, old)
        {
            {
                delta = input
                    .iter()
                    .map(|(n, q)| {
                        let before = prev.get(n).map_or(0, Quantity::nanos);
                        let grown = (q.nanos() - before).max(0);
                        (n.clone(), Quantity::from_nanos(grown, q.format()))
                    })
                    .collect();
            }
        }
        let hard = super::limit_range::resources(quota.pointer("/status/hard"));
        let requested: ResourceList = delta
            .into_iter()
            .filter(|(n, q)| !q.is_zero() && hard.contains_key(n))
            .collect();
        if requested.is_empty() {
            continue;
        }
        let used = super::limit_range::resources(quota.pointer("/status/used"));
        let mut new_used = used.clone();
        add(&mut new_used, &requested);
        let exceeded: Vec<&String> = requested
            .keys()
            .filter(|n| {
                let (Some(now), Some(limit)) = (new_used.get(*n), hard.get(*n)) else {
                    return false;
                };
                now.nanos() > limit.nanos()
            })
            .collect();
        if !exceeded.is_empty() {
            let mask = |list: &ResourceList| -> ResourceList {
                list.iter()
                    .filter(|(n, _)| exceeded.contains(n))
                    .map(|(n, q)| (n.clone(), *q))
                    .collect()
            };
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quota_name(quota),
                pretty_print(&mask(&requested)),
                pretty_print(&mask(&used)),
                pretty_print(&mask(&hard)),
            ));
        }
        out.push((i, new_used));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    fn quota(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "q1"}, "spec": {"hard": hard.clone()},
               "status": {"hard": hard, "used": used}})
    }

    fn shown(list: &ResourceList) -> Value {
        to_json(list)
    }

    #[test]
    fn pods_charge_their_requests_limits_and_one_pod() {
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}
        ]));
        assert_eq!(
            shown(&usage("", "pods", &p)),
            json!({"count/pods": "1", "pods": "1", "cpu": "500m", "requests.cpu": "500m",
                   "limits.cpu": "1", "memory": "1Gi", "requests.memory": "1Gi"})
        );
    }

    #[test]
    fn finished_or_deleted_pods_only_count_as_objects() {
        let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(shown(&usage("", "pods", &p)), json!({"count/pods": "1"}));
        p["status"] = json!({"phase": "Running"});
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(shown(&usage("", "pods", &p)), json!({"count/pods": "1"}));
    }

    #[test]
    fn init_containers_count_when_larger_than_the_sum() {
        let p = json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}});
        assert_eq!(usage("", "pods", &p)["requests.cpu"].canonical(), "2");
    }

    #[test]
    fn services_count_node_ports_and_load_balancers() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            shown(&usage("", "services", &svc)),
            json!({"count/services": "1", "services": "1", "services.nodeports": "2",
                   "services.loadbalancers": "1"})
        );
    }

    #[test]
    fn object_counts_have_group_qualified_and_legacy_names() {
        assert_eq!(
            shown(&usage("", "configmaps", &json!({}))),
            json!({"count/configmaps": "1", "configmaps": "1"})
        );
        assert_eq!(
            shown(&usage("apps", "deployments", &json!({}))),
            json!({"count/deployments.apps": "1"})
        );
        assert_eq!(
            counted_kind("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            counted_kind("requests.cpu"),
            Some((String::new(), "pods".into()))
        );
        assert_eq!(
            counted_kind("requests.storage"),
            Some((String::new(), "persistentvolumeclaims".into()))
        );
        assert_eq!(
            counted_kind("secrets"),
            Some((String::new(), "secrets".into()))
        );
        assert_eq!(
            counted_kind("services.nodeports"),
            Some((String::new(), "services".into()))
        );
    }

    #[test]
    fn the_controller_sums_only_what_the_quota_names() {
        let q = json!({"spec": {"hard": {"pods": "5", "requests.cpu": "2", "configmaps": "3"}}});
        let pods = vec![
            pod(json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}])),
            pod(json!([{"name": "a", "resources": {"requests": {"cpu": "400m"}}}])),
        ];
        assert_eq!(
            shown(&calculate_usage(&q, "", "pods", &pods)),
            json!({"pods": "2", "requests.cpu": "500m"})
        );
        assert_eq!(
            shown(&calculate_usage(&q, "", "configmaps", &[])),
            json!({"configmaps": "0"})
        );
        assert_eq!(
            shown(&calculate_usage(&q, "", "secrets", &[json!({})])),
            json!({})
        );
    }

    #[test]
    fn scopes_select_pods() {
        let q = json!({"spec": {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}});
        let best = pod(json!([{"name": "a"}]));
        let burst = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        assert!(matches_scopes("", "pods", &q, &best));
        assert!(!matches_scopes("", "pods", &q, &burst));
        assert!(!matches_scopes("", "configmaps", &q, &json!({})));
        let t = json!({"spec": {"scopes": ["Terminating"]}});
        let mut job = best.clone();
        job["spec"]["activeDeadlineSeconds"] = json!(30);
        assert!(matches_scopes("", "pods", &t, &job));
        assert!(!matches_scopes("", "pods", &t, &best));
    }

    #[test]
    fn admission_refuses_what_goes_over_with_kubes_message() {
        let quotas = [quota(json!({"pods": "2"}), json!({"pods": "2"}))];
        let p = pod(json!([{"name": "a"}]));
        assert_eq!(
            admit(&quotas, "", "pods", &p, None),
            Err("exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2".into())
        );
        let quotas = [quota(json!({"pods": "2"}), json!({"pods": "1"}))];
        let ok = admit(&quotas, "", "pods", &p, None).expect("fits");
        assert_eq!(ok.len(), 1);
        assert_eq!(shown(&ok[0].1), json!({"pods": "2"}));
    }

    #[test]
    fn admission_names_only_the_exceeded_resources() {
        let quotas = [quota(
            json!({"pods": "10", "requests.cpu": "1"}),
            json!({"pods": "1", "requests.cpu": "800m"}),
        )];
        let p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]));
        assert_eq!(
            admit(&quotas, "", "pods", &p, None),
            Err("exceeded quota: q1, requested: requests.cpu=500m, used: requests.cpu=800m, limited: requests.cpu=1".into())
        );
    }

    #[test]
    fn compute_quotas_need_every_container_to_state_the_resource() {
        let quotas = [quota(
            json!({"requests.cpu": "1", "limits.memory": "1Gi"}),
            json!({"requests.cpu": "0", "limits.memory": "0"}),
        )];
        let p = pod(json!([{"name": "b"}, {"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        assert_eq!(
            admit(&quotas, "", "pods", &p, None),
            Err(
                "failed quota: q1: must specify limits.memory for: a,b; requests.cpu for: b".into()
            )
        );
    }

    #[test]
    fn quotas_without_usage_are_status_unknown_and_unsynced_ones_do_not_apply() {
        let q = json!({"metadata": {"name": "q1"}, "status": {"hard": {"pods": "2", "configmaps": "1"}}});
        assert_eq!(
            admit(&[q], "", "pods", &pod(json!([{"name": "a"}])), None),
            Err("status unknown for quota: q1, resources: pods".into())
        );
        let fresh = json!({"metadata": {"name": "q1"}, "spec": {"hard": {"pods": "0"}}});
        assert_eq!(
            admit(&[fresh], "", "pods", &pod(json!([{"name": "a"}])), None),
            Ok(vec![])
        );
    }

    #[test]
    fn updates_are_charged_only_what_they_add() {
        let quotas = [quota(
            json!({"services.nodeports": "2", "services": "5"}),
            json!({"services.nodeports": "1", "services": "1"}),
        )];
        let old = json!({"metadata": {"resourceVersion": "5"}, "spec": {"type": "ClusterIP", "ports": [{"port": 1}]}});
        let new = json!({"metadata": {"resourceVersion": "5"}, "spec": {"type": "NodePort", "ports": [{"port": 1}]}});
        let out = admit(&quotas, "", "services", &new, Some(&old)).expect("fits");
        assert_eq!(
            shown(&out[0].1),
            json!({"services.nodeports": "2", "services": "1"})
        );
        let same = admit(&quotas, "", "services", &old, Some(&old)).expect("no change");
        assert!(same.is_empty());
    }

    proptest! {
        /// Admission lets an object in exactly when used + its charge stays
        /// within hard, and then reports that sum as the new usage.
        #[test]
        fn admission_matches_the_arithmetic(hard in 0i64..5000, used in 0i64..5000, cpu in 1i64..3000) {
            let quotas = [quota(json!({"requests.cpu": format!("{hard}m")}),
                                json!({"requests.cpu": format!("{used}m")}))];
            let p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": format!("{cpu}m")}}}]));
            let result = admit(&quotas, "", "pods", &p, None);
            if used + cpu <= hard {
                let out = result.expect("fits");
                let expected = Quantity::from_nanos(i128::from(used + cpu) * 1_000_000, QuantityFormat::DecimalSi);
                prop_assert_eq!(out[0].1["requests.cpu"], expected);
            } else {
                prop_assert!(result.expect_err("over").starts_with("exceeded quota: q1, requested: requests.cpu="));
            }
        }

        /// The controller's sum does not depend on the order of the pods.
        #[test]
        fn usage_sums_are_order_independent(cpus in proptest::collection::vec(0i64..4000, 0..8)) {
            let q = json!({"spec": {"hard": {"requests.cpu": "100", "pods": "100"}}});
            let pods: Vec<Value> = cpus.iter()
                .map(|c| pod(json!([{"name": "a", "resources": {"requests": {"cpu": format!("{c}m")}}}])))
                .collect();
            let mut reversed = pods.clone();
            reversed.reverse();
            let a = calculate_usage(&q, "", "pods", &pods);
            prop_assert_eq!(&a, &calculate_usage(&q, "", "pods", &reversed));
            let total: i64 = cpus.iter().sum();
            prop_assert_eq!(a["requests.cpu"].milli_value(), total);
            prop_assert_eq!(a["pods"].value(), cpus.len() as i64);
        }
    }
}
