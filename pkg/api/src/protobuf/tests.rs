use super::*;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;

/// `k8s\0` + `runtime.Unknown` around an encoded object, as client-go sends it.
fn envelope(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn check(api_version: &str, kind: &str, object: &impl prost::Message, expected: Value) {
    let decoded = decode(&envelope(api_version, kind, object), None).unwrap();
    assert_eq!(decoded, expected, "\n got: {decoded:#}\nwant: {expected:#}");
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn meta_named(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

fn int_port(port: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(port),
        str_val: None,
    })
}

fn named_port(name: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(name),
    })
}

#[test]
fn configmap_data_and_binary_data() {
    let cm = core::ConfigMap {
        metadata: meta_named("cfg"),
        data: [
            ("a".to_string(), "b".to_string()),
            ("empty".to_string(), String::new()),
        ]
        .into(),
        binary_data: [("bin".to_string(), vec![0u8, 1, 0xfe, 0xff])].into(),
        immutable: Some(false),
    };
    check(
        "v1",
        "ConfigMap",
        &cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
               "data": {"a": "b", "empty": ""}, "binaryData": {"bin": "AAH+/w=="}, "immutable": false}),
    );
}

#[test]
fn secret_bytes_become_base64() {
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("s"),
            namespace: s("default"),
            ..Default::default()
        }),
        data: [("password".to_string(), b"hunter2".to_vec())].into(),
        string_data: [("user".to_string(), "admin".to_string())].into(),
        r#type: s("Opaque"),
        immutable: None,
    };
    check(
        "v1",
        "Secret",
        &secret,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
               "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin"}, "type": "Opaque"}),
    );
}

