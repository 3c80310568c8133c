use super::*;
use crate::resources::{self, ResourceInfo};
use serde_json::{Value, json};

fn widget() -> CustomResource {
    let mut info: ResourceInfo = resources::builtin()
        .into_iter()
        .find(|r| r.kind == "ConfigMap")
        .expect("configmaps");
    info.group = "example.com".into();
    info.version = "v1".into();
    info.kind = "Widget".into();
    info.plural = "widgets".into();
    info.singular = "widget".into();
    info.subresources.clear();
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}});
    CustomResource { info, schema }
}

/// Follows `$ref` / single `allOf` in a v3 document.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    loop {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/components/schemas/");
            schema = &doc["components"]["schemas"][name];
        } else if let Some(Value::Array(all)) = schema.get("allOf") {
            schema = &all[0];
        } else {
            return schema;
        }
    }
}

#[test]
fn v2_lists_every_builtin_gvk_and_custom_definitions() {
    let builtin = resources::builtin();
    let doc = build_v2(&builtin, &[widget()]);
    assert_eq!(doc["swagger"], "2.0");
    let defs = doc["definitions"].as_object().expect("definitions");
    for info in &builtin {
        let gvks = defs[&info.definition][crate::schema::GVK_EXTENSION]
            .as_array()
            .expect("gvk");
        assert!(
            gvks.iter()
                .any(|g| g["kind"] == info.kind.as_str() && g["group"] == info.group.as_str()),
            "{}",
            info.kind
        );
    }
    assert!(defs.contains_key("com.example.v1.Widget"));
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    assert!(
        patch["consumes"]
            .as_array()
            .expect("consumes")
            .contains(&json!("application/strategic-merge-patch+json"))
    );
    let crd_patch =
        &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert!(
        !crd_patch["consumes"]
            .as_array()
            .expect("consumes")
            .contains(&json!("application/strategic-merge-patch+json"))
    );
}

#[test]
fn v3_index_points_at_hashed_group_versions() {
    let builtin = resources::builtin();
    let v3 = OpenApiV3::build(&builtin, &[widget()]);
    let index = v3.index();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1");
    let hash = v3.hash("apis/apps/v1").expect("hash");
    assert_eq!(url, format!("/openapi/v3/apis/apps/v1?hash={hash}"));
    assert_eq!(hash.len(), 32);
    assert!(index["paths"]["api/v1"].is_object());
    assert!(index["paths"]["apis/example.com/v1"].is_object());
    // Same content, same hash; different content, different hash.
    let again = OpenApiV3::build(&builtin, &[widget()]);
    assert_eq!(again.hash("apis/apps/v1"), Some(hash));
    assert_ne!(v3.hash("api/v1"), Some(hash));
}

#[test]
fn v3_patch_operations_advertise_server_side_field_validation() {
    let builtin = resources::builtin();
    let v3 = OpenApiV3::build(&builtin, &[widget()]);
    for (key, path) in [
        (
            "apis/apps/v1",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        ),
        ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}"),
        (
            "apis/example.com/v1",
            "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}",
        ),
    ] {
        let doc: Value =
            serde_json::from_slice(&v3.document(key).expect("document")).expect("json");
        assert_eq!(doc["openapi"], "3.0.0");
        for method in ["patch", "put"] {
            let op = &doc["paths"][path][method];
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for wanted in ["fieldValidation", "dryRun", "fieldManager"] {
                assert!(names.contains(&wanted), "{path} {method} lacks {wanted}");
            }
        }
    }
}

#[test]
fn v3_deployment_spec_strategy_resolves_with_descriptions() {
    let builtin = resources::builtin();
    let v3 = OpenApiV3::build(&builtin, &[]);
    let doc: Value =
        serde_json::from_slice(&v3.document("apis/apps/v1").expect("apps")).expect("json");
    let deploy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    let spec = &deploy["properties"]["spec"];
    assert!(spec["description"].is_string());
    let strategy = &resolve(&doc, spec)["properties"]["strategy"];
    assert!(
        strategy["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    let strategy = resolve(&doc, strategy);
    assert!(strategy["properties"]["rollingUpdate"].is_object());
    // Every reference in the document resolves inside it.
    fn check(doc: &Value, v: &Value) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let name = r.trim_start_matches("#/components/schemas/");
                    assert!(
                        doc["components"]["schemas"].get(name).is_some(),
                        "dangling {r}"
                    );
                }
                m.values().for_each(|x| check(doc, x));
            }
            Value::Array(a) => a.iter().for_each(|x| check(doc, x)),
            _ => {}
        }
    }
    check(&doc, &doc);
}

#[test]
fn rebuilding_one_group_version_keeps_the_others() {
    let builtin = resources::builtin();
    let mut v3 = OpenApiV3::build(&builtin, &[widget()]);
    let apps = v3.hash("apis/apps/v1").map(str::to_string);
    v3.rebuild_group_version("example.com", "v1", &builtin, &[]);
    assert!(v3.document("apis/example.com/v1").is_none());
    assert_eq!(v3.hash("apis/apps/v1").map(str::to_string), apps);
}
