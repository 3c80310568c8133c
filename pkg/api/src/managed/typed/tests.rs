use super::*;
use crate::schema;
use serde_json::json;

fn deployment() -> Option<SchemaNode<'static>> {
    schema::node("io.k8s.api.apps.v1.Deployment")
}

fn v1(set: &FieldSet) -> Value {
    set.to_fields_v1()
}

#[test]
fn field_set_owns_leaves_and_keyed_items() {
    let config = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}
        }
    });
    assert_eq!(
        v1(&field_set(&config, deployment())),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}
            }
        })
    );
}

#[test]
fn ports_are_keyed_by_port_and_defaulted_protocol() {
    let service = schema::node("io.k8s.api.core.v1.Service");
    let config = json!({"spec": {"ports": [{"port": 80}]}});
    assert_eq!(
        v1(&field_set(&config, service)),
        json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}})
    );
}

#[test]
fn compare_reports_added_modified_and_removed() {
    let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}});
    let new = json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"replicas": 3}});
    let changes = compare(&old, &new, deployment());
    assert_eq!(
        v1(&changes.added),
        json!({"f:metadata": {"f:labels": {"f:c": {}}}})
    );
    assert_eq!(v1(&changes.modified), json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(
        v1(&changes.removed),
        json!({"f:metadata": {"f:labels": {"f:b": {}}}})
    );
}

#[test]
fn an_added_map_is_a_member_but_an_added_struct_is_not() {
    let changes = compare(
        &json!({}),
        &json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}}),
        deployment(),
    );
    assert_eq!(
        v1(&changes.added),
        json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn merge_keeps_live_items_and_appends_new_ones() {
    let live = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "one", "terminationMessagePath": "/dev/termination-log"},
        {"name": "b", "image": "two"}
    ]}}}});
    let config = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "three"},
        {"name": "a", "image": "uno"}
    ]}}}});
    let merged = merge(&live, &config, deployment());
    assert_eq!(
        merged.pointer("/spec/template/spec/containers").cloned(),
        Some(json!([
            {"name": "a", "image": "uno", "terminationMessagePath": "/dev/termination-log"},
            {"name": "b", "image": "two"},
            {"name": "c", "image": "three"}
        ]))
    );
}

#[test]
fn merge_replaces_atomic_values_and_null_removes() {
    let live = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "paused": true}});
    let config = json!({"spec": {"selector": {"matchLabels": {"b": "2"}}, "paused": null}});
    assert_eq!(
        merge(&live, &config, deployment()),
        json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}})
    );
}

#[test]
fn remove_drops_items_and_emptied_maps_but_keeps_items_whose_fields_go() {
    let mut obj = json!({
        "metadata": {"labels": {"a": "1"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "one"}, {"name": "b", "image": "two"}
        ]}}}
    });
    let set = FieldSet::from_fields_v1(&json!({
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"b\"}": {},
            "k:{\"name\":\"a\"}": {"f:image": {}}
        }}}}
    }))
    .expect("set");
    remove(&mut obj, &set, deployment());
    assert_eq!(
        obj,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}})
    );
}

#[test]
fn without_a_schema_objects_are_granular_and_lists_atomic() {
    let config = json!({"spec": {"size": 1, "tags": ["a", "b"]}});
    assert_eq!(
        v1(&field_set(&config, None)),
        json!({"f:spec": {"f:size": {}, "f:tags": {}}})
    );
}

#[test]
fn an_empty_configuration_map_merges_without_clearing() {
    let live = json!({"data": {"x": "1"}});
    assert_eq!(merge(&live, &json!({"data": {}}), None), live);
}