fn pod_spec() -> core::PodSpec {
    core::PodSpec {
        containers: vec![core::Container {
            name: s("web"),
            image: s("nginx:1.25"),
            command: vec!["nginx".into(), "-g".into()],
            ports: vec![core::ContainerPort {
                name: s("http"),
                container_port: Some(8080),
                protocol: s("TCP"),
                ..Default::default()
            }],
            env: vec![
                core::EnvVar {
                    name: s("MODE"),
                    value: s("prod"),
                    value_from: None,
                },
                core::EnvVar {
                    name: s("POD"),
                    value: None,
                    value_from: Some(core::EnvVarSource {
                        field_ref: Some(core::ObjectFieldSelector {
                            api_version: s("v1"),
                            field_path: s("metadata.name"),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            resources: Some(core::ResourceRequirements {
                limits: [
                    ("cpu".to_string(), quantity("500m")),
                    ("memory".to_string(), quantity("128Mi")),
                ]
                .into(),
                requests: [("cpu".to_string(), quantity("250m"))].into(),
                claims: vec![],
            }),
            liveness_probe: Some(core::Probe {
                handler: Some(core::ProbeHandler {
                    http_get: Some(core::HttpGetAction {
                        path: s("/healthz"),
                        port: named_port("http"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(5),
                period_seconds: Some(10),
                ..Default::default()
            }),
            readiness_probe: Some(core::Probe {
                handler: Some(core::ProbeHandler {
                    tcp_socket: Some(core::TcpSocketAction {
                        port: int_port(8080),
                        host: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            volume_mounts: vec![core::VolumeMount {
                name: s("config"),
                mount_path: s("/etc/config"),
                read_only: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        }],
        volumes: vec![core::Volume {
            name: s("config"),
            volume_source: Some(core::VolumeSource {
                config_map: Some(core::ConfigMapVolumeSource {
                    local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                    default_mode: Some(0o644),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }],
        restart_policy: s("Always"),
        termination_grace_period_seconds: Some(0),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

fn pod_spec_json() -> Value {
    json!({
        "containers": [{
            "name": "web",
            "image": "nginx:1.25",
            "command": ["nginx", "-g"],
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [
                {"name": "MODE", "value": "prod"},
                {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            ],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5, "periodSeconds": 10},
            "readinessProbe": {"tcpSocket": {"port": 8080}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/config", "readOnly": true}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": "cfg", "defaultMode": 420}}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": false,
    })
}

#[test]
fn deployment_with_a_full_pod_template() {
    use k8s_pb::api::apps::v1 as apps;
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            labels: labels(&[("app", "web")]),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["a".into(), "b".into()],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(pod_spec()),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: named_port("25%"),
                    max_surge: int_port(1),
                }),
            }),
            revision_history_limit: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    check(
        "apps/v1",
        "Deployment",
        &deployment,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"},
                             "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec_json()},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                "revisionHistoryLimit": 0,
            },
        }),
    );
}

#[test]
fn pod() {
    let pod = core::Pod {
        metadata: meta_named("p"),
        spec: Some(pod_spec()),
        status: None,
    };
    check(
        "v1",
        "Pod",
        &pod,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec_json()}),
    );
}

#[test]
fn service_ports_with_int_and_named_target_ports() {
    let service = core::Service {
        metadata: meta_named("svc"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    port: Some(80),
                    target_port: int_port(8080),
                    ..Default::default()
                },
                core::ServicePort {
                    name: s("metrics"),
                    protocol: s("TCP"),
                    port: Some(9090),
                    target_port: named_port("metrics"),
                    node_port: Some(30090),
                    ..Default::default()
                },
            ],
            selector: labels(&[("app", "web")]),
            r#type: s("NodePort"),
            cluster_ips: vec![],
            ip_families: vec!["IPv4".into()],
            ..Default::default()
        }),
        status: None,
    };
    check(
        "v1",
        "Service",
        &service,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics", "nodePort": 30090},
            ],
            "selector": {"app": "web"}, "type": "NodePort", "ipFamilies": ["IPv4"],
        }}),
    );
}

#[test]
fn namespace() {
    let ns = core::Namespace {
        metadata: meta_named("team-a"),
        spec: Some(core::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: None,
    };
    check(
        "v1",
        "Namespace",
        &ns,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}}),
    );
}

#[test]
fn job_keeps_pointer_zeros() {
    use k8s_pb::api::batch::v1 as batch;
    let job = batch::Job {
        metadata: meta_named("j"),
        spec: Some(batch::JobSpec {
            parallelism: Some(0),
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(100),
            suspend: Some(false),
            completion_mode: s("NonIndexed"),
            template: Some(core::PodTemplateSpec {
                metadata: None,
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("c"),
                        image: s("busybox"),
                        args: vec!["echo".into(), "hi".into()],
                        ..Default::default()
                    }],
                    restart_policy: s("Never"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    check(
        "batch/v1",
        "Job",
        &job,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {
            "parallelism": 0, "backoffLimit": 0, "ttlSecondsAfterFinished": 100, "suspend": false,
            "completionMode": "NonIndexed",
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox", "args": ["echo", "hi"]}],
                                  "restartPolicy": "Never"}},
        }}),
    );
}

#[test]
fn token_request() {
    use k8s_pb::api::authentication::v1 as authn;
    let request = authn::TokenRequest {
        metadata: None,
        spec: Some(authn::TokenRequestSpec {
            audiences: vec!["https://kubernetes.default.svc".into()],
            expiration_seconds: Some(3600),
            bound_object_ref: Some(authn::BoundObjectReference {
                kind: s("Pod"),
                api_version: s("v1"),
                name: s("p"),
                u_id: s("1234"),
            }),
        }),
        status: None,
    };
    check(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &request,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
            "audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "1234"},
        }}),
    );
}

#[test]
fn self_subject_access_review() {
    use k8s_pb::api::authorization::v1 as authz;
    let review = authz::SelfSubjectAccessReview {
        metadata: None,
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: s("default"),
                verb: s("create"),
                resource: s("pods"),
                subresource: s(""),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            ..Default::default()
        }),
    };
    check(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &review,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
               "status": {"allowed": false}}),
    );
}

#[test]
fn self_subject_review() {
    use k8s_pb::api::authentication::v1 as authn;
    let review = authn::SelfSubjectReview {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        status: Some(authn::SelfSubjectReviewStatus {
            user_info: Some(authn::UserInfo {
                username: s("alice"),
                groups: vec!["system:authenticated".into()],
                extra: [(
                    "scopes".to_string(),
                    authn::ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                )]
                .into(),
                ..Default::default()
            }),
        }),
    };
    check(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &review,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
               "metadata": {"creationTimestamp": null},
               "status": {"userInfo": {"username": "alice", "groups": ["system:authenticated"],
                                       "extra": {"scopes": ["a", "b"]}}}}),
    );
}

