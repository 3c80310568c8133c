//! The bootstrap RBAC policy: the default ClusterRoles and ClusterRoleBindings
//! of a Kubernetes 1.33 cluster that users and tools rely on (cluster-admin,
//! admin/edit/view with their aggregation, discovery, basic-user,
//! public-info-viewer, the component roles), labelled
//! `kubernetes.io/bootstrapping: rbac-defaults` and annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`.
//!
//! [`ensure`] runs at every start: it creates what is missing and, for objects
//! still marked autoupdate, adds missing rules, subjects, labels and
//! annotations (never removing what users added), as kube-apiserver's
//! `rbac/bootstrap-roles` post-start hook reconciles them.
//!
//! One deliberate difference: kite has no Node authorizer, so `system:node`
//! is bound to the `system:nodes` group.

use crate::objects;
use crate::registry::Registry;
use crate::strategy;
use kite_store::Backend;
use serde_json::{Value, json};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const READ: &str = "get list watch";
const WRITE: &str = "create delete deletecollection patch update";
const READ_WRITE: &str = "create delete deletecollection get list patch update watch";
const EVENTS: &str = "create patch update";

/// Splits a space-separated list; `core` stands for the core group `""`.
fn list(words: &str) -> Vec<String> {
    words
        .split_whitespace()
        .map(|w| {
            if w == "core" {
                String::new()
            } else {
                w.to_string()
            }
        })
        .collect()
}

