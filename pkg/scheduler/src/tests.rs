//! Decision tests: filters, scores and messages on hand-made nodes and pods.

use crate::filter::{self, PodFacts, Rejection};
use crate::message::{fit_error, pre_filter_error};
use crate::node_info::{NodeInfo, PodUsage};
use crate::score;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use std::sync::Arc;

fn node(name: &str, cpu: &str, extra: Value) -> NodeInfo {
    let mut object = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    merge(&mut object, extra);
    let node: Node = serde_json::from_value(object).expect("node");
    NodeInfo::new(Arc::new(node))
}

fn pod(spec: Value) -> Pod {
    let mut object = json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    merge(&mut object, json!({"spec": spec}));
    serde_json::from_value(object).expect("pod")
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn reasons(pod: &Pod, node: &NodeInfo) -> Result<(), Vec<String>> {
    filter::check(&PodFacts::new(pod), node).map_err(|r| r.reasons)
}

fn requesting(cpu: &str) -> Value {
    json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]})
}

#[test]
fn a_plain_pod_fits_a_ready_node() {
    assert_eq!(reasons(&pod(json!({})), &node("a", "2", json!({}))), Ok(()));
}

#[test]
fn requests_beyond_what_is_left_are_insufficient() {
    let mut busy = node("a", "2", json!({}));
    busy.add_pod("default/x", PodUsage::of(&pod(requesting("1500m"))));
    assert_eq!(reasons(&pod(requesting("500m")), &busy), Ok(()));
    let rejection =
        filter::check(&PodFacts::new(&pod(requesting("600m"))), &busy).expect_err("does not fit");
    assert_eq!(rejection.reasons, vec!["Insufficient cpu"]);
    // Evicting the other pod would make room: preemption could help.
    assert!(rejection.resolvable);
    let too_big = filter::check(&PodFacts::new(&pod(requesting("3"))), &busy).expect_err("never");
    assert!(!too_big.resolvable);
}

#[test]
fn extended_resources_the_node_lacks_are_insufficient() {
    let gpu = pod(json!({"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"example.com/gpu": "1"}}}]}));
    assert_eq!(
        reasons(&gpu, &node("a", "2", json!({}))),
        Err(vec!["Insufficient example.com/gpu".to_string()])
    );
    let with_gpu = node(
        "b",
        "2",
        json!({"status": {"allocatable": {"example.com/gpu": "2"}}}),
    );
    assert_eq!(reasons(&gpu, &with_gpu), Ok(()));
}

#[test]
fn a_full_node_has_too_many_pods() {
    let mut small = node("a", "2", json!({"status": {"allocatable": {"pods": "1"}}}));
    small.add_pod("default/x", PodUsage::of(&pod(json!({}))));
    assert_eq!(
        reasons(&pod(json!({})), &small),
        Err(vec!["Too many pods".to_string()])
    );
}

#[test]
fn taints_need_tolerations() {
    let tainted = node(
        "a",
        "2",
        json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(
        reasons(&pod(json!({})), &tainted),
        Err(vec![
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }".to_string()
        ])
    );
    let tolerant = pod(json!({"tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    ]}));
    assert_eq!(reasons(&tolerant, &tainted), Ok(()));
    let wrong_value = pod(json!({"tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "x"}
    ]}));
    assert!(reasons(&wrong_value, &tainted).is_err());
    let everything = pod(json!({"tolerations": [{"operator": "Exists"}]}));
    assert_eq!(reasons(&everything, &tainted), Ok(()));
}

#[test]
fn a_node_that_is_not_ready_counts_as_tainted_not_ready() {
    let not_ready = node(
        "a",
        "2",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    assert_eq!(
        reasons(&pod(json!({})), &not_ready),
        Err(vec![
            "node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_string()
        ])
    );
}

#[test]
fn unschedulable_nodes_reject_pods() {
    let cordoned = node("a", "2", json!({"spec": {"unschedulable": true}}));
    assert_eq!(
        reasons(&pod(json!({})), &cordoned),
        Err(vec!["node(s) were unschedulable".to_string()])
    );
}

#[test]
fn node_selector_and_required_affinity_must_match() {
    let ssd = node(
        "a",
        "2",
        json!({"metadata": {"labels": {"disk": "ssd", "rank": "5"}}}),
    );
    let hdd = node("b", "2", json!({"metadata": {"labels": {"disk": "hdd"}}}));
    let selector = pod(json!({"nodeSelector": {"disk": "ssd"}}));
    assert_eq!(reasons(&selector, &ssd), Ok(()));
    assert_eq!(
        reasons(&selector, &hdd),
        Err(vec![
            "node(s) didn't match Pod's node affinity/selector".to_string()
        ])
    );
    let affinity = pod(
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["3"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]},
        ]}}}}),
    );
    assert_eq!(reasons(&affinity, &ssd), Ok(()));
    assert!(reasons(&affinity, &hdd).is_err());
    assert_eq!(reasons(&affinity, &node("c", "2", json!({}))), Ok(()));
}