fn delete_options() -> meta::DeleteOptions {
    meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("u-1"),
            resource_version: None,
        }),
        orphan_dependents: None,
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ignore_store_read_error_with_cluster_breaking_potential: Some(false),
    }
}

fn delete_options_json() -> Value {
    json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"}, "propagationPolicy": "Foreground",
           "dryRun": ["All"], "ignoreStoreReadErrorWithClusterBreakingPotential": false})
}

#[test]
fn eviction_with_delete_options() {
    use k8s_pb::api::policy::v1 as policy;
    let eviction = policy::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            namespace: s("default"),
            ..Default::default()
        }),
        delete_options: Some(delete_options()),
    };
    let decoded = decode(
        &envelope("policy/v1", "Eviction", &eviction),
        Some(("policy", "v1", "Eviction")),
    )
    .unwrap();
    assert_eq!(
        decoded,
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"},
               "deleteOptions": delete_options_json()})
    );
}

#[test]
fn delete_options_alone_in_any_group() {
    let mut expected = delete_options_json();
    expected["apiVersion"] = json!("apps/v1");
    expected["kind"] = json!("DeleteOptions");
    let body = envelope("apps/v1", "DeleteOptions", &delete_options());
    assert_eq!(
        decode(&body, Some(("meta.k8s.io", "v1", "DeleteOptions"))).unwrap(),
        expected
    );
    assert_eq!(decode(&body, None).unwrap(), expected);
}

#[test]
fn metadata_with_owners_finalizers_managed_fields_and_timestamps() {
    let metadata = meta::ObjectMeta {
        name: s("cfg"),
        namespace: s("default"),
        uid: s("0b9c"),
        resource_version: s("42"),
        generation: Some(3),
        creation_timestamp: Some(meta::Time {
            seconds: Some(1_704_164_645),
            nanos: Some(0),
        }),
        deletion_timestamp: Some(meta::Time {
            seconds: Some(1_704_164_700),
            nanos: Some(5),
        }),
        deletion_grace_period_seconds: Some(0),
        labels: labels(&[("app", "web"), ("tier", "")]),
        annotations: labels(&[("note", "hi")]),
        owner_references: vec![meta::OwnerReference {
            api_version: s("apps/v1"),
            kind: s("ReplicaSet"),
            name: s("web-1"),
            uid: s("77"),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }],
        finalizers: vec!["example.com/a".into(), "example.com/b".into()],
        managed_fields: vec![meta::ManagedFieldsEntry {
            manager: s("kubectl"),
            operation: s("Apply"),
            api_version: s("v1"),
            time: Some(meta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            fields_type: s("FieldsV1"),
            fields_v1: Some(meta::FieldsV1 {
                raw: Some(br#"{"f:data":{"f:a":{}}}"#.to_vec()),
            }),
            subresource: None,
        }],
        ..Default::default()
    };
    let cm = core::ConfigMap {
        metadata: Some(metadata),
        ..Default::default()
    };
    check(
        "v1",
        "ConfigMap",
        &cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "cfg", "namespace": "default", "uid": "0b9c", "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2024-01-02T03:04:05Z", "deletionTimestamp": "2024-01-02T03:05:00Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"app": "web", "tier": ""}, "annotations": {"note": "hi"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "77",
                                 "controller": true, "blockOwnerDeletion": false}],
            "finalizers": ["example.com/a", "example.com/b"],
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                               "time": "1970-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:data": {"f:a": {}}}}],
        }}),
    );
}

#[test]
fn lease_micro_times() {
    use k8s_pb::api::coordination::v1 as coordination;
    let lease = coordination::Lease {
        metadata: meta_named("leader"),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_646),
                nanos: Some(0),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    check(
        "coordination.k8s.io/v1",
        "Lease",
        &lease,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"}, "spec": {
            "holderIdentity": "node-1", "leaseDurationSeconds": 15,
            "acquireTime": "2024-01-02T03:04:05.123456Z", "renewTime": "2024-01-02T03:04:06.000000Z",
            "leaseTransitions": 0,
        }}),
    );
}