/// A resource rule: `verbs` on `resources` in `groups`.
fn rule(verbs: &str, groups: &str, resources: &str) -> Value {
    json!({"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)})
}

/// A resource rule limited to `names`.
fn named(verbs: &str, groups: &str, resources: &str, names: &str) -> Value {
    let mut r = rule(verbs, groups, resources);
    r["resourceNames"] = json!(list(names));
    r
}

/// A non-resource rule.
fn urls(verbs: &str, paths: &str) -> Value {
    json!({"verbs": list(verbs), "nonResourceURLs": list(paths)})
}

fn aggregate_label(to: &str) -> String {
    format!("rbac.authorization.k8s.io/aggregate-to-{to}")
}

/// A default ClusterRole: name, extra labels (`aggregate-to-*`), the label it aggregates (if any), rules.
struct Role {
    name: &'static str,
    aggregate_to: &'static [&'static str],
    aggregates: Option<&'static str>,
    rules: Vec<Value>,
}

fn roles() -> Vec<Role> {
    let plain = |name, rules| Role {
        name,
        aggregate_to: &[],
        aggregates: None,
        rules,
    };
    vec![
        plain("cluster-admin", vec![rule("*", "*", "*"), urls("*", "*")]),
        Role {
            name: "admin",
            aggregate_to: &[],
            aggregates: Some("admin"),
            rules: vec![],
        },
        Role {
            name: "edit",
            aggregate_to: &["admin"],
            aggregates: Some("edit"),
            rules: vec![],
        },
        Role {
            name: "view",
            aggregate_to: &["edit"],
            aggregates: Some("view"),
            rules: vec![],
        },
        Role {
            name: "system:aggregate-to-admin",
            aggregate_to: &["admin"],
            aggregates: None,
            rules: vec![
                rule(
                    "create",
                    "authorization.k8s.io",
                    "localsubjectaccessreviews",
                ),
                rule(READ_WRITE, RBAC_GROUP, "rolebindings roles"),
            ],
        },
        Role {
            name: "system:aggregate-to-edit",
            aggregate_to: &["edit"],
            aggregates: None,
            rules: vec![
                rule(
                    READ,
                    "core",
                    "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy",
                ),
                rule("impersonate", "core", "serviceaccounts"),
                rule(
                    WRITE,
                    "core",
                    "pods pods/attach pods/exec pods/portforward pods/proxy",
                ),
                rule("create", "core", "pods/eviction"),
                rule(
                    WRITE,
                    "core",
                    "configmaps events persistentvolumeclaims replicationcontrollers replicationcontrollers/scale secrets serviceaccounts services services/proxy",
                ),
                rule("create", "core", "serviceaccounts/token"),
                rule(
                    WRITE,
                    "apps",
                    "daemonsets deployments deployments/rollback deployments/scale replicasets replicasets/scale statefulsets statefulsets/scale",
                ),
                rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
                rule(WRITE, "batch", "cronjobs jobs"),
                rule(
                    WRITE,
                    "extensions",
                    "daemonsets deployments deployments/rollback deployments/scale ingresses networkpolicies replicasets replicasets/scale replicationcontrollers/scale",
                ),
                rule(WRITE, "policy", "poddisruptionbudgets"),
                rule(WRITE, "networking.k8s.io", "ingresses networkpolicies"),
            ],
        },
        Role {
            name: "system:aggregate-to-view",
            aggregate_to: &["view"],
            aggregates: None,
            rules: vec![
                rule(
                    READ,
                    "core",
                    "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods replicationcontrollers replicationcontrollers/scale serviceaccounts services services/status",
                ),
                rule(
                    READ,
                    "core",
                    "bindings events limitranges namespaces/status pods/log pods/status replicationcontrollers/status resourcequotas resourcequotas/status",
                ),
                rule(READ, "core", "namespaces"),
                rule(READ, "discovery.k8s.io", "endpointslices"),
                rule(
                    READ,
                    "apps",
                    "controllerrevisions daemonsets daemonsets/status deployments deployments/scale deployments/status replicasets replicasets/scale replicasets/status statefulsets statefulsets/scale statefulsets/status",
                ),
                rule(
                    READ,
                    "autoscaling",
                    "horizontalpodautoscalers horizontalpodautoscalers/status",
                ),
                rule(READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
                rule(
                    READ,
                    "extensions",
                    "daemonsets daemonsets/status deployments deployments/scale deployments/status ingresses ingresses/status networkpolicies replicasets replicasets/scale replicasets/status replicationcontrollers/scale",
                ),
                rule(
                    READ,
                    "policy",
                    "poddisruptionbudgets poddisruptionbudgets/status",
                ),
                rule(
                    READ,
                    "networking.k8s.io",
                    "ingresses ingresses/status networkpolicies",
                ),
            ],
        },
        plain(
            "system:discovery",
            vec![urls(
                "get",
                "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/",
            )],
        ),
        plain(
            "system:basic-user",
            vec![
                rule(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews selfsubjectrulesreviews",
                ),
                rule("create", "authentication.k8s.io", "selfsubjectreviews"),
            ],
        ),
        plain(
            "system:public-info-viewer",
            vec![urls("get", "/healthz /livez /readyz /version /version/")],
        ),
        plain(
            "system:monitoring",
            vec![urls(
                "get",
                "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*",
            )],
        ),
        plain(
            "system:auth-delegator",
            vec![
                rule("create", "authentication.k8s.io", "tokenreviews"),
                rule("create", "authorization.k8s.io", "subjectaccessreviews"),
            ],
        ),
        plain(
            "system:service-account-issuer-discovery",
            vec![urls(
                "get",
                "/.well-known/openid-configuration /openid/v1/jwks",
            )],
        ),
        plain(
            "system:heapster",
            vec![
                rule(READ, "core", "events namespaces nodes pods"),
                rule(READ, "extensions", "deployments"),
            ],
        ),
        plain(
            "system:kube-dns",
            vec![rule("list watch", "core", "endpoints services")],
        ),
        plain(
            "system:node-bootstrapper",
            vec![rule(
                "create get list watch",
                "certificates.k8s.io",
                "certificatesigningrequests",
            )],
        ),
        plain(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests/nodeclient",
            )],
        ),
        plain(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests/selfnodeclient",
            )],
        ),
        plain(
            "system:node-proxier",
            vec![
                rule("list watch", "core", "endpoints services"),
                rule(READ, "core", "nodes"),
                rule(EVENTS, "core events.k8s.io", "events"),
                rule("list watch", "discovery.k8s.io", "endpointslices"),
            ],
        ),
        plain(
            "system:node",
            vec![
                rule("create", "authentication.k8s.io", "tokenreviews"),
                rule(
                    "create",
                    "authorization.k8s.io",
                    "localsubjectaccessreviews subjectaccessreviews",
                ),
                rule(READ, "core", "services"),
                rule("create get list watch", "core", "nodes"),
                rule("patch update", "core", "nodes/status"),
                rule("patch update", "core", "nodes"),
                rule(EVENTS, "core", "events"),
                rule(READ, "core", "pods"),
                rule("create delete", "core", "pods"),
                rule("patch update", "core", "pods/status"),
                rule("create", "core", "pods/eviction"),
                rule(READ, "core", "configmaps secrets"),
                rule("get", "core", "persistentvolumeclaims persistentvolumes"),
                rule("get", "core", "endpoints"),
                rule(
                    "create get list watch",
                    "certificates.k8s.io",
                    "certificatesigningrequests",
                ),
                rule(
                    "create delete get patch update",
                    "coordination.k8s.io",
                    "leases",
                ),
                rule("get", "storage.k8s.io", "volumeattachments"),
                rule("create", "core", "serviceaccounts/token"),
                rule("get patch update", "core", "persistentvolumeclaims/status"),
                rule(READ, "storage.k8s.io", "csidrivers"),
                rule(
                    "create delete get patch update",
                    "storage.k8s.io",
                    "csinodes",
                ),
                rule(READ, "node.k8s.io", "runtimeclasses"),
            ],
        ),
        plain(
            "system:kube-scheduler",
            vec![
                rule(EVENTS, "core events.k8s.io", "events"),
                rule("create", "coordination.k8s.io", "leases"),
                named(
                    "get update",
                    "coordination.k8s.io",
                    "leases",
                    "kube-scheduler",
                ),
                rule(READ, "core", "nodes"),
                rule("delete get list watch", "core", "pods"),
                rule("create", "core", "bindings pods/binding"),
                rule("patch update", "core", "pods/status"),
                rule(READ, "core", "replicationcontrollers services"),
                rule(READ, "apps extensions", "replicasets"),
                rule(READ, "apps", "statefulsets"),
                rule(READ, "policy", "poddisruptionbudgets"),
                rule(READ, "core", "persistentvolumeclaims persistentvolumes"),
                rule("create", "authentication.k8s.io", "tokenreviews"),
                rule("create", "authorization.k8s.io", "subjectaccessreviews"),
                rule(READ, "storage.k8s.io", "csinodes"),
                rule(READ, "core", "namespaces"),
                rule(READ, "storage.k8s.io", "csidrivers"),
                rule(READ, "storage.k8s.io", "csistoragecapacities"),
            ],
        ),
        plain(
            "system:kube-controller-manager",
            vec![
                rule(EVENTS, "core events.k8s.io", "events"),
                rule("create", "coordination.k8s.io", "leases"),
                named(
                    "get update",
                    "coordination.k8s.io",
                    "leases",
                    "kube-controller-manager",
                ),
                rule("create", "core", "secrets serviceaccounts"),
                rule("delete", "core", "secrets"),
                rule(
                    "get",
                    "core",
                    "configmaps namespaces secrets serviceaccounts",
                ),
                rule("update", "core", "secrets serviceaccounts"),
                rule("create", "authentication.k8s.io", "tokenreviews"),
                rule("create", "authorization.k8s.io", "subjectaccessreviews"),
                rule("list watch", "*", "*"),
                rule("create", "core", "serviceaccounts/token"),
            ],
        ),
        plain(
            "system:volume-scheduler",
            vec![
                rule("get list patch update watch", "core", "persistentvolumes"),
                rule(READ, "storage.k8s.io", "storageclasses"),
                rule(
                    "get list patch update watch",
                    "core",
                    "persistentvolumeclaims",
                ),
            ],
        ),
    ]
}

