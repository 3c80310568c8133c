use super::*;
use serde_json::{Value, json};

fn claim(class: Option<&str>, annotations: Value) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "data", "namespace": "default", "uid": "u1",
                     "annotations": annotations},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                 "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap()
}

fn class(name: &str, provisioner: &str, mode: &str) -> StorageClass {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "provisioner": provisioner,
                                  "volumeBindingMode": mode}),
    )
    .unwrap()
}

fn volume(name: &str, class: &str, node: Option<&str>) -> PersistentVolume {
    let affinity = node.map(|n| {
        json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [n]}]}]}})
    });
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                 "capacity": {"storage": "5Gi"}, "hostPath": {"path": "/srv"},
                 "nodeAffinity": affinity},
        "status": {"phase": "Available"},
    }))
    .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
    )
    .unwrap()
}

#[test]
fn immediate_claims_bind_to_a_matching_volume_at_once() {
    let fast = class("fast", "example.com/fast", "Immediate");
    let v = volume("pv1", "fast", Some("a"));
    assert_eq!(
        plan(&claim(Some("fast"), json!({})), &[&v], Some(&fast), None),
        Plan::Bind("pv1".into())
    );
}

#[test]
fn waiting_claims_wait_for_the_scheduler_then_bind_on_its_node_or_provision() {
    let local = class(
        "local-path",
        "rancher.io/local-path",
        "WaitForFirstConsumer",
    );
    let on_a = volume("pv-a", "local-path", Some("a"));
    let c = claim(Some("local-path"), json!({}));
    assert_eq!(
        plan(&c, &[&on_a], Some(&local), None),
        Plan::WaitForConsumer
    );
    let (a, b) = (node("a"), node("b"));
    let on = |n: &str| claim(Some("local-path"), json!({vb::SELECTED_NODE: n}));
    let c = on("a");
    assert_eq!(
        plan(&c, &[&on_a], Some(&local), Some(&a)),
        Plan::Bind("pv-a".into())
    );
    assert_eq!(
        plan(&on("b"), &[&on_a], Some(&local), Some(&b)),
        Plan::Provision("rancher.io/local-path".into())
    );
    // A node not (yet) in the cache: provision for it by name.
    assert_eq!(
        plan(&on("c"), &[&on_a], Some(&local), None),
        Plan::Provision("rancher.io/local-path".into())
    );
}

#[test]
fn claims_with_no_way_to_get_a_volume_say_why() {
    let none = plan(&claim(Some(""), json!({})), &[], None, None);
    assert_eq!(
        none,
        Plan::Stuck(
            NORMAL,
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into()
        )
    );
    let missing = plan(&claim(Some("gold"), json!({})), &[], None, None);
    assert_eq!(
        missing,
        Plan::Stuck(
            WARNING,
            "ProvisioningFailed",
            "storageclass.storage.k8s.io \"gold\" not found".into()
        )
    );
    let manual = class("manual", NO_PROVISIONER, "Immediate");
    let Plan::Stuck(_, reason, _) =
        plan(&claim(Some("manual"), json!({})), &[], Some(&manual), None)
    else {
        panic!("a class without a provisioner cannot provision");
    };
    assert_eq!(reason, "ProvisioningFailed");
}

#[test]
fn the_beta_class_annotation_is_the_claims_class() {
    let fast = class("fast", "example.com/fast", "Immediate");
    let v = volume("pv1", "fast", None);
    let c = claim(None, json!({vb::BETA_STORAGE_CLASS: "fast"}));
    assert_eq!(plan(&c, &[&v], Some(&fast), None), Plan::Bind("pv1".into()));
}