#[test]
fn host_ports_conflict_on_the_same_protocol_and_port() {
    let web = pod(json!({"containers": [{"name": "c", "image": "i",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]}));
    let mut used = node("a", "2", json!({}));
    used.add_pod("default/x", PodUsage::of(&web));
    assert_eq!(
        reasons(&web, &used),
        Err(vec![
            "node(s) didn't have free ports for the requested pod ports".to_string()
        ])
    );
    let udp = pod(json!({"containers": [{"name": "c", "image": "i",
        "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}]}));
    assert_eq!(reasons(&udp, &used), Ok(()));
}

#[test]
fn the_emptier_node_scores_higher() {
    let mut busy = node("a", "4", json!({}));
    busy.add_pod("default/x", PodUsage::of(&pod(requesting("3"))));
    let idle = node("b", "4", json!({}));
    let p = pod(requesting("100m"));
    let facts = PodFacts::new(&p);
    let scores = score::score(&facts, &[&busy, &idle]);
    assert!(scores[1] > scores[0], "{scores:?}");
}

#[test]
fn preferred_affinity_and_prefer_no_schedule_steer_the_choice() {
    let plain = node("a", "4", json!({}));
    let labelled = node("b", "4", json!({"metadata": {"labels": {"zone": "z1"}}}));
    let p = pod(
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}}
        ]}}}),
    );
    let scores = score::score(&PodFacts::new(&p), &[&plain, &labelled]);
    assert!(scores[1] > scores[0], "{scores:?}");

    let soft = node(
        "c",
        "4",
        json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]}}),
    );
    let q = pod(json!({}));
    assert_eq!(reasons(&q, &soft), Ok(()));
    let scores = score::score(&PodFacts::new(&q), &[&soft, &plain]);
    assert!(scores[1] > scores[0], "{scores:?}");
}

#[test]
fn the_failure_message_is_worded_as_kube_scheduler_words_it() {
    let cpu = Rejection {
        reasons: vec!["Insufficient cpu".into()],
        resolvable: false,
    };
    let taint = Rejection {
        reasons: vec![
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }".into(),
        ],
        resolvable: false,
    };
    assert_eq!(
        fit_error(3, &[cpu.clone(), taint.clone(), taint], false),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
         {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling."
    );
    let full = Rejection {
        reasons: vec!["Insufficient cpu".into(), "Insufficient memory".into()],
        resolvable: true,
    };
    assert_eq!(
        fit_error(2, &[full, cpu], false),
        "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. preemption: \
         0/2 nodes are available: 1 No preemption victims found for incoming pod, \
         1 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        fit_error(0, &[], false),
        "no nodes available to schedule pods"
    );
}

#[test]
fn large_clusters_score_a_share_of_the_nodes() {
    use crate::schedule_feasible as f;
    assert_eq!(f(3), 3);
    assert_eq!(f(100), 100);
    assert_eq!(f(1000), 420);
    assert_eq!(f(5000), 500);
}

proptest::proptest! {
    #[test]
    fn a_pod_fits_exactly_when_its_cpu_request_is_within_what_is_left(
        alloc in 1i64..64_000, used in 0i64..64_000, want in 1i64..64_000,
    ) {
        let mut n = node("a", &format!("{alloc}m"), json!({}));
        n.add_pod("default/x", PodUsage::of(&pod(requesting(&format!("{used}m")))));
        let fits = reasons(&pod(requesting(&format!("{want}m"))), &n).is_ok();
        proptest::prop_assert_eq!(fits, want <= alloc - used);
    }
}

