use super::*;
use serde_json::json;

#[test]
fn every_builtin_resource_definition_resolves() {
    for info in crate::resources::builtin() {
        assert!(
            definition(&info.definition).is_some(),
            "{} missing",
            info.definition
        );
        let by_gvk = definition_name_for(&info.group, &info.version, &info.kind);
        assert_eq!(
            by_gvk,
            Some(info.definition.as_str()),
            "{}/{} {}",
            info.group,
            info.version,
            info.kind
        );
        if info.allows("list") {
            let list = definition_for(&info.group, &info.version, &format!("{}List", info.kind));
            assert!(list.is_some(), "{}List missing", info.kind);
        }
    }
}

#[test]
fn meta_and_subresource_kinds_are_defined() {
    for name in [
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.api.policy.v1.Eviction",
        "io.k8s.api.authentication.v1.TokenRequest",
    ] {
        assert!(definition(name).is_some(), "{name}");
    }
    assert!(definition_for("", "v1", "DeleteOptions").is_some());
    assert!(definition_for("apps", "v1", "DeleteOptions").is_some());
}

#[test]
fn every_ref_points_at_a_definition() {
    fn check(value: &serde_json::Value, defs: &Definitions) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    let name = r.strip_prefix("#/definitions/").expect("normalised ref");
                    assert!(defs.contains_key(name), "dangling {r}");
                }
                map.values().for_each(|v| check(v, defs));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| check(v, defs)),
            _ => {}
        }
    }
    check(
        &serde_json::Value::Object(definitions().clone()),
        definitions(),
    );
}

#[test]
fn pod_spec_carries_patch_extensions() {
    let pod = node("io.k8s.api.core.v1.Pod").expect("pod");
    let containers = pod
        .property("spec")
        .and_then(|s| s.property("containers"))
        .expect("containers");
    let meta = containers.patch_meta();
    assert!(meta.merges());
    assert_eq!(meta.merge_key, "name");
    assert_eq!(containers.list_type(), Some("map"));
    let env = containers
        .items()
        .and_then(|c| c.property("env"))
        .expect("env");
    assert_eq!(env.patch_meta().merge_key, "name");
    let ports = node("io.k8s.api.core.v1.ServiceSpec")
        .and_then(|s| s.property("ports"))
        .expect("ports");
    assert_eq!(ports.patch_meta().merge_key, "port");
    assert_eq!(ports.list_map_keys(), ["port", "protocol"]);
    let strategy = node("io.k8s.api.apps.v1.DeploymentSpec")
        .and_then(|s| s.property("strategy"))
        .expect("strategy");
    assert!(strategy.patch_meta().retains_keys());
    let finalizers = node("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .and_then(|m| m.property("finalizers"))
        .expect("finalizers");
    assert!(finalizers.patch_meta().merges());
    assert_eq!(finalizers.list_type(), Some("set"));
}

#[test]
fn deployment_has_group_version_kind() {
    let deploy = definition("io.k8s.api.apps.v1.Deployment").expect("deployment");
    assert_eq!(
        deploy[GVK_EXTENSION],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
}

#[test]
fn int_or_string_and_opaque_objects_are_recognised() {
    let port = node("io.k8s.api.core.v1.ServicePort")
        .and_then(|p| p.property("targetPort"))
        .expect("targetPort");
    assert!(port.is_int_or_string());
    let raw = node("io.k8s.api.apps.v1.ControllerRevision")
        .and_then(|c| c.property("data"))
        .expect("data");
    assert!(raw.is_opaque_object());
}

#[test]
fn unknown_fields_are_reported_with_kube_apiserver_paths() {
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"any": "thing"}, "bogus": 1},
        "spec": {
            "foo": true,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [
                {"name": "a", "image": "x", "ports": [{"containerPort": 80, "nope": 1}]},
                {"name": "b", "badField": 1, "resources": {"limits": {"cpu": "1"}}}
            ]}}
        }
    });
    assert_eq!(
        unknown_fields("io.k8s.api.apps.v1.Deployment", &deploy),
        [
            "metadata.bogus",
            "spec.foo",
            "spec.template.spec.containers[0].ports[0].nope",
            "spec.template.spec.containers[1].badField",
        ]
    );
}

#[test]
fn raw_extensions_accept_anything() {
    let rev = json!({"data": {"whatever": {"deep": 1}}, "revision": 1});
    assert!(unknown_fields("io.k8s.api.apps.v1.ControllerRevision", &rev).is_empty());
}

#[test]
fn structural_schema_prunes_like_a_crd() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                    "port": {"x-kubernetes-int-or-string": true}
                }
            }
        }
    });
    let obj = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "nope": 1},
        "spec": {
            "size": 1, "extra": 2,
            "free": {"anything": {"goes": true}},
            "labels": {"a": "b"},
            "items": [{"a": "x", "b": "y"}],
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "other": 1},
            "port": 80
        },
        "status": {}
    });
    assert_eq!(
        unknown_fields_in_schema(&schema, &obj),
        [
            "metadata.nope",
            "spec.extra",
            "spec.items[0].b",
            "spec.template.other",
            "spec.template.spec.x",
            "status"
        ]
    );
}

#[test]
fn duplicate_keys_are_found_in_raw_json() {
    let raw = br#"{"spec": {"replicas": 1, "replicas": 2, "template": {"spec": {"containers": [{"name": "a", "name": "b"}]}}},
                  "kind": "Deployment", "ki\u006ed": "Deployment"}"#;
    assert_eq!(
        duplicate_fields(raw),
        [
            "spec.replicas",
            "spec.template.spec.containers[0].name",
            "kind"
        ]
    );
    assert!(duplicate_fields(br#"{"a": [1, {"b": "}"}], "c": null}"#).is_empty());
    assert!(duplicate_fields(b"{\"a\": ").is_empty());
}
