use super::*;
use crate::resources::builtin;
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

/// 2024-06-01T12:00:00Z, the "now" of every fixture.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_717_243_200)
}

/// A timestamp `secs` seconds before [`now`].
fn ago(secs: u64) -> String {
    format::format_rfc3339(1_717_243_200 - secs as i64)
}

fn resource(group: &str, kind: &str) -> ResourceInfo {
    builtin()
        .into_iter()
        .find(|r| r.group == group && r.kind == kind)
        .unwrap_or_else(|| ResourceInfo {
            group: group.into(),
            kind: kind.into(),
            ..builtin()[0].clone()
        })
}

fn render(group: &str, kind: &str, obj: Value) -> Value {
    table(
        &resource(group, kind),
        &[obj],
        IncludeObject::Metadata,
        now(),
    )
}

fn headers(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            format!(
                "{}{}",
                c["name"].as_str().expect("name"),
                if c["priority"] == 0 { "" } else { "*" }
            )
        })
        .collect()
}

/// The cells of the single row, as kubectl would print them.
fn cells(t: &Value) -> Vec<String> {
    t["rows"][0]["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            Value::Null => "<none>".into(),
            other => other.to_string(),
        })
        .collect()
}

fn check(group: &str, kind: &str, obj: Value, want: &[&str]) {
    let t = render(group, kind, obj);
    assert_eq!(cells(&t), want, "{kind}");
    assert_eq!(headers(&t).len(), want.len(), "{kind}: one cell per column");
}

fn meta(name: &str, age_secs: u64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age_secs), "uid": "u-1"})
}

fn running(name: &str, restarts: i64) -> Value {
    json!({"name": name, "ready": true, "restartCount": restarts, "state": {"running": {"startedAt": ago(300)}}})
}

#[test]
fn pod_columns_are_kubectls() {
    let t = render("", "Pod", json!({"metadata": meta("p", 1)}));
    assert_eq!(
        headers(&t),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP*",
            "Node*",
            "Nominated Node*",
            "Readiness Gates*"
        ]
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
}

#[test]
fn running_pods_show_ready_counts_and_wide_cells() {
    check(
        "",
        "Pod",
        json!({
            "metadata": meta("web-1", 300),
            "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}],
                     "readinessGates": [{"conditionType": "x/ready"}, {"conditionType": "y/ready"}]},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
                       "conditions": [{"type": "x/ready", "status": "True"}, {"type": "Ready", "status": "False"}],
                       "containerStatuses": [running("a", 0), running("b", 0)]}
        }),
        &[
            "web-1",
            "2/2",
            "Running",
            "0",
            "5m",
            "10.42.0.5",
            "node-a",
            "<none>",
            "1/2",
        ],
    );
}

#[test]
fn crash_looping_pods_show_restarts_with_time_since_last() {
    check(
        "",
        "Pod",
        json!({
            "metadata": meta("crash", 3 * 3600),
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(150)}}
            }]}
        }),
        &[
            "crash",
            "0/1",
            "CrashLoopBackOff",
            "5 (2m30s ago)",
            "3h",
            "<none>",
            "<none>",
            "<none>",
            "<none>",
        ],
    );
}