/// Default ClusterRoleBindings: (name = role name, subjects as (kind, name)).
const BINDINGS: &[(&str, &[(&str, &str)])] = &[
    ("cluster-admin", &[("Group", "system:masters")]),
    ("system:discovery", &[("Group", "system:authenticated")]),
    ("system:basic-user", &[("Group", "system:authenticated")]),
    (
        "system:public-info-viewer",
        &[
            ("Group", "system:authenticated"),
            ("Group", "system:unauthenticated"),
        ],
    ),
    ("system:monitoring", &[("Group", "system:monitoring")]),
    (
        "system:service-account-issuer-discovery",
        &[("Group", "system:serviceaccounts")],
    ),
    ("system:node", &[("Group", "system:nodes")]),
    // Joining nodes may ask for a kubelet client certificate, which is then
    // approved automatically; nodes may renew their own.
    (
        "system:node-bootstrapper",
        &[("Group", "system:bootstrappers")],
    ),
    (
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        &[("Group", "system:bootstrappers")],
    ),
    (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        &[("Group", "system:nodes")],
    ),
    ("system:node-proxier", &[("User", "system:kube-proxy")]),
    (
        "system:kube-controller-manager",
        &[("User", "system:kube-controller-manager")],
    ),
    (
        "system:kube-scheduler",
        &[("User", "system:kube-scheduler")],
    ),
    (
        "system:volume-scheduler",
        &[("User", "system:kube-scheduler")],
    ),
];

