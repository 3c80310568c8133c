//! Defaults of the smaller groups: networking, discovery, RBAC, scheduling,
//! storage, autoscaling and admission registration.

use super::{at, each, ensure_obj, present, set_default, set_default_str, str_at};
use serde_json::{Value, json};

const RBAC: &str = "rbac.authorization.k8s.io";

pub(super) fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("discovery.k8s.io", "EndpointSlice") => each(obj, "ports", |p| {
            set_default(p, "name", json!(""));
            set_default(p, "protocol", json!("TCP"));
        }),
        (RBAC, "RoleBinding" | "ClusterRoleBinding") => {
            each(obj, "subjects", |s| {
                if str_at(s, "apiGroup").is_empty() && matches!(str_at(s, "kind"), "User" | "Group")
                {
                    set_default_str(s, "apiGroup", RBAC);
                }
            });
            if let Some(r) = at(obj, "roleRef") {
                set_default_str(r, "apiGroup", RBAC);
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            set_default_str(obj, "preemptionPolicy", "PreemptLowerPriority")
        }
        ("storage.k8s.io", "StorageClass") => {
            set_default_str(obj, "reclaimPolicy", "Delete");
            set_default_str(obj, "volumeBindingMode", "Immediate");
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = ensure_obj(obj, "spec") {
                set_default(spec, "attachRequired", json!(true));
                set_default(spec, "podInfoOnMount", json!(false));
                set_default(spec, "storageCapacity", json!(false));
                set_default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
                set_default(spec, "requiresRepublish", json!(false));
                set_default(spec, "seLinuxMount", json!(false));
                if spec
                    .get("volumeLifecycleModes")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
                    && let Some(m) = spec.as_object_mut()
                {
                    m.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
                }
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(obj),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            each(obj, "webhooks", |w| webhook(w, false))
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            each(obj, "webhooks", |w| webhook(w, true))
        }
        _ => {}
    }
}

fn network_policy(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        each(spec, dir, |rule| {
            each(rule, "ports", |p| set_default_str(p, "protocol", "TCP"))
        });
    }
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let mut types = vec![json!("Ingress")];
        if spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            types.push(json!("Egress"));
        }
        if let Some(m) = spec.as_object_mut() {
            m.insert("policyTypes".into(), Value::Array(types));
        }
    }
}

fn hpa(obj: &mut Value) {
    let v1 = str_at(obj, "apiVersion") == "autoscaling/v1";
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if v1 {
        return;
    }
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
        && let Some(m) = spec.as_object_mut()
    {
        m.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
    }
    let Some(b) = at(spec, "behavior") else {
        return;
    };
    if let Some(up) = ensure_obj(b, "scaleUp") {
        set_default(up, "stabilizationWindowSeconds", json!(0));
        set_default_str(up, "selectPolicy", "Max");
        set_default(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    if let Some(down) = ensure_obj(b, "scaleDown") {
        set_default(down, "stabilizationWindowSeconds", json!(300));
        set_default_str(down, "selectPolicy", "Max");
        set_default(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

fn webhook(w: &mut Value, mutating: bool) {
    set_default_str(w, "failurePolicy", "Fail");
    set_default_str(w, "matchPolicy", "Equivalent");
    set_default(w, "namespaceSelector", json!({}));
    set_default(w, "objectSelector", json!({}));
    set_default(w, "timeoutSeconds", json!(10));
    if mutating {
        set_default_str(w, "reinvocationPolicy", "Never");
    }
    each(w, "rules", |r| set_default_str(r, "scope", "*"));
    if let Some(cc) = at(w, "clientConfig")
        && let Some(svc) = at(cc, "service")
        && !present(svc, "port")
    {
        set_default(svc, "port", json!(443));
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::test_util::check;
    use serde_json::json;

    #[test]
    fn rbac_subjects_and_role_refs() {
        check(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "d", "namespace": "x"}],
                   "roleRef": {"kind": "Role", "name": "r"}}),
            json!({"subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                                {"kind": "ServiceAccount", "name": "d", "namespace": "x"}],
                   "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"}}),
        );
    }

    #[test]
    fn network_policy_types_and_ports() {
        check(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}],
                            "policyTypes": ["Ingress", "Egress"]}}),
        );
        check(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}}}),
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        );
    }

    #[test]
    fn storage_scheduling_and_slices() {
        check(
            "storage.k8s.io",
            "StorageClass",
            json!({"provisioner": "rancher.io/local-path"}),
            json!({"provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
        );
        check(
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"value": 10}),
            json!({"value": 10, "preemptionPolicy": "PreemptLowerPriority"}),
        );
        check(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"ports": [{"port": 80}]}),
            json!({"ports": [{"port": 80, "name": "", "protocol": "TCP"}]}),
        );
    }

    #[test]
    fn hpa_v2_defaults() {
        check(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"apiVersion": "autoscaling/v2", "spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
            json!({"apiVersion": "autoscaling/v2", "spec": {"maxReplicas": 5, "minReplicas": 1,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
                "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}}}}),
        );
    }

    #[test]
    fn webhooks() {
        check(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            json!({"webhooks": [{"name": "a.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                                 "clientConfig": {"service": {"name": "s", "namespace": "n"}},
                                 "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]}),
            json!({"webhooks": [{"name": "a.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                                 "clientConfig": {"service": {"name": "s", "namespace": "n", "port": 443}},
                                 "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}],
                                 "failurePolicy": "Fail", "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
                                 "timeoutSeconds": 10, "reinvocationPolicy": "Never"}]}),
        );
    }
}
