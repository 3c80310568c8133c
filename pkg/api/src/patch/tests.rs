use super::*;
use crate::schema;
use proptest::prelude::*;
use serde_json::{Value, json};

fn deployment() -> SchemaNode<'static> {
    schema::node("io.k8s.api.apps.v1.Deployment").expect("deployment schema")
}

fn smp(original: Value, patch: Value) -> Value {
    strategic_merge(&original, &patch, Some(deployment())).expect("patch applies")
}

fn live() -> Value {
    json!({
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "busybox"}
            ]}}
        }
    })
}

#[test]
fn content_types_map_to_patch_types() {
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml"),
        Some(PatchType::Apply)
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
    let err =
        PatchType::negotiate("application/strategic-merge-patch+json", true).expect_err("refused");
    let status = err.status();
    assert_eq!(status.code, 415);
    assert_eq!(
        status.message,
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
}

#[test]
fn containers_merge_by_name() {
    let out = smp(
        live(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}),
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(2));
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[0]["env"][1]["name"], "B");
}

#[test]
fn new_list_elements_go_first_like_kube_apiserver() {
    let out = smp(
        live(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "x"}]}}}}),
    );
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["new", "web", "side"]);
}

#[test]
fn delete_and_replace_directives() {
    let out = smp(
        live(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let out = smp(
        live(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "i"}, {"$patch": "replace"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "i"}])
    );
    let out = smp(
        live(),
        json!({"metadata": {"labels": {"$patch": "replace", "new": "x"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"new": "x"}));
    let out = smp(live(), json!({"spec": {"strategy": {"$patch": "delete"}}}));
    assert_eq!(out["spec"]["strategy"], json!({}));
}

#[test]
fn primitive_merge_lists_union_and_delete() {
    let out = smp(live(), json!({"metadata": {"finalizers": ["c", "a"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    let out = smp(
        live(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn retain_keys_clears_unlisted_fields() {
    let out = smp(
        live(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let err = strategic_merge(
        &live(),
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        Some(deployment()),
    )
    .expect_err("rollingUpdate not retained");
    assert_eq!(err.status().code, 400);
}

#[test]
fn kubectl_apply_removes_env_var_with_set_element_order() {
    // What kubectl apply sends after env B is dropped from the manifest and the image changes.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
        "containers": [{
            "name": "web", "image": "nginx:2",
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"name": "B", "$patch": "delete"}]
        }]
    }}}});
    let out = smp(live(), patch);
    let web = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["image"], "nginx:2");
    assert_eq!(web["env"], json!([{"name": "A", "value": "1"}]));
}

#[test]
fn kubectl_apply_changes_ports_and_reorders() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
        "containers": [{
            "name": "web",
            "$setElementOrder/ports": [{"containerPort": 8080}],
            "ports": [{"containerPort": 8080}, {"containerPort": 80, "$patch": "delete"}]
        }]
    }}}});
    let out = smp(live(), patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "side");
    assert_eq!(containers[1]["ports"], json!([{"containerPort": 8080}]));
}

#[test]
fn merge_key_missing_is_an_internal_error() {
    let err = strategic_merge(
        &live(),
        &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        Some(deployment()),
    )
    .expect_err("no name");
    assert_eq!(err.status().code, 500);
    assert!(
        err.to_string()
            .contains("does not contain declared merge key: name")
    );
}

#[test]
fn json_patch_failures_map_to_kube_apiserver_codes() {
    let doc = json!({"a": 1});
    assert_eq!(
        apply_json_patch(&doc, br#"[{"op":"replace","path":"/a","value":2}]"#).expect("ok"),
        json!({"a": 2})
    );
    let test_failed =
        apply_json_patch(&doc, br#"[{"op":"test","path":"/a","value":3}]"#).expect_err("test");
    assert_eq!(test_failed.status().code, 422);
    assert_eq!(
        test_failed.status().message,
        "the server rejected our request due to an error in our request"
    );
    let missing = apply_json_patch(&doc, br#"[{"op":"remove","path":"/b"}]"#).expect_err("missing");
    assert_eq!(missing.status().reason, "Invalid");
    let malformed = apply_json_patch(&doc, b"{").expect_err("malformed");
    assert_eq!(malformed.status().code, 400);
    assert_eq!(
        apply_merge_patch(&doc, b"null")
            .expect_err("null")
            .status()
            .message,
        "Invalid JSON Patch"
    );
    let too_big = format!(
        "[{}]",
        vec![r#"{"op":"test","path":"/a","value":1}"#; MAX_JSON_PATCH_OPERATIONS + 1].join(",")
    );
    assert_eq!(
        apply_json_patch(&doc, too_big.as_bytes())
            .expect_err("too big")
            .status()
            .code,
        413
    );
}

#[test]
fn strategic_patch_is_refused_for_custom_resources() {
    let err = apply(PatchType::StrategicMerge, &json!({}), b"{}", None).expect_err("crd");
    assert_eq!(err, PatchError::UnsupportedForCustomResources);
}

/// The merge patch turning `a` into `b` (RFC 7386 diff).
fn diff(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = serde_json::Map::new();
            for (k, av) in a {
                match b.get(k) {
                    None => {
                        out.insert(k.clone(), Value::Null);
                    }
                    Some(bv) if bv != av => {
                        let d = if av.is_object() && bv.is_object() {
                            diff(av, bv)
                        } else {
                            bv.clone()
                        };
                        out.insert(k.clone(), d);
                    }
                    Some(_) => {}
                }
            }
            for (k, bv) in b {
                if !a.contains_key(k) {
                    out.insert(k.clone(), bv.clone());
                }
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #[test]
    fn merge_patch_of_diff_reproduces_target(a in json_object(), b in json_object()) {
        let patch = diff(&a, &b);
        let body = serde_json::to_vec(&patch).expect("encode");
        prop_assert_eq!(apply_merge_patch(&a, &body).expect("applies"), b);
    }

    #[test]
    fn strategic_patch_without_metadata_is_merge_patch(a in json_object(), b in json_object()) {
        let patch = diff(&a, &b);
        let mut merged = a.clone();
        json_patch::merge(&mut merged, &patch);
        prop_assert_eq!(strategic_merge(&a, &patch, None).expect("applies"), merged);
    }

    #[test]
    fn merging_containers_twice_changes_nothing(images in prop::collection::vec(("[a-e]", "[x-z]{1,3}"), 0..5)) {
        let containers: Vec<Value> = images.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
        let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
        let once = smp(live(), patch.clone());
        let twice = smp(once.clone(), patch);
        prop_assert_eq!(once, twice);
    }
}
