use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

fn claim(extra: Value) -> PersistentVolumeClaim {
    let mut base = json!({
        "metadata": {"name": "data", "namespace": "default", "uid": "u1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                 "resources": {"requests": {"storage": "1Gi"}}},
    });
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

fn volume(name: &str, size: &str, extra: Value) -> PersistentVolume {
    let mut base = json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "storageClassName": "fast",
                 "capacity": {"storage": size}, "hostPath": {"path": "/tmp/x"}},
        "status": {"phase": "Available"},
    });
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"kubernetes.io/hostname": name, "zone": zone}}}))
    .unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn pick<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &'a [PersistentVolume],
    node: Option<&Node>,
) -> Option<&'a str> {
    find_match(claim, volumes, node, false).and_then(|v| v.metadata.name.as_deref())
}

#[test]
fn the_smallest_volume_that_is_big_enough_wins() {
    let volumes = [
        volume("small", "500Mi", json!({})),
        volume("big", "10Gi", json!({})),
        volume("right", "2Gi", json!({})),
        volume("exact", "1024Mi", json!({})),
    ];
    assert_eq!(pick(&claim(json!({})), &volumes, None), Some("exact"));
}

#[test]
fn class_modes_phase_selector_and_claim_ref_rule_volumes_out() {
    let c = claim(json!({"spec": {"selector": {"matchLabels": {"tier": "db"}}}}));
    let labelled = json!({"metadata": {"labels": {"tier": "db"}}});
    let cases = [
        (json!({"spec": {"storageClassName": "slow"}}), false),
        (json!({"spec": {"accessModes": ["ReadOnlyMany"]}}), false),
        (json!({"status": {"phase": "Released"}}), false),
        (json!({"spec": {"volumeMode": "Block"}}), false),
        (
            json!({"spec": {"claimRef": {"namespace": "default", "name": "other"}}}),
            false,
        ),
        (json!({"metadata": {"labels": {"tier": "web"}}}), false),
        (
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
            false,
        ),
        (labelled.clone(), true),
    ];
    for (extra, fits) in cases {
        let mut v = volume("v", "5Gi", labelled.clone());
        let mut raw = serde_json::to_value(&v).unwrap();
        merge(&mut raw, extra.clone());
        v = serde_json::from_value(raw).unwrap();
        assert_eq!(
            pick(&c, std::slice::from_ref(&v), None).is_some(),
            fits,
            "{extra}"
        );
    }
}

#[test]
fn a_pre_bound_volume_is_taken_even_when_not_available() {
    let bound = volume(
        "mine",
        "1Gi",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "u1"},
                        "storageClassName": "other"},
               "status": {"phase": "Bound"}}),
    );
    let stale_uid = volume(
        "stale",
        "1Gi",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "u0"}}}),
    );
    let volumes = [volume("free", "1Gi", json!({})), bound];
    assert_eq!(pick(&claim(json!({})), &volumes, None), Some("mine"));
    assert!(!is_bound_to(&stale_uid, &claim(json!({}))));
}

#[test]
fn waiting_for_a_consumer_only_pre_bound_volumes_match_without_a_node() {
    let c = claim(json!({}));
    let free = [volume("free", "1Gi", json!({}))];
    assert!(find_match(&c, &free, None, true).is_none());
    let pre = [volume(
        "pre",
        "1Gi",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "data"}}}),
    )];
    assert!(find_match(&c, &pre, None, true).is_some());
}

#[test]
fn node_affinity_decides_which_nodes_reach_a_volume() {
    let pinned = volume(
        "pinned",
        "1Gi",
        json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                   "values": ["a"]}]}]}}}}),
    );
    assert!(node_affinity_admits(&pinned, &node("a", "z1")));
    assert!(!node_affinity_admits(&pinned, &node("b", "z1")));
    let anywhere = volume("anywhere", "1Gi", json!({}));
    assert!(node_affinity_admits(&anywhere, &node("b", "z1")));
    let c = claim(json!({}));
    let volumes = [pinned];
    assert_eq!(pick(&c, &volumes, Some(&node("a", "z1"))), Some("pinned"));
    assert_eq!(pick(&c, &volumes, Some(&node("b", "z1"))), None);
}

#[test]
fn the_beta_annotation_overrides_the_class_field() {
    let c = claim(json!({"metadata": {"annotations": {BETA_STORAGE_CLASS: "slow"}}}));
    assert_eq!(claim_class(&c), "slow");
    assert_eq!(claim_class(&claim(json!({}))), "fast");
}

#[test]
fn the_newest_default_class_wins() {
    let class = |name: &str, created: &str, default: bool| -> StorageClass {
        let annotations = if default {
            json!({IS_DEFAULT_CLASS: "true"})
        } else {
            json!({})
        };
        serde_json::from_value(
            json!({"metadata": {"name": name, "creationTimestamp": created,
            "annotations": annotations}, "provisioner": "p"}),
        )
        .unwrap()
    };
    let classes = [
        class("old", "2024-01-01T00:00:00Z", true),
        class("newer", "2024-06-01T00:00:00Z", true),
        class("newest-not-default", "2025-01-01T00:00:00Z", false),
        class("also-newer", "2024-06-01T00:00:00Z", true),
    ];
    let chosen = default_class(&classes).and_then(|c| c.metadata.name.as_deref());
    assert_eq!(chosen, Some("also-newer"));
    assert!(default_class(&classes[2..3]).is_none());
}

proptest! {
    /// Whatever the sizes, the match is big enough and no bigger than any
    /// other volume that is big enough.
    #[test]
    fn the_match_is_the_smallest_sufficient_volume(
        want in 1u32..100,
        sizes in proptest::collection::vec(1u32..100, 0..8),
    ) {
        let c = claim(json!({"spec": {"resources": {"requests": {"storage": format!("{want}Mi")}}}}));
        let volumes: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| volume(&format!("v{i}"), &format!("{s}Mi"), json!({})))
            .collect();
        let found = find_match(&c, &volumes, None, false);
        let smallest_fit = sizes.iter().filter(|s| **s >= want).min();
        match (found, smallest_fit) {
            (Some(v), Some(best)) => prop_assert_eq!(capacity(v), Quantity::parse(&format!("{best}Mi")).unwrap()),
            (None, None) => {}
            (found, best) => prop_assert!(false, "found {:?}, smallest fit {:?}", found.map(|v| &v.metadata.name), best),
        }
    }
}
