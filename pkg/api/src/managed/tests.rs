use super::*;
use crate::schema;
use serde_json::json;

fn deployment() -> Option<SchemaNode<'static>> {
    schema::node("io.k8s.api.apps.v1.Deployment")
}

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: "",
        has_status: true,
        now: "2026-11-22T18:00:00Z",
    }
}

fn fields_of(obj: &Value, manager: &str) -> Option<Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
}

fn created(manager: &str, obj: Value) -> Value {
    let mut new = obj;
    record_update(None, &mut new, deployment(), &writer(manager));
    new
}

fn web(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
        "status": {"replicas": 0}
    })
}

#[test]
fn a_create_owns_every_field_but_server_metadata_and_status() {
    let obj = created("kubectl-create", web(1));
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], "2026-11-22T18:00:00Z");
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        })
    );
}

#[test]
fn an_update_takes_the_fields_it_changes_from_others() {
    let old = created("kubectl-create", web(1));
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(5);
    record_update(Some(&old), &mut new, deployment(), &writer("kubectl-scale"));
    assert_eq!(
        fields_of(&new, "kubectl-scale"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    let creator = fields_of(&new, "kubectl-create").expect("creator keeps the rest");
    assert!(creator["f:spec"].get("f:replicas").is_none());
    assert!(creator["f:spec"].get("f:template").is_some());
}

#[test]
fn a_no_op_update_changes_no_entry() {
    let old = created("kubectl-create", web(1));
    let mut new = old.clone();
    record_update(Some(&old), &mut new, deployment(), &writer("other"));
    assert_eq!(new, old);
}

#[test]
fn apply_conflicts_with_a_field_another_manager_set_differently() {
    let live = created("kubectl-client-side-apply", web(1));
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let conflicts = apply(&live, &config, deployment(), &writer("kubectl"), false)
        .expect_err("replicas is owned by the client-side applier");
    let status = conflicts.status();
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let causes = status.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".spec.replicas");
}

#[test]
fn applying_the_same_value_shares_ownership_without_conflict() {
    let live = created("kubectl-create", web(1));
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 1}});
    let out = apply(&live, &config, deployment(), &writer("kubectl"), false).expect("no conflict");
    assert_eq!(
        fields_of(&out, "kubectl"),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    assert!(
        fields_of(&out, "kubectl-create").expect("still there")["f:spec"]["f:replicas"].is_object()
    );
    assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
}

#[test]
fn force_takes_the_field_away_from_its_owner() {
    let live = created("kubectl-create", web(1));
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    let out = apply(&live, &config, deployment(), &writer("kubectl"), true).expect("forced");
    assert_eq!(out["spec"]["replicas"], 4);
    let creator = fields_of(&out, "kubectl-create").expect("creator");
    assert!(creator["f:spec"].get("f:replicas").is_none());
}

#[test]
fn fields_dropped_from_the_configuration_are_removed_unless_owned_by_others() {
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {"replicas": 2, "paused": true}});
    let first = apply(&json!({}), &config, deployment(), &writer("kubectl"), false).expect("first");
    // Another manager also sets the label `tier` to the same value by applying.
    let shared = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"tier": "front"}}});
    let second = apply(&first, &shared, deployment(), &writer("helper"), false).expect("shared");
    let smaller = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 2}});
    let out = apply(&second, &smaller, deployment(), &writer("kubectl"), false).expect("third");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    assert!(out["spec"].get("paused").is_none(), "{out}");
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn applying_to_an_object_without_managed_fields_conflicts_with_before_first_apply() {
    let live = web(1);
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let status = apply(&live, &config, deployment(), &writer("kubectl"), false)
        .expect_err("conflict")
        .status();
    assert!(
        status
            .message
            .contains(r#""before-first-apply" using apps/v1"#),
        "{}",
        status.message
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = created("a", web(1));
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "other"}}, "spec": {"replicas": 2}});
    let status = apply(&live, &config, deployment(), &writer("kubectl"), false)
        .expect_err("conflicts")
        .status();
    assert_eq!(
        status.message,
        "Apply failed with 2 conflicts: conflicts with \"a\" using apps/v1:\n- .metadata.labels.app\n- .spec.replicas"
    );
}

#[test]
fn a_dropped_map_member_keeps_the_entries_still_applied() {
    // As left by kubectl's client-side to server-side apply migration: the
    // applier owns the labels map itself as well as its entries.
    let mut live = created("x", web(1));
    live["metadata"]["managedFields"] = json!([{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}
    }]);
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1}});
    let out = apply(&live, &config, deployment(), &writer("kubectl"), false).expect("applied");
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
}