#[test]
fn init_containers_drive_status_until_initialized() {
    let pod = |init_statuses: Value| {
        json!({
            "metadata": meta("init", 10),
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": init_statuses,
                       "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}
        })
    };
    let waiting = json!({"name": "i1", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}});
    let t = render("", "Pod", pod(json!([waiting, waiting])));
    assert_eq!(cells(&t)[1..4], ["0/1", "Init:0/2", "0"]);
    let done = json!({"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let crash = json!({"name": "i2", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
    let t = render("", "Pod", pod(json!([done, crash])));
    assert_eq!(cells(&t)[1..4], ["0/1", "Init:CrashLoopBackOff", "2"]);
    let failed = json!({"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}});
    assert_eq!(
        cells(&render("", "Pod", pod(json!([failed]))))[2],
        "Init:ExitCode:3"
    );
}

#[test]
fn sidecars_count_towards_ready_containers() {
    check(
        "",
        "Pod",
        json!({
            "metadata": meta("side", 60),
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                       "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                                                  "state": {"running": {}},
                                                  "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}],
                       "containerStatuses": [running("app", 0)]}
        }),
        &[
            "side",
            "2/2",
            "Running",
            "1 (30s ago)",
            "60s",
            "<none>",
            "<none>",
            "<none>",
            "<none>",
        ],
    );
}

#[test]
fn finished_and_deleted_pods() {
    let completed = json!({
        "metadata": meta("job-x", 7200),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    });
    let t = render("", "Pod", completed);
    assert_eq!(cells(&t)[1..5], ["0/1", "Completed", "0", "120m"]);
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");

    let mut deleting = json!({
        "metadata": meta("bye", 60),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running", "containerStatuses": [running("c", 0)]}
    });
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(
        cells(&render("", "Pod", deleting.clone()))[2],
        "Terminating"
    );
    deleting["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells(&render("", "Pod", deleting))[2], "Unknown");

    let evicted = json!({"metadata": meta("ev", 60), "spec": {"containers": [{"name": "c"}]},
                         "status": {"phase": "Failed", "reason": "Evicted"}});
    assert_eq!(cells(&render("", "Pod", evicted))[1..3], ["0/1", "Evicted"]);
}

#[test]
fn nodes_show_status_roles_and_versions() {
    check(
        "",
        "Node",
        json!({
            "metadata": {"name": "n1", "creationTimestamp": ago(3 * 86400 + 7200),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0+kite", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "kite://0.1.0"}}
        }),
        &[
            "n1",
            "Ready,SchedulingDisabled",
            "control-plane,master",
            "3d2h",
            "v1.33.0+kite",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0",
            "kite://0.1.0",
        ],
    );
}

#[test]
fn services_show_ips_and_ports_by_type() {
    let svc = |spec: Value, status: Value| json!({"metadata": meta("s", 86400), "spec": spec, "status": status});
    check(
        "",
        "Service",
        svc(
            json!({"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"], "selector": {"k8s-app": "dns"},
                   "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}),
            json!({}),
        ),
        &[
            "s",
            "ClusterIP",
            "10.43.0.10",
            "<none>",
            "53/UDP,53/TCP",
            "24h",
            "k8s-app=dns",
        ],
    );
    let node_port = render(
        "",
        "Service",
        svc(
            json!({"type": "NodePort", "clusterIPs": ["10.43.1.1"],
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
            json!({}),
        ),
    );
    assert_eq!(cells(&node_port)[3..5], ["<none>", "80:30080/TCP"]);
    let pending = render(
        "",
        "Service",
        svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.43.1.2"], "ports": []}),
            json!({}),
        ),
    );
    assert_eq!(cells(&pending)[3..5], ["<pending>", "<none>"]);
    let lb = render(
        "",
        "Service",
        svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.43.1.2"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}}),
        ),
    );
    assert_eq!(cells(&lb)[3], "192.168.1.240");
    let headless = render(
        "",
        "Service",
        svc(
            json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
            json!({}),
        ),
    );
    assert_eq!(cells(&headless)[2], "None");
    let external = render(
        "",
        "Service",
        svc(
            json!({"type": "ExternalName", "externalName": "example.com"}),
            json!({}),
        ),
    );
    assert_eq!(cells(&external)[2..4], ["<none>", "example.com"]);
}

#[test]
fn workloads_show_replica_counts() {
    let template = json!({"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}});
    check(
        "apps",
        "Deployment",
        json!({"metadata": meta("web", 600), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
               "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
        &[
            "web",
            "2/3",
            "3",
            "2",
            "10m",
            "web,log",
            "nginx:1.27,busybox",
            "app=web",
        ],
    );
    check(
        "apps",
        "ReplicaSet",
        json!({"metadata": meta("web-abc", 600), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}, "template": template},
               "status": {"replicas": 3, "readyReplicas": 3}}),
        &[
            "web-abc",
            "3",
            "3",
            "3",
            "10m",
            "web,log",
            "nginx:1.27,busybox",
            "app=web,pod-template-hash=abc",
        ],
    );
    check(
        "apps",
        "StatefulSet",
        json!({"metadata": meta("db", 600), "spec": {"replicas": 1, "template": template}, "status": {}}),
        &["db", "0/1", "10m", "web,log", "nginx:1.27,busybox"],
    );
    check(
        "apps",
        "DaemonSet",
        json!({"metadata": meta("agent", 600), "spec": {"selector": {"matchLabels": {"app": "agent"}},
               "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a", "image": "a:1"}]}}},
               "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}}),
        &[
            "agent",
            "2",
            "2",
            "1",
            "2",
            "1",
            "kubernetes.io/os=linux",
            "10m",
            "a",
            "a:1",
            "app=agent",
        ],
    );
}

#[test]
fn jobs_and_cronjobs() {
    let template = json!({"spec": {"containers": [{"name": "pi", "image": "perl"}]}});
    check(
        "batch",
        "Job",
        json!({"metadata": meta("pi", 120), "spec": {"completions": 1, "parallelism": 1, "template": template,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}},
               "status": {"succeeded": 1, "startTime": ago(100), "completionTime": ago(95),
                          "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}}),
        &[
            "pi",
            "Complete",
            "1/1",
            "5s",
            "2m",
            "pi",
            "perl",
            "batch.kubernetes.io/controller-uid=u-1",
        ],
    );
    let running = render(
        "batch",
        "Job",
        json!({"metadata": meta("p", 60), "spec": {"parallelism": 3, "template": template},
        "status": {"startTime": ago(45), "active": 3}}),
    );
    assert_eq!(cells(&running)[1..4], ["Running", "0/1 of 3", "45s"]);
    check(
        "batch",
        "CronJob",
        json!({"metadata": meta("hello", 86400 * 2), "spec": {"schedule": "*/1 * * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": template}}},
               "status": {"lastScheduleTime": ago(20), "active": [{"name": "hello-1"}]}}),
        &[
            "hello",
            "*/1 * * * *",
            "<none>",
            "false",
            "1",
            "20s",
            "2d",
            "pi",
            "perl",
            "",
        ],
    );
}

#[test]
fn config_and_identity_objects() {
    check(
        "",
        "ConfigMap",
        json!({"metadata": meta("cm", 5), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
        &["cm", "3", "5s"],
    );
    check(
        "",
        "Secret",
        json!({"metadata": meta("tls", 5), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
        &["tls", "kubernetes.io/tls", "2", "5s"],
    );
    check(
        "",
        "ServiceAccount",
        json!({"metadata": meta("default", 86400 * 45)}),
        &["default", "0", "45d"],
    );
    check(
        "",
        "Namespace",
        json!({"metadata": meta("kube-system", 86400 * 400), "status": {"phase": "Active"}}),
        &["kube-system", "Active", "400d"],
    );
    check(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        json!({"metadata": {"name": "admin", "creationTimestamp": "2024-05-01T10:00:00Z"}}),
        &["admin", "2024-05-01T10:00:00Z"],
    );
    check(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({"metadata": meta("rb", 60), "roleRef": {"kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]}),
        &["rb", "ClusterRole/view", "60s", "alice", "devs", "build/ci"],
    );
    check(
        "coordination.k8s.io",
        "Lease",
        json!({"metadata": meta("kite-node", 60), "spec": {"holderIdentity": "kite-node"}}),
        &["kite-node", "kite-node", "60s"],
    );
}

#[test]
fn events_show_last_seen_and_object() {
    let t = render(
        "",
        "Event",
        json!({"metadata": meta("web.17a", 600), "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
               "reason": "Pulled", "type": "Normal", "message": "Successfully pulled image \"nginx\"\n",
               "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 3}),
    );
    assert_eq!(
        headers(&t),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject*",
            "Source*",
            "Message",
            "First Seen*",
            "Count*",
            "Name*"
        ]
    );
    assert_eq!(
        cells(&t),
        [
            "65s",
            "Normal",
            "Pulled",
            "pod/web",
            "spec.containers{web}",
            "kubelet, n1",
            "Successfully pulled image \"nginx\"",
            "10m",
            "3",
            "web.17a"
        ]
    );
    let v1 = render(
        "events.k8s.io",
        "Event",
        json!({"metadata": meta("e", 30), "regarding": {"kind": "Node", "name": "n1"}, "reason": "Starting", "type": "Normal",
               "note": "Starting kubelet.", "eventTime": "2024-06-01T11:59:30.000000Z", "reportingController": "kubelet", "reportingInstance": "n1"}),
    );
    assert_eq!(
        cells(&v1),
        [
            "30s",
            "Normal",
            "Starting",
            "node/n1",
            "",
            "kubelet, n1",
            "Starting kubelet.",
            "30s",
            "1",
            "e"
        ]
    );
}

#[test]
fn storage_objects() {
    check(
        "",
        "PersistentVolume",
        json!({"metadata": {"name": "pv1", "creationTimestamp": ago(60)},
               "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete",
                        "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "local-path", "volumeMode": "Filesystem"},
               "status": {"phase": "Bound"}}),
        &[
            "pv1",
            "10Gi",
            "RWO,RWX",
            "Delete",
            "Bound",
            "default/data",
            "local-path",
            "<unset>",
            "",
            "60s",
            "Filesystem",
        ],
    );
    check(
        "",
        "PersistentVolumeClaim",
        json!({"metadata": meta("data", 60), "spec": {"volumeName": "pv1", "storageClassName": "local-path", "resources": {"requests": {"storage": "1Gi"}}},
               "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}),
        &[
            "data",
            "Bound",
            "pv1",
            "10Gi",
            "RWO",
            "local-path",
            "<unset>",
            "60s",
            "<unset>",
        ],
    );
    check(
        "storage.k8s.io",
        "StorageClass",
        json!({"metadata": {"name": "local-path", "creationTimestamp": ago(60), "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
        &[
            "local-path (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false",
            "60s",
        ],
    );
}

#[test]
fn networking_objects() {
    check(
        "",
        "Endpoints",
        json!({"metadata": meta("web", 60), "subsets": [{"addresses": [{"ip": "10.42.0.1"}, {"ip": "10.42.0.2"}, {"ip": "10.42.0.3"}, {"ip": "10.42.0.4"}],
                                                         "ports": [{"port": 80}]}]}),
        &[
            "web",
            "10.42.0.1:80,10.42.0.2:80,10.42.0.3:80 + 1 more...",
            "60s",
        ],
    );
    check(
        "",
        "Endpoints",
        json!({"metadata": meta("none", 60)}),
        &["none", "<none>", "60s"],
    );
    check(
        "discovery.k8s.io",
        "EndpointSlice",
        json!({"metadata": meta("web-x", 60), "addressType": "IPv4", "ports": [{"port": 80, "name": "http"}],
               "endpoints": [{"addresses": ["10.42.0.1"]}, {"addresses": ["10.42.0.2"]}]}),
        &["web-x", "IPv4", "80", "10.42.0.1,10.42.0.2", "60s"],
    );
    check(
        "networking.k8s.io",
        "Ingress",
        json!({"metadata": meta("ing", 60), "spec": {"ingressClassName": "kite", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}], "tls": [{}]},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}}),
        &[
            "ing",
            "kite",
            "a.example.com,b.example.com",
            "192.168.1.10",
            "80, 443",
            "60s",
        ],
    );
}

#[test]
fn kinds_without_printers_get_name_and_created_at() {
    let t = render(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-05-01T10:00:00Z"}}),
    );
    assert_eq!(headers(&t), ["Name", "Created At"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(cells(&t), ["widgets.example.com", "2024-05-01T10:00:00Z"]);
}

#[test]
fn include_object_controls_the_row_object() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("p", 1), "spec": {"containers": []}});
    let res = resource("", "Pod");
    let partial = table(
        &res,
        std::slice::from_ref(&pod),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(
        partial["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta("p", 1)})
    );
    assert_eq!(
        table(&res, std::slice::from_ref(&pod), IncludeObject::None, now())["rows"][0]["object"],
        Value::Null
    );
    assert_eq!(
        table(
            &res,
            std::slice::from_ref(&pod),
            IncludeObject::Object,
            now()
        )["rows"][0]["object"],
        pod
    );
    assert_eq!(IncludeObject::parse(""), Ok(IncludeObject::Metadata));
    assert_eq!(
        IncludeObject::parse("Bogus"),
        Err("unrecognized includeObject value: \"Bogus\"".to_string())
    );
    let empty = table(&res, &[], IncludeObject::Metadata, now());
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(
        empty["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0})
    );
}

#[test]
fn custom_resources_use_printer_columns() {
    let columns = PrinterColumn::from_crd(&json!([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Ports", "type": "string", "jsonPath": ".spec.ports[*].port", "priority": 1},
        {"name": "Weight", "type": "number", "jsonPath": ".spec.weight"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"}
    ]));
    let obj = json!({
        "metadata": meta("w1", 90),
        "spec": {"replicas": 2, "weight": 1.5, "paused": true, "ports": [{"port": 80}, {"port": 443}]},
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}
    });
    let t = custom_resource_table(
        &columns,
        std::slice::from_ref(&obj),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(
        headers(&t),
        [
            "Name", "Replicas", "Ready", "Ports*", "Weight", "Paused", "Age", "Missing"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["w1", 2, "True", "80", 1.5, true, "90s", null])
    );

    let default = custom_resource_table(&[], &[obj], IncludeObject::None, now());
    assert_eq!(headers(&default), ["Name", "Age"]);
    assert_eq!(default["rows"][0]["cells"], json!(["w1", "90s"]));
}

#[test]
fn json_paths_cover_what_crds_use() {
    let doc = json!({"a": {"b.c": [1, 2, 3], "items": [{"n": "x", "v": 1}, {"n": "y", "v": 2}]}});
    assert_eq!(custom::evaluate(".a['b.c'][1]", &doc), [&json!(2)]);
    assert_eq!(custom::evaluate("{.a.items[-1].n}", &doc), [&json!("y")]);
    assert_eq!(
        custom::evaluate(".a.items[*].n", &doc),
        [&json!("x"), &json!("y")]
    );
    assert_eq!(
        custom::evaluate(".a.items[?(@.v==2)].n", &doc),
        [&json!("y")]
    );
    assert_eq!(
        custom::evaluate(".a.items[?(@.n!='x')].v", &doc),
        [&json!(2)]
    );
    assert!(custom::evaluate(".a..n", &doc).is_empty());
    assert!(custom::evaluate(".a.items[", &doc).is_empty());
}

#[test]
fn every_builtin_resource_has_one_cell_per_column() {
    for res in builtin() {
        let obj = json!({"metadata": meta("x", 1)});
        let t = table(&res, &[obj], IncludeObject::Metadata, now());
        let columns = t["columnDefinitions"].as_array().expect("columns").len();
        let cells = t["rows"][0]["cells"].as_array().expect("cells").len();
        assert_eq!(columns, cells, "{}", res.group_resource());
    }
}