fn metadata(name: &str, extra_labels: &[String]) -> Value {
    let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    for label in extra_labels {
        labels[label.as_str()] = json!("true");
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

/// The default ClusterRoles as JSON objects.
pub fn cluster_roles() -> Vec<Value> {
    roles()
        .into_iter()
        .map(|role| {
            let labels: Vec<String> = role.aggregate_to.iter().map(|to| aggregate_label(to)).collect();
            let mut obj = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": metadata(role.name, &labels),
                "rules": role.rules,
            });
            if let Some(to) = role.aggregates {
                obj["aggregationRule"] =
                    json!({"clusterRoleSelectors": [{"matchLabels": {aggregate_label(to): "true"}}]});
            }
            obj
        })
        .collect()
}

/// The default ClusterRoleBindings as JSON objects.
pub fn cluster_role_bindings() -> Vec<Value> {
    BINDINGS
        .iter()
        .map(|(name, subjects)| {
            let subjects: Vec<Value> = subjects
                .iter()
                .map(|(kind, subject)| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}))
                .collect();
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": metadata(name, &[]),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": subjects,
            })
        })
        .collect()
}

/// Creates the default policy objects that are missing and brings autoupdated ones up to date.
pub async fn ensure(store: &dyn Backend, registry: &Registry) -> Result<(), kite_store::Error> {
    for (plural, objects) in [
        ("clusterroles", cluster_roles()),
        ("clusterrolebindings", cluster_role_bindings()),
    ] {
        let Some(resource) = registry.get(RBAC_GROUP, "v1", plural) else {
            continue;
        };
        for wanted in objects {
            reconcile(store, &resource, wanted).await?;
        }
    }
    Ok(())
}

async fn reconcile(
    store: &dyn Backend,
    resource: &kite_api::ResourceInfo,
    mut wanted: Value,
) -> Result<(), kite_store::Error> {
    let key = objects::key(resource, None, objects::name(&wanted));
    let Some(kv) = store.get(&key, 0).await?.1 else {
        strategy::prepare_for_create(resource, &mut wanted, None);
        return match store.create(&key, objects::encode(&wanted), 0).await {
            Ok(_) | Err(kite_store::Error::KeyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        };
    };
    let Ok(mut existing) = objects::decode(&kv.value, kv.mod_revision) else {
        return Ok(());
    };
    if existing
        .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
        .and_then(Value::as_str)
        == Some("false")
    {
        return Ok(());
    }
    let before = existing.clone();
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(want)) = wanted.pointer(&format!("/metadata/{field}")) {
            let meta = objects::metadata_mut(&mut existing);
            if !meta.get(field).is_some_and(Value::is_object) {
                meta.insert(field.into(), json!({}));
            }
            if let Some(Value::Object(have)) = meta.get_mut(field) {
                for (k, v) in want {
                    have.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if wanted.get("aggregationRule").is_some() {
        // The rules of aggregating roles belong to the aggregation controller.
        if existing.get("aggregationRule").is_none_or(Value::is_null) {
            existing["aggregationRule"] = wanted["aggregationRule"].clone();
        }
    } else {
        merge_missing(&mut existing, &wanted, "rules");
    }
    merge_missing(&mut existing, &wanted, "subjects");
    if existing == before {
        return Ok(());
    }
    store
        .update(&key, objects::encode(&existing), kv.mod_revision, 0)
        .await
        .map(|_| ())
}

/// Appends the entries of `wanted[field]` that `existing[field]` lacks.
fn merge_missing(existing: &mut Value, wanted: &Value, field: &str) {
    let Some(want) = wanted.get(field).and_then(Value::as_array) else {
        return;
    };
    if !existing.get(field).is_some_and(Value::is_array) {
        existing[field] = json!([]);
    }
    if let Some(Value::Array(have)) = existing.get_mut(field) {
        for item in want {
            if !have.contains(item) {
                have.push(item.clone());
            }
        }
    }
}
