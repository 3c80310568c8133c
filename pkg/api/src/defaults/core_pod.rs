//! Pod spec defaults: pods, pod templates, containers, probes and volumes.
//!
//! Some defaults only materialise on Pods, never in templates (requests
//! copied from limits, `enableServiceLinks`, host-network host ports,
//! priority): kube-apiserver keeps them out of templates so that adding
//! one does not roll every Deployment.

use super::{at, each, ensure_obj, present, set_default, set_default_str, str_at};
use crate::validation::quantity::{Quantity, canonicalize};
use serde_json::{Value, json};

/// Defaults a Pod object (its spec, with the Pod-only defaults).
pub(crate) fn pod(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    pod_spec(spec);
    set_default(spec, "enableServiceLinks", json!(true));
    // `priority` and `preemptionPolicy` are the Priority admission plugin's
    // (crate::admission::priority), which must tell them from a client's.
    for list in ["initContainers", "containers"] {
        each(spec, list, requests_from_limits);
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for list in ["initContainers", "containers"] {
            each(spec, list, |c| {
                each(c, "ports", |p| {
                    let cp = p.get("containerPort").cloned().unwrap_or(Value::Null);
                    if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0
                        && let Some(m) = p.as_object_mut()
                    {
                        m.insert("hostPort".into(), cp);
                    }
                })
            });
        }
    }
}

/// Defaults a `PodTemplateSpec` (as embedded in workloads) at `v[key]`.
pub(crate) fn template_at(v: &mut Value, key: &str) {
    let Some(tmpl) = ensure_obj(v, key) else {
        return;
    };
    if let Some(meta) = ensure_obj(tmpl, "metadata") {
        // kube-apiserver 1.33 serialises the zero time of an embedded object as null.
        set_default(meta, "creationTimestamp", Value::Null);
    }
    if let Some(spec) = ensure_obj(tmpl, "spec") {
        pod_spec(spec);
    }
}

/// Defaults shared by Pods and templates (`SetDefaults_PodSpec` and its parts).
pub(crate) fn pod_spec(spec: &mut Value) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_str(spec, "schedulerName", "default-scheduler");
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        each(spec, list, container);
    }
    each(spec, "volumes", volume);
}

fn container(c: &mut Value) {
    let policy = if image_tag(str_at(c, "image")) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default_str(c, "imagePullPolicy", policy);
    set_default_str(c, "terminationMessagePath", "/dev/termination-log");
    set_default_str(c, "terminationMessagePolicy", "File");
    if let Some(r) = ensure_obj(c, "resources") {
        for list in ["limits", "requests"] {
            if let Some(m) = r.get_mut(list).and_then(Value::as_object_mut) {
                m.values_mut().for_each(canonicalize);
            }
        }
    }
    each(c, "ports", |p| set_default_str(p, "protocol", "TCP"));
    each(c, "env", |e| {
        if let Some(from) = at(e, "valueFrom")
            && let Some(f) = at(from, "fieldRef")
        {
            set_default_str(f, "apiVersion", "v1");
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = at(c, probe) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            handler(p);
        }
    }
    if let Some(lc) = at(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = at(lc, hook) {
                handler(h);
            }
        }
    }
}

fn handler(h: &mut Value) {
    if let Some(g) = at(h, "httpGet") {
        set_default_str(g, "path", "/");
        set_default_str(g, "scheme", "HTTP");
    }
}

/// The tag an image reference pulls: `latest` when it names neither a tag nor a digest.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if digest => "",
        None => "latest",
    }
}

use crate::validation::pod::VOLUME_SOURCES;

fn volume(v: &mut Value) {
    if !VOLUME_SOURCES.iter().any(|s| present(v, s)) {
        set_default(v, "emptyDir", json!({}));
    }
    volume_source(v);
    if let Some(e) = at(v, "ephemeral")
        && let Some(t) = at(e, "volumeClaimTemplate")
        && let Some(spec) = at(t, "spec")
    {
        pvc_spec(spec);
    }
    if let Some(img) = at(v, "image") {
        let policy = if image_tag(str_at(img, "reference")) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        set_default_str(img, "pullPolicy", policy);
    }
}

/// Defaults of volume sources shared by pod volumes and PersistentVolumes.
pub(crate) fn volume_source(v: &mut Value) {
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = at(v, src) {
            set_default(s, "defaultMode", json!(420));
            each(s, "items", |i| {
                if let Some(f) = at(i, "fieldRef") {
                    set_default_str(f, "apiVersion", "v1");
                }
            });
            each(s, "sources", |p| {
                if let Some(t) = at(p, "serviceAccountToken") {
                    set_default(t, "expirationSeconds", json!(3600));
                }
                if let Some(d) = at(p, "downwardAPI") {
                    each(d, "items", |i| {
                        if let Some(f) = at(i, "fieldRef") {
                            set_default_str(f, "apiVersion", "v1");
                        }
                    });
                }
            });
        }
    }
    if let Some(h) = at(v, "hostPath") {
        set_default(h, "type", json!(""));
    }
    if let Some(i) = at(v, "iscsi") {
        set_default_str(i, "iscsiInterface", "default");
    }
    if let Some(r) = at(v, "rbd") {
        set_default_str(r, "pool", "rbd");
        set_default_str(r, "user", "admin");
        set_default_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = at(v, "azureDisk") {
        set_default_str(a, "cachingMode", "ReadWrite");
        set_default_str(a, "fsType", "ext4");
        set_default(a, "readOnly", json!(false));
        set_default_str(a, "kind", "Shared");
    }
}