#[test]
fn raw_extension_holds_embedded_json() {
    use k8s_pb::api::apps::v1 as apps;
    let revision = apps::ControllerRevision {
        metadata: meta_named("rev"),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(br#"{"spec":{"x":1}}"#.to_vec()),
        }),
        revision: Some(2),
    };
    check(
        "apps/v1",
        "ControllerRevision",
        &revision,
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "rev"},
               "data": {"spec": {"x": 1}}, "revision": 2}),
    );
}

#[test]
fn missing_kind_falls_back_to_the_expected_one() {
    let unknown = Unknown {
        type_meta: None,
        raw: Some(
            core::Namespace {
                metadata: meta_named("n"),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    let decoded = decode(&body, Some(("", "v1", "Namespace"))).unwrap();
    assert_eq!(
        decoded,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    );
    assert!(matches!(
        decode(&body, None),
        Err(ProtobufError::MissingKind)
    ));
}

#[test]
fn bad_bodies_are_errors_naming_the_problem() {
    let ns = core::Namespace {
        metadata: meta_named("n"),
        ..Default::default()
    };
    let body = envelope("v1", "Namespace", &ns);

    assert!(matches!(
        decode(b"{\"kind\":\"Namespace\"}", None),
        Err(ProtobufError::MissingMagic)
    ));

    let err = decode(&body, Some(("apps", "v1", "Deployment"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the object in the body (v1, Kind=Namespace) does not match the expected kind (apps/v1, Kind=Deployment)"
    );

    let err = decode(&envelope("example.com/v1", "Widget", &ns), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no protobuf message for kind Widget in example.com/v1"
    );

    for cut in 5..body.len() {
        // Every truncation is an error or a shorter object, never a panic.
        let _ = decode(&body[..cut], None);
    }
    let truncated = envelope("v1", "Namespace", &ns);
    let err = decode(&truncated[..truncated.len() - 1], None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed protobuf in io.k8s.apimachinery.pkg.runtime.Unknown"),
        "{err}"
    );

    // metadata (field 1) as a varint instead of a message.
    let bad = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![0x08, 0x01]),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(bad.encode_to_vec());
    let err = decode(&body, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf in io.k8s.api.core.v1.Namespace.metadata: wire type Varint does not fit a message field"
    );

    let gzip = Unknown {
        content_encoding: s("gzip"),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(gzip.encode_to_vec());
    assert!(matches!(
        decode(&body, None),
        Err(ProtobufError::UnsupportedEncoding(_))
    ));
}

#[test]
fn content_type_helper_accepts_parameters() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=binary"
    ));
    assert!(!is_protobuf("application/json"));
}

/// Drops `null` members: Go prints a nil pointer without `omitempty` as
/// `null` (TokenRequest's `boundObjectRef`), which equals an absent field.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Bodies kubectl 1.33 sent (`kubectl create ...` against a capture server),
/// each compared with the JSON body kubectl 1.31 sent for the same command.
#[test]
fn kubectl_1_33_captures_decode_to_what_kubectl_1_31_sent_as_json() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    for pb in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
    {
        let body = std::fs::read(pb).unwrap();
        let want: Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        let got = decode(&body, None).unwrap_or_else(|e| panic!("{}: {e}", pb.display()));
        let (got, want) = (without_nulls(got), without_nulls(want));
        if got != want {
            failures.push(format!("{}:\n got: {got:#}\nwant: {want:#}", pb.display()));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 4, "only {checked} fixtures");
}

#[test]
fn decoding_a_deployment_takes_well_under_a_millisecond() {
    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/protobuf/deployment.pb"),
    )
    .unwrap();
    let start = std::time::Instant::now();
    decode(&body, None).unwrap(); // builds the table (once per process)
    eprintln!("first decode (table build included): {:?}", start.elapsed());
    let runs = 2000;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        decode(&body, None).unwrap();
    }
    let each = start.elapsed() / runs;
    eprintln!("decode(deployment.pb): {each:?} per body");
    assert!(each < std::time::Duration::from_millis(1), "{each:?}");
}
