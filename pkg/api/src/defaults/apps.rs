//! `apps/v1` defaults: Deployment, ReplicaSet, StatefulSet, DaemonSet.

use super::core::pvc;
use super::core_pod::template_at;
use super::{at, each, ensure_obj, set_default, set_default_str, str_at};
use serde_json::{Value, json};

pub(super) fn apply(kind: &str, obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    match kind {
        "Deployment" => deployment(spec),
        "ReplicaSet" => set_default(spec, "replicas", json!(1)),
        "StatefulSet" => stateful_set(spec),
        "DaemonSet" => daemon_set(spec),
        _ => return,
    }
    template_at(spec, "template");
}

fn deployment(spec: &mut Value) {
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        set_default_str(strategy, "type", "RollingUpdate");
        if str_at(strategy, "type") == "RollingUpdate"
            && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
}

fn stateful_set(spec: &mut Value) {
    set_default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        if str_at(us, "type").is_empty() {
            set_default_str(us, "type", "RollingUpdate");
            ensure_obj(us, "rollingUpdate");
        }
        if str_at(us, "type") == "RollingUpdate"
            && let Some(ru) = at(us, "rollingUpdate")
        {
            set_default(ru, "partition", json!(0));
        }
    }
    if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default_str(p, "whenDeleted", "Retain");
        set_default_str(p, "whenScaled", "Retain");
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    each(spec, "volumeClaimTemplates", |t| {
        if let Some(meta) = ensure_obj(t, "metadata") {
            set_default(meta, "creationTimestamp", Value::Null);
        }
        pvc(t);
    });
}

fn daemon_set(spec: &mut Value) {
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        set_default_str(us, "type", "RollingUpdate");
        if str_at(us, "type") == "RollingUpdate"
            && let Some(ru) = ensure_obj(us, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
}

#[cfg(test)]
mod tests {
    use crate::defaults::test_util::check;
    use serde_json::{Value, json};

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})
    }

    fn defaulted_template() -> Value {
        json!({"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                        "terminationMessagePolicy": "File"}],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                        "securityContext": {}, "terminationGracePeriodSeconds": 30}})
    }

    #[test]
    fn minimal_deployment() {
        check(
            "apps",
            "Deployment",
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}),
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": defaulted_template(),
                            "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
        );
        check(
            "apps",
            "Deployment",
            json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0, "template": template()}}),
            json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0, "template": defaulted_template(),
                            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}}),
        );
    }

    #[test]
    fn minimal_replica_set_and_daemon_set() {
        check(
            "apps",
            "ReplicaSet",
            json!({"spec": {"template": template()}}),
            json!({"spec": {"template": defaulted_template(), "replicas": 1}}),
        );
        check(
            "apps",
            "DaemonSet",
            json!({"spec": {"template": template()}}),
            json!({"spec": {"template": defaulted_template(), "revisionHistoryLimit": 10,
                            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}}),
        );
    }

    #[test]
    fn minimal_stateful_set() {
        check(
            "apps",
            "StatefulSet",
            json!({"spec": {"serviceName": "web", "template": template(),
                            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            json!({"spec": {"serviceName": "web", "template": defaulted_template(),
                            "podManagementPolicy": "OrderedReady", "replicas": 1, "revisionHistoryLimit": 10,
                            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                            "volumeClaimTemplates": [{"metadata": {"name": "data", "creationTimestamp": null},
                                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                                         "volumeMode": "Filesystem"},
                                "status": {"phase": "Pending"}}]}}),
        );
    }
}