/// `PersistentVolumeClaimSpec` defaults.
pub(crate) fn pvc_spec(spec: &mut Value) {
    set_default_str(spec, "volumeMode", "Filesystem");
    if let Some(r) = at(spec, "resources") {
        for list in ["limits", "requests"] {
            if let Some(m) = r.get_mut(list).and_then(Value::as_object_mut) {
                m.values_mut().for_each(canonicalize);
            }
        }
    }
}

/// A Pod container with limits but no request for a resource requests its limit.
fn requests_from_limits(c: &mut Value) {
    let Some(limits) = c
        .pointer("/resources/limits")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let Some(r) = ensure_obj(c, "resources") else {
        return;
    };
    let Some(req) = ensure_obj(r, "requests") else {
        return;
    };
    for (k, v) in limits {
        set_default(req, &k, v);
    }
}

/// The QoS class kube-apiserver records in `status.qosClass` for a pod spec.
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    let containers = ["initContainers", "containers"].iter().flat_map(|l| {
        spec.get(*l)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    });
    for c in containers {
        let list = |name: &str| {
            let mut out = Vec::new();
            if let Some(m) = c
                .pointer(&format!("/resources/{name}"))
                .and_then(Value::as_object)
            {
                for res in ["cpu", "memory"] {
                    if let Some(q) = m.get(res).and_then(|v| Quantity::from_json(v).ok())
                        && !q.is_zero()
                    {
                        out.push((res, q));
                    }
                }
            }
            out
        };
        let (req, lim) = (list("requests"), list("limits"));
        any |= !req.is_empty() || !lim.is_empty();
        if lim.len() < 2
            || req
                .iter()
                .any(|(r, q)| lim.iter().any(|(l, lq)| l == r && lq != q))
        {
            guaranteed = false;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// What the Pod strategy does on create: `status` becomes `{phase: Pending, qosClass: ...}`.
pub fn prepare_pod_for_create(obj: &mut Value) {
    let qos = pod_qos_class(obj.get("spec").unwrap_or(&Value::Null));
    if let Some(m) = obj.as_object_mut() {
        m.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::test_util::check;

    #[test]
    fn minimal_pod_gets_what_kubectl_shows() {
        check(
            "",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                   "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                   "spec": {
                       "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                                       "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                       "terminationMessagePolicy": "File"}],
                       "dnsPolicy": "ClusterFirst", "enableServiceLinks": true,
                       "restartPolicy": "Always", "schedulerName": "default-scheduler",
                       "securityContext": {}, "terminationGracePeriodSeconds": 30}}),
        );
    }

    #[test]
    fn pod_parts_are_defaulted() {
        let mut pod = json!({"spec": {
            "hostNetwork": true,
            "containers": [{"name": "c", "image": "registry:5000/app:1.2",
                "ports": [{"containerPort": 8080}],
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"}},
                "livenessProbe": {"httpGet": {"port": 8080}},
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5}}],
            "volumes": [{"name": "a", "configMap": {"name": "x"}}, {"name": "b"},
                        {"name": "c", "hostPath": {"path": "/x"}}, {"name": "d", "secret": {"secretName": "s"}},
                        {"name": "e", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}});
        super::pod(&mut pod);
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            c["ports"][0],
            json!({"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            c["resources"],
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
        );
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
                   "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        let v = &pod["spec"]["volumes"];
        assert_eq!(v[0]["configMap"]["defaultMode"], 420);
        assert_eq!(v[1]["emptyDir"], json!({}));
        assert_eq!(v[2]["hostPath"]["type"], "");
        assert_eq!(v[3]["secret"]["defaultMode"], 420);
        assert_eq!(
            v[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:v1", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
        ] {
            let mut c = json!({"image": image});
            container(&mut c);
            assert_eq!(c["imagePullPolicy"], policy, "{image}");
        }
    }

    #[test]
    fn set_values_are_kept() {
        let mut pod = json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "Default", "terminationGracePeriodSeconds": 0,
            "containers": [{"image": "x", "imagePullPolicy": "Never"}]}});
        super::pod(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["dnsPolicy"], "Default");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn qos_classes() {
        let spec = |res: Value| json!({"containers": [{"resources": res}]});
        assert_eq!(pod_qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            pod_qos_class(&spec(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            pod_qos_class(&spec(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        let mut pod = json!({"spec": {"containers": [{"image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        super::pod(&mut pod);
        prepare_pod_for_create(&mut pod);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
    }
}
