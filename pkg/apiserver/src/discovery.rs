//! API discovery: `/api`, `/apis`, `/apis/<group>`, the per group-version
//! resource lists, and aggregated discovery (`apidiscovery.k8s.io/v2` and
//! `v2beta1`), which kubectl 1.30+ asks for first via the Accept header.

use crate::registry::Registry;
use kite_api::ResourceInfo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The media type of aggregated discovery documents, by version.
pub fn aggregated_media_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// The aggregated discovery version an Accept header asks for (`v2` or `v2beta1`), if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    // Clients list preferences in order; the first aggregated one we support wins.
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.iter().any(|x| x.eq_ignore_ascii_case(p));
        if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
        if params
            .first()
            .is_some_and(|m| *m == "application/json" || *m == "*/*")
            && params.len() == 1
        {
            return None;
        }
    }
    None
}

/// `/api`: the legacy group's versions.
pub fn legacy_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Groups (other than core) with their versions, preferred first.
fn groups(registry: &Registry) -> BTreeMap<String, Vec<(String, bool)>> {
    let mut groups: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for r in registry.all() {
        if r.group.is_empty() {
            continue;
        }
        let versions = groups.entry(r.group.clone()).or_default();
        if !versions.iter().any(|(v, _)| *v == r.version) {
            versions.push((r.version.clone(), r.preferred));
        }
    }
    for versions in groups.values_mut() {
        versions.sort_by_key(|(v, preferred)| (!preferred, std::cmp::Reverse(version_priority(v))));
    }
    groups
}

/// Kubernetes' version ordering: GA above beta above alpha, higher numbers first.
pub(crate) fn version_priority(version: &str) -> (u8, u32, u32) {
    let rest = version.trim_start_matches('v');
    let (major, tail) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let major: u32 = major.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

fn group_json(name: &str, versions: &[(String, bool)]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|(v, _)| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = list.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": list, "preferredVersion": preferred})
}

/// `/apis`: every group.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .iter()
        .map(|(name, versions)| group_json(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`: one group, if served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = groups(registry);
    let versions = groups.get(name)?;
    let mut doc = group_json(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn resources_of(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
    registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// `/api/v1` or `/apis/<group>/<version>`: the resources of one group version, if served.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = resources_of(registry, group, version);
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in &resources {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in &r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != r.group || sub.version != r.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
    )
}

/// Aggregated discovery for the core group (`legacy`) or every other group.
pub fn aggregated(registry: &Registry, legacy: bool, version: &str) -> Value {
    let mut by_group: BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceInfo>>>> = BTreeMap::new();
    for r in registry.all() {
        if r.group.is_empty() != legacy {
            continue;
        }
        by_group
            .entry(r.group.clone())
            .or_default()
            .entry(r.version.clone())
            .or_default()
            .push(r);
    }
    let order = groups(registry);
    let mut items = Vec::new();
    for (group, versions) in by_group {
        let mut version_names: Vec<&String> = versions.keys().collect();
        if let Some(ordered) = order.get(&group) {
            version_names.sort_by_key(|v| {
                ordered
                    .iter()
                    .position(|(o, _)| o == *v)
                    .unwrap_or(usize::MAX)
            });
        }
        let versions: Vec<Value> = version_names
            .iter()
            .map(|v| {
                let resources: Vec<Value> = versions[*v]
                    .iter()
                    .map(|r| aggregated_resource(r))
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        let mut metadata = json!({"creationTimestamp": null});
        if !group.is_empty() {
            metadata["name"] = json!(group);
        }
        items.push(json!({"metadata": metadata, "versions": versions}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        entry["subresources"] = json!(subs);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(kite_api::resources::builtin())
    }

    #[test]
    fn kubectl_accept_header_selects_aggregated_v2() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(accept), Some("v2"));
        assert_eq!(wants_aggregated("application/json, */*"), None);
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            ),
            Some("v2beta1")
        );
    }

    #[test]
    fn autoscaling_prefers_v2() {
        let doc = group(&registry(), "autoscaling").expect("autoscaling");
        assert_eq!(doc["preferredVersion"]["version"], "v2");
        assert_eq!(doc["versions"][1]["version"], "v1");
    }

    #[test]
    fn core_resource_list_has_subresources_with_their_kinds() {
        let doc = resource_list(&registry(), "apps", "v1").expect("apps/v1");
        let resources = doc["resources"].as_array().expect("resources");
        let scale = resources
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .expect("scale");
        assert_eq!(
            (scale["group"].as_str(), scale["kind"].as_str()),
            (Some("autoscaling"), Some("Scale"))
        );
        assert!(resource_list(&registry(), "apps", "v9").is_none());
    }

    #[test]
    fn aggregated_core_group_has_no_name() {
        let doc = aggregated(&registry(), true, "v2");
        let items = doc["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods")
            .clone();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"][0], "po");
    }
}
