//! A container's environment as the kubelet computes it: `envFrom` sources
//! first, then `env` in order, values from ConfigMaps, Secrets, the pod's own
//! fields (`fieldRef`) and resources (`resourceFieldRef`), and `$(VAR)`
//! references expanded against what came before.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kite_api::validation::quantity::Quantity;
use kube::api::Api;
use std::collections::{BTreeMap, HashMap};

/// Reads ConfigMaps and Secrets of the pod's namespace, each at most once.
pub struct Sources {
    client: kube::Client,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Sources {
    /// Sources in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    /// The ConfigMap `name`, or `None` when it does not exist.
    pub async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, String> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let found = api.get_opt(name).await.map_err(|e| e.to_string())?;
            self.config_maps.insert(name.to_string(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    /// The Secret `name`, or `None` when it does not exist.
    pub async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, String> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let found = api.get_opt(name).await.map_err(|e| e.to_string())?;
            self.secrets.insert(name.to_string(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// The node facts `fieldRef`s and unlimited `resourceFieldRef`s resolve to.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// The node's IP.
    pub host_ip: String,
    /// The pod's IP (the node's for host-network pods), if it has one.
    pub pod_ip: Option<String>,
    /// Allocatable CPU in millicores.
    pub cpu_millis: i64,
    /// Allocatable memory in bytes.
    pub memory_bytes: i64,
    /// Allocatable ephemeral storage in bytes.
    pub ephemeral_bytes: i64,
}

/// The environment of `container` in `pod`, in order, or the reason it cannot
/// be built (worded as the kubelet's `CreateContainerConfigError` messages).
pub async fn resolve(
    sources: &mut Sources,
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        if let Some(slot) = env.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            env.push((name, value));
        }
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            let optional = cm.optional.unwrap_or(false);
            match sources.config_map(&cm.name).await? {
                Some(found) => {
                    for (k, v) in found.data.iter().flatten() {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if optional => {}
                None => return Err(format!("configmap \"{}\" not found", cm.name)),
            }
        }
        if let Some(secret) = &from.secret_ref {
            let optional = secret.optional.unwrap_or(false);
            match sources.secret(&secret.name).await? {
                Some(found) => {
                    for (k, v) in found.data.iter().flatten() {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if optional => {}
                None => return Err(format!("secret \"{}\" not found", secret.name)),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            let known: HashMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            expand(value, &known)
        } else if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path, node)?
            } else if let Some(resource) = &from.resource_field_ref {
                let name = resource
                    .container_name
                    .as_deref()
                    .unwrap_or(&container.name);
                let target = pod
                    .spec
                    .iter()
                    .flat_map(|s| {
                        s.containers
                            .iter()
                            .chain(s.init_containers.iter().flatten())
                    })
                    .find(|c| c.name == name)
                    .unwrap_or(container);
                resource_value(target, &resource.resource, resource.divisor.as_ref(), node)?
            } else if let Some(key) = &from.config_map_key_ref {
                let optional = key.optional.unwrap_or(false);
                match sources.config_map(&key.name).await? {
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&key.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                key.key, key.name
                            ));
                        }
                    },
                    None if optional => continue,
                    None => return Err(format!("configmap \"{}\" not found", key.name)),
                }
            } else if let Some(key) = &from.secret_key_ref {
                let optional = key.optional.unwrap_or(false);
                match sources.secret(&key.name).await? {
                    Some(secret) => match secret.data.as_ref().and_then(|d| d.get(&key.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                key.key, key.name
                            ));
                        }
                    },
                    None if optional => continue,
                    None => return Err(format!("secret \"{}\" not found", key.name)),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` from `known`; `$$` escapes a `$`; unknown references stay as written.
pub fn expand(text: &str, known: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match known.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `fieldRef` of the pod.
pub fn field_value(pod: &Pod, path: &str, node: &NodeFacts) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let from_map = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        "status.podIP" | "status.podIPs" => node.pod_ip.clone().unwrap_or_default(),
        _ => {
            if let Some(key) = subscript("metadata.labels['") {
                from_map(&meta.labels, &key)
            } else if let Some(key) = subscript("metadata.annotations['") {
                from_map(&meta.annotations, &key)
            } else {
                return Err(format!("unsupported fieldRef {path:?}"));
            }
        }
    })
}

/// `key="value"` lines, sorted, as the downward API writes label and annotation maps.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `resourceFieldRef` of `container`: its limit (the node's allocatable when
/// unlimited) or request, divided by `divisor` and rounded up.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    node: &NodeFacts,
) -> Result<String, String> {
    let resources = container.resources.as_ref();
    let (list, name) = match resource.split_once('.') {
        Some(("limits", name)) => (resources.and_then(|r| r.limits.as_ref()), name),
        Some(("requests", name)) => (resources.and_then(|r| r.requests.as_ref()), name),
        _ => return Err(format!("unsupported container resource: {resource}")),
    };
    let nanos: i128 = match list.and_then(|l| l.get(name)) {
        Some(q) => Quantity::parse(&q.0).map_err(|e| e.to_string())?.nanos(),
        None => {
            let units: i64 = match (resource.starts_with("limits"), name) {
                (true, "cpu") => return Ok(cpu_string(node.cpu_millis, divisor)),
                (true, "memory") => node.memory_bytes,
                (true, "ephemeral-storage") => node.ephemeral_bytes,
                _ => 0,
            };
            i128::from(units) * 1_000_000_000
        }
    };
    let divisor = match divisor {
        Some(d) => Quantity::parse(&d.0).map_err(|e| e.to_string())?.nanos(),
        None => 1_000_000_000,
    };
    if divisor <= 0 {
        return Err(format!("invalid divisor for {resource}"));
    }
    // Rounded up, and at least 1 for a non-zero CPU value, as the kubelet does.
    let mut value = (nanos + divisor - 1) / divisor;
    if name == "cpu" && nanos > 0 && value == 0 {
        value = 1;
    }
    Ok(value.to_string())
}

fn cpu_string(
    millis: i64,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> String {
    let divisor = divisor
        .and_then(|d| Quantity::parse(&d.0).ok())
        .map_or(1_000_000_000, |q| q.nanos())
        .max(1);
    let nanos = i128::from(millis) * 1_000_000;
    ((nanos + divisor - 1) / divisor).max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_dollars_escape() {
        let known = HashMap::from([("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &known), "1-two");
        assert_eq!(expand("$$(A) $(C) $", &known), "$(A) $(C) $");
        assert_eq!(expand("x$(A", &known), "x$(A");
    }

    #[test]
    fn field_refs_read_the_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                         "labels": {"app": "web", "tier": "x"}},
            "spec": {"nodeName": "n1", "containers": []},
        }))
        .unwrap();
        let node = NodeFacts {
            host_ip: "10.0.0.1".into(),
            ..NodeFacts::default()
        };
        assert_eq!(field_value(&pod, "metadata.name", &node).unwrap(), "p");
        assert_eq!(
            field_value(&pod, "metadata.labels['app']", &node).unwrap(),
            "web"
        );
        assert_eq!(field_value(&pod, "spec.nodeName", &node).unwrap(), "n1");
        assert_eq!(
            field_value(&pod, "status.hostIP", &node).unwrap(),
            "10.0.0.1"
        );
        assert_eq!(
            field_value(&pod, "metadata.labels", &node).unwrap(),
            "app=\"web\"\ntier=\"x\""
        );
        assert!(field_value(&pod, "spec.bogus", &node).is_err());
    }

    #[test]
    fn resource_refs_use_limits_divisors_and_node_allocatable() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}},
        }))
        .unwrap();
        let node = NodeFacts {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
            ..NodeFacts::default()
        };
        let mi = k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Mi".into());
        let milli = k8s_openapi::apimachinery::pkg::api::resource::Quantity("1m".into());
        assert_eq!(
            resource_value(&c, "limits.memory", Some(&mi), &node).unwrap(),
            "64"
        );
        assert_eq!(resource_value(&c, "limits.cpu", None, &node).unwrap(), "1");
        assert_eq!(
            resource_value(&c, "limits.cpu", Some(&milli), &node).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&c, "requests.cpu", Some(&milli), &node).unwrap(),
            "100"
        );
        let bare: Container = serde_json::from_value(serde_json::json!({"name": "b"})).unwrap();
        assert_eq!(
            resource_value(&bare, "limits.cpu", None, &node).unwrap(),
            "2"
        );
        assert_eq!(
            resource_value(&bare, "limits.memory", None, &node).unwrap(),
            (1u64 << 30).to_string()
        );
    }
}