#[test]
fn a_pre_filter_rejection_stands_alone_in_the_message() {
    assert_eq!(
        pre_filter_error(1, "pod has unbound immediate PersistentVolumeClaims", false),
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        pre_filter_error(3, "persistentvolumeclaim \"x\" not found", true),
        "0/3 nodes are available: persistentvolumeclaim \"x\" not found. preemption: not eligible due to preemptionPolicy=Never."
    );
    assert_eq!(
        pre_filter_error(0, "anything", false),
        "no nodes available to schedule pods"
    );
}

mod inter_pod_tests {
    use super::*;
    use crate::inter_pod::{self, Placed, Snapshot};
    use std::collections::HashMap;

    fn zoned(name: &str, zone: &str) -> NodeInfo {
        node(
            name,
            "4",
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}}),
        )
    }

    fn labelled(name: &str, labels: Value, spec: Value) -> Arc<Pod> {
        let mut p = pod(spec);
        p.metadata.name = Some(name.into());
        p.metadata.labels = serde_json::from_value(labels).expect("labels");
        Arc::new(p)
    }

    fn cluster() -> HashMap<String, NodeInfo> {
        [("a1", "a"), ("a2", "a"), ("b1", "b")]
            .iter()
            .map(|(n, z)| (n.to_string(), zoned(n, z)))
            .collect()
    }

    fn verdicts(
        pod: &Pod,
        nodes: &HashMap<String, NodeInfo>,
        placed: &[Placed],
    ) -> Vec<(String, Result<(), Rejection>)> {
        verdicts_with(pod, nodes, placed, &inter_pod::NamespaceLabels::new())
    }

    fn verdicts_with(
        pod: &Pod,
        nodes: &HashMap<String, NodeInfo>,
        placed: &[Placed],
        namespaces: &inter_pod::NamespaceLabels,
    ) -> Vec<(String, Result<(), Rejection>)> {
        let snapshot = Snapshot::new(pod, nodes, placed, namespaces);
        let facts = PodFacts::new(pod);
        let mut names: Vec<&String> = nodes.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let info = &nodes[n];
                let verdict = snapshot
                    .filter_spread(&facts, info)
                    .and_then(|()| snapshot.filter_affinity(&facts, info));
                (n.clone(), verdict)
            })
            .collect()
    }

    fn fits(verdicts: &[(String, Result<(), Rejection>)]) -> Vec<&str> {
        verdicts
            .iter()
            .filter(|(_, v)| v.is_ok())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn anti_affinity_keeps_replicas_apart_per_host_and_zone() {
        let nodes = cluster();
        let web = json!({"app": "web"});
        let anti = |key: &str| {
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": key}]}}})
        };
        let placed = vec![Placed {
            node: "a1".into(),
            pod: labelled("web-1", web.clone(), anti("kubernetes.io/hostname")),
        }];
        let incoming = labelled("web-2", web.clone(), anti("kubernetes.io/hostname"));
        let v = verdicts(&incoming, &nodes, &placed);
        assert_eq!(fits(&v), ["a2", "b1"]);
        // The incoming pod's own anti-affinity is checked before web-1's, as kube-scheduler does.
        assert_eq!(
            v[0].1.as_ref().unwrap_err().reasons,
            [inter_pod::ANTI_AFFINITY]
        );

        let by_zone = labelled("web-2", web.clone(), anti("topology.kubernetes.io/zone"));
        assert_eq!(fits(&verdicts(&by_zone, &nodes, &placed)), ["b1"]);

        // An existing pod's anti-affinity repels a plain pod it matches.
        let plain = labelled("web-3", web, json!({}));
        let v = verdicts(&plain, &nodes, &placed);
        assert_eq!(fits(&v), ["a2", "b1"]);
        assert_eq!(
            v[0].1.as_ref().unwrap_err().reasons,
            [inter_pod::EXISTING_ANTI_AFFINITY]
        );
    }

    #[test]
    fn a_namespace_selector_covers_the_namespaces_whose_labels_match() {
        let nodes = cluster();
        let affinity = |namespace_selector: Value| {
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname",
             "namespaceSelector": namespace_selector}]}}})
        };
        let mut cache = (*labelled("cache", json!({"app": "cache"}), json!({}))).clone();
        cache.metadata.namespace = Some("shared".into());
        let placed = vec![Placed {
            node: "b1".into(),
            pod: Arc::new(cache),
        }];
        let namespaces: inter_pod::NamespaceLabels =
            [("default", json!({})), ("shared", json!({"team": "infra"}))]
                .into_iter()
                .map(|(n, l)| (n.to_string(), serde_json::from_value(l).unwrap()))
                .collect();
        let selecting = labelled(
            "web",
            json!({}),
            affinity(json!({"matchLabels": {"team": "infra"}})),
        );
        assert_eq!(
            fits(&verdicts_with(&selecting, &nodes, &placed, &namespaces)),
            ["b1"]
        );
        // A selector matching no namespace covers none: the term cannot be met
        // by any pod, and the pod's own labels do not match it either.
        let other = labelled(
            "web",
            json!({}),
            affinity(json!({"matchLabels": {"team": "web"}})),
        );
        assert!(fits(&verdicts_with(&other, &nodes, &placed, &namespaces)).is_empty());
        // Without a selector the term covers only the pod's own namespace.
        let mut own = affinity(json!({}));
        own["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
            .as_object_mut()
            .unwrap()
            .remove("namespaceSelector");
        let plain = labelled("web", json!({}), own);
        assert!(fits(&verdicts_with(&plain, &nodes, &placed, &namespaces)).is_empty());
    }

    #[test]
    fn affinity_follows_matching_pods_and_lets_the_first_one_anywhere() {
        let nodes = cluster();
        let affinity = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}});
        let placed = vec![Placed {
            node: "b1".into(),
            pod: labelled("cache-1", json!({"app": "cache"}), json!({})),
        }];
        let web = labelled("web", json!({"app": "web"}), affinity.clone());
        let v = verdicts(&web, &nodes, &placed);
        assert_eq!(fits(&v), ["b1"]);
        assert_eq!(
            v[0].1.as_ref().unwrap_err(),
            &Rejection {
                reasons: vec![inter_pod::AFFINITY.into()],
                resolvable: false
            }
        );
        // Nothing matches yet, but the pod matches its own term: it may start the group.
        let first = labelled("cache-0", json!({"app": "cache"}), affinity);
        assert_eq!(fits(&verdicts(&first, &nodes, &[])), ["a1", "a2", "b1"]);
        assert!(fits(&verdicts(&web, &nodes, &[])).is_empty());
    }

    #[test]
    fn spread_constraints_bound_the_skew() {
        let nodes = cluster();
        let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
        let web = json!({"app": "web"});
        let placed = vec![
            Placed {
                node: "a1".into(),
                pod: labelled("web-1", web.clone(), json!({})),
            },
            Placed {
                node: "a2".into(),
                pod: labelled("web-2", web.clone(), json!({})),
            },
        ];
        let incoming = labelled("web-3", web.clone(), spread.clone());
        let v = verdicts(&incoming, &nodes, &placed);
        // Zone a has 2, zone b 0: another in a would make the skew 3.
        assert_eq!(fits(&v), ["b1"]);
        assert_eq!(v[0].1.as_ref().unwrap_err().reasons, [inter_pod::SPREAD]);
        let mut unlabelled = nodes.clone();
        unlabelled.insert("bare".into(), node("bare", "4", json!({})));
        let v = verdicts(&incoming, &unlabelled, &placed);
        assert_eq!(
            v.iter()
                .find(|(n, _)| n == "bare")
                .unwrap()
                .1
                .as_ref()
                .unwrap_err()
                .reasons,
            [inter_pod::SPREAD_MISSING_LABEL]
        );
    }

    #[test]
    fn preferred_anti_affinity_scores_emptier_domains_higher() {
        let nodes = cluster();
        let placed = vec![Placed {
            node: "a1".into(),
            pod: labelled("web-1", json!({"app": "web"}), json!({})),
        }];
        let incoming = labelled(
            "web-2",
            json!({"app": "web"}),
            json!({"affinity": {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "topology.kubernetes.io/zone"}}]}}}),
        );
        let no_namespaces = inter_pod::NamespaceLabels::new();
        let snapshot = Snapshot::new(&incoming, &nodes, &placed, &no_namespaces);
        let facts = PodFacts::new(&incoming);
        let order = [&nodes["a1"], &nodes["a2"], &nodes["b1"]];
        let (affinity, _) = snapshot.scores(&facts, &order);
        assert_eq!(inter_pod::normalize(&affinity, false), [0, 0, 100]);
    }
}
