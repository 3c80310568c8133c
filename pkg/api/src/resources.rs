//! The built-in resources a Kubernetes 1.33 API server serves.
//!
//! One [`ResourceInfo`] per group/version/resource: what discovery
//! advertises (verbs, short names, categories, subresources), whether it is
//! namespaced, and the OpenAPI definition describing its kind. Custom
//! resources use the same type, built from their CRD at run time.

use serde::Serialize;

/// The verbs of an ordinary read-write resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of review resources that only accept `create` (TokenReview, SubjectAccessReview...).
pub const CREATE_ONLY: &[&str] = &["create"];

/// One resource of one group version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    /// Version within the group, e.g. `v1`.
    pub version: String,
    /// Kind of the objects, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Verbs allowed on the collection and its objects.
    pub verbs: Vec<String>,
    /// Short names such as `deploy`.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Subresources such as `status` and `scale`, with their kinds and verbs.
    pub subresources: Vec<SubresourceInfo>,
    /// Name of the OpenAPI definition of the kind, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub definition: String,
    /// Whether this version is the group's preferred one.
    pub preferred: bool,
    /// JSON paths of a custom resource's scale subresource (built-ins use `.spec.replicas`).
    pub scale_paths: Option<ScalePaths>,
    /// A custom resource's schema and storage version, from its CRD.
    #[serde(skip)]
    pub custom: Option<std::sync::Arc<CustomSchema>>,
}

/// What the apiserver needs from a CRD to prune, default, validate and store
/// one served version's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomSchema {
    /// The version's `schema.openAPIV3Schema`.
    pub schema: serde_json::Value,
    /// The CRD's storage version: objects of every version are stored as it.
    pub storage_version: String,
    /// The storage version's schema: objects are pruned by it on their way to
    /// storage and pruned and defaulted by it when read back.
    pub storage_schema: serde_json::Value,
    /// Whether the CRD is being deleted (no new objects are accepted).
    pub terminating: bool,
}

/// Where a custom resource's `scale` subresource reads and writes (from its CRD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScalePaths {
    /// JSON path of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// JSON path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// JSON path of the label selector string, if any.
    pub label_selector: Option<String>,
}

/// A subresource such as `deployments/scale`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubresourceInfo {
    /// Name after the slash, e.g. `scale`.
    pub name: String,
    /// Group of the kind the subresource speaks (e.g. `autoscaling` for scale).
    pub group: String,
    /// Version of that kind.
    pub version: String,
    /// Kind it speaks, e.g. `Scale`.
    pub kind: String,
    /// Verbs the subresource accepts.
    pub verbs: Vec<String>,
}

impl ResourceInfo {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (`deployments.apps`), or `plural` for the core group.
    pub fn group_resource(&self) -> String {
        crate::status::qualified_resource(&self.group, &self.plural)
    }

    /// Whether `verb` is allowed on the resource.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The named subresource, if the resource has it.
    pub fn subresource(&self, name: &str) -> Option<&SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

/// Compact description of a built-in resource, expanded by [`builtin`].
struct Row {
    gv: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short: &'static [&'static str],
    categories: &'static [&'static str],
    subs: &'static [&'static str],
    definition: &'static str,
}

const NS: bool = true;
const CLUSTER: bool = false;
const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // core/v1
    Row { gv: "v1", kind: "Binding", plural: "bindings", namespaced: NS, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.Binding" },
    Row { gv: "v1", kind: "ComponentStatus", plural: "componentstatuses", namespaced: CLUSTER, verbs: &["get", "list"], short: &["cs"], categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.ComponentStatus" },
    Row { gv: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: NS, verbs: STANDARD_VERBS, short: &["cm"], categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.ConfigMap" },
    Row { gv: "v1", kind: "Endpoints", plural: "endpoints", namespaced: NS, verbs: STANDARD_VERBS, short: &["ep"], categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.Endpoints" },
    Row { gv: "v1", kind: "Event", plural: "events", namespaced: NS, verbs: STANDARD_VERBS, short: &["ev"], categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.Event" },
    Row { gv: "v1", kind: "LimitRange", plural: "limitranges", namespaced: NS, verbs: STANDARD_VERBS, short: &["limits"], categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.LimitRange" },
    Row { gv: "v1", kind: "Namespace", plural: "namespaces", namespaced: CLUSTER, verbs: &["create", "delete", "get", "list", "patch", "update", "watch"], short: &["ns"], categories: NONE, subs: &["finalize", "status"], definition: "io.k8s.api.core.v1.Namespace" },
    Row { gv: "v1", kind: "Node", plural: "nodes", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: &["no"], categories: NONE, subs: &["proxy", "status"], definition: "io.k8s.api.core.v1.Node" },
    Row { gv: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", namespaced: NS, verbs: STANDARD_VERBS, short: &["pvc"], categories: NONE, subs: &["status"], definition: "io.k8s.api.core.v1.PersistentVolumeClaim" },
    Row { gv: "v1", kind: "PersistentVolume", plural: "persistentvolumes", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: &["pv"], categories: NONE, subs: &["status"], definition: "io.k8s.api.core.v1.PersistentVolume" },
    Row { gv: "v1", kind: "Pod", plural: "pods", namespaced: NS, verbs: STANDARD_VERBS, short: &["po"], categories: ALL, subs: &["attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"], definition: "io.k8s.api.core.v1.Pod" },
    Row { gv: "v1", kind: "PodTemplate", plural: "podtemplates", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.PodTemplate" },
    Row { gv: "v1", kind: "ReplicationController", plural: "replicationcontrollers", namespaced: NS, verbs: STANDARD_VERBS, short: &["rc"], categories: ALL, subs: &["scale", "status"], definition: "io.k8s.api.core.v1.ReplicationController" },
    Row { gv: "v1", kind: "ResourceQuota", plural: "resourcequotas", namespaced: NS, verbs: STANDARD_VERBS, short: &["quota"], categories: NONE, subs: &["status"], definition: "io.k8s.api.core.v1.ResourceQuota" },
    Row { gv: "v1", kind: "Secret", plural: "secrets", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.core.v1.Secret" },
    Row { gv: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: NS, verbs: STANDARD_VERBS, short: &["sa"], categories: NONE, subs: &["token"], definition: "io.k8s.api.core.v1.ServiceAccount" },
    Row { gv: "v1", kind: "Service", plural: "services", namespaced: NS, verbs: STANDARD_VERBS, short: &["svc"], categories: ALL, subs: &["proxy", "status"], definition: "io.k8s.api.core.v1.Service" },
    // admissionregistration.k8s.io/v1
    Row { gv: "admissionregistration.k8s.io/v1", kind: "MutatingWebhookConfiguration", plural: "mutatingwebhookconfigurations", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: &["api-extensions"], subs: NONE, definition: "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration" },
    Row { gv: "admissionregistration.k8s.io/v1", kind: "ValidatingAdmissionPolicy", plural: "validatingadmissionpolicies", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: &["api-extensions"], subs: &["status"], definition: "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicy" },
    Row { gv: "admissionregistration.k8s.io/v1", kind: "ValidatingAdmissionPolicyBinding", plural: "validatingadmissionpolicybindings", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: &["api-extensions"], subs: NONE, definition: "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyBinding" },
    Row { gv: "admissionregistration.k8s.io/v1", kind: "ValidatingWebhookConfiguration", plural: "validatingwebhookconfigurations", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: &["api-extensions"], subs: NONE, definition: "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration" },
    // apiextensions.k8s.io/v1
    Row { gv: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: &["crd", "crds"], categories: &["api-extensions"], subs: &["status"], definition: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition" },
    // apps/v1
    Row { gv: "apps/v1", kind: "ControllerRevision", plural: "controllerrevisions", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.apps.v1.ControllerRevision" },
    Row { gv: "apps/v1", kind: "DaemonSet", plural: "daemonsets", namespaced: NS, verbs: STANDARD_VERBS, short: &["ds"], categories: ALL, subs: &["status"], definition: "io.k8s.api.apps.v1.DaemonSet" },
    Row { gv: "apps/v1", kind: "Deployment", plural: "deployments", namespaced: NS, verbs: STANDARD_VERBS, short: &["deploy"], categories: ALL, subs: &["scale", "status"], definition: "io.k8s.api.apps.v1.Deployment" },
    Row { gv: "apps/v1", kind: "ReplicaSet", plural: "replicasets", namespaced: NS, verbs: STANDARD_VERBS, short: &["rs"], categories: ALL, subs: &["scale", "status"], definition: "io.k8s.api.apps.v1.ReplicaSet" },
    Row { gv: "apps/v1", kind: "StatefulSet", plural: "statefulsets", namespaced: NS, verbs: STANDARD_VERBS, short: &["sts"], categories: ALL, subs: &["scale", "status"], definition: "io.k8s.api.apps.v1.StatefulSet" },
    // authentication.k8s.io/v1
    Row { gv: "authentication.k8s.io/v1", kind: "SelfSubjectReview", plural: "selfsubjectreviews", namespaced: CLUSTER, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authentication.v1.SelfSubjectReview" },
    // Beta until 1.28 and gone from 1.33 servers, but `kubectl auth whoami` of
    // kubectl 1.27 only knows this version; same shape as v1.
    Row { gv: "authentication.k8s.io/v1beta1", kind: "SelfSubjectReview", plural: "selfsubjectreviews", namespaced: CLUSTER, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authentication.v1.SelfSubjectReview" },
    Row { gv: "authentication.k8s.io/v1", kind: "TokenReview", plural: "tokenreviews", namespaced: CLUSTER, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authentication.v1.TokenReview" },
    // authorization.k8s.io/v1
    Row { gv: "authorization.k8s.io/v1", kind: "LocalSubjectAccessReview", plural: "localsubjectaccessreviews", namespaced: NS, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authorization.v1.LocalSubjectAccessReview" },
    Row { gv: "authorization.k8s.io/v1", kind: "SelfSubjectAccessReview", plural: "selfsubjectaccessreviews", namespaced: CLUSTER, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authorization.v1.SelfSubjectAccessReview" },
    Row { gv: "authorization.k8s.io/v1", kind: "SelfSubjectRulesReview", plural: "selfsubjectrulesreviews", namespaced: CLUSTER, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authorization.v1.SelfSubjectRulesReview" },
    Row { gv: "authorization.k8s.io/v1", kind: "SubjectAccessReview", plural: "subjectaccessreviews", namespaced: CLUSTER, verbs: CREATE_ONLY, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.authorization.v1.SubjectAccessReview" },
    // autoscaling
    Row { gv: "autoscaling/v2", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers", namespaced: NS, verbs: STANDARD_VERBS, short: &["hpa"], categories: ALL, subs: &["status"], definition: "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler" },
    Row { gv: "autoscaling/v1", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers", namespaced: NS, verbs: STANDARD_VERBS, short: &["hpa"], categories: ALL, subs: &["status"], definition: "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler" },
    // batch/v1
    Row { gv: "batch/v1", kind: "CronJob", plural: "cronjobs", namespaced: NS, verbs: STANDARD_VERBS, short: &["cj"], categories: ALL, subs: &["status"], definition: "io.k8s.api.batch.v1.CronJob" },
    Row { gv: "batch/v1", kind: "Job", plural: "jobs", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: ALL, subs: &["status"], definition: "io.k8s.api.batch.v1.Job" },
    // certificates.k8s.io/v1
    Row { gv: "certificates.k8s.io/v1", kind: "CertificateSigningRequest", plural: "certificatesigningrequests", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: &["csr"], categories: NONE, subs: &["approval", "status"], definition: "io.k8s.api.certificates.v1.CertificateSigningRequest" },
    // coordination.k8s.io/v1
    Row { gv: "coordination.k8s.io/v1", kind: "Lease", plural: "leases", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.coordination.v1.Lease" },
    // discovery.k8s.io/v1
    Row { gv: "discovery.k8s.io/v1", kind: "EndpointSlice", plural: "endpointslices", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.discovery.v1.EndpointSlice" },
    // events.k8s.io/v1
    Row { gv: "events.k8s.io/v1", kind: "Event", plural: "events", namespaced: NS, verbs: STANDARD_VERBS, short: &["ev"], categories: NONE, subs: NONE, definition: "io.k8s.api.events.v1.Event" },
    // metrics.k8s.io/v1beta1: served from the kubelets' stats, never stored
    Row { gv: "metrics.k8s.io/v1beta1", kind: "NodeMetrics", plural: "nodes", namespaced: CLUSTER, verbs: &["get", "list"], short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics" },
    Row { gv: "metrics.k8s.io/v1beta1", kind: "PodMetrics", plural: "pods", namespaced: NS, verbs: &["get", "list"], short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics" },
    // networking.k8s.io/v1
    Row { gv: "networking.k8s.io/v1", kind: "IngressClass", plural: "ingressclasses", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.networking.v1.IngressClass" },
    Row { gv: "networking.k8s.io/v1", kind: "Ingress", plural: "ingresses", namespaced: NS, verbs: STANDARD_VERBS, short: &["ing"], categories: NONE, subs: &["status"], definition: "io.k8s.api.networking.v1.Ingress" },
    Row { gv: "networking.k8s.io/v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: NS, verbs: STANDARD_VERBS, short: &["netpol"], categories: NONE, subs: NONE, definition: "io.k8s.api.networking.v1.NetworkPolicy" },
    // node.k8s.io/v1
    Row { gv: "node.k8s.io/v1", kind: "RuntimeClass", plural: "runtimeclasses", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.node.v1.RuntimeClass" },
    // policy/v1
    Row { gv: "policy/v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", namespaced: NS, verbs: STANDARD_VERBS, short: &["pdb"], categories: NONE, subs: &["status"], definition: "io.k8s.api.policy.v1.PodDisruptionBudget" },
    // rbac.authorization.k8s.io/v1
    Row { gv: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.rbac.v1.ClusterRoleBinding" },
    Row { gv: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", plural: "clusterroles", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.rbac.v1.ClusterRole" },
    Row { gv: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", plural: "rolebindings", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.rbac.v1.RoleBinding" },
    Row { gv: "rbac.authorization.k8s.io/v1", kind: "Role", plural: "roles", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.rbac.v1.Role" },
    // scheduling.k8s.io/v1
    Row { gv: "scheduling.k8s.io/v1", kind: "PriorityClass", plural: "priorityclasses", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: &["pc"], categories: NONE, subs: NONE, definition: "io.k8s.api.scheduling.v1.PriorityClass" },
    // storage.k8s.io/v1
    Row { gv: "storage.k8s.io/v1", kind: "CSIDriver", plural: "csidrivers", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.storage.v1.CSIDriver" },
    Row { gv: "storage.k8s.io/v1", kind: "CSINode", plural: "csinodes", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.storage.v1.CSINode" },
    Row { gv: "storage.k8s.io/v1", kind: "CSIStorageCapacity", plural: "csistoragecapacities", namespaced: NS, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: NONE, definition: "io.k8s.api.storage.v1.CSIStorageCapacity" },
    Row { gv: "storage.k8s.io/v1", kind: "StorageClass", plural: "storageclasses", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: &["sc"], categories: NONE, subs: NONE, definition: "io.k8s.api.storage.v1.StorageClass" },
    Row { gv: "storage.k8s.io/v1", kind: "VolumeAttachment", plural: "volumeattachments", namespaced: CLUSTER, verbs: STANDARD_VERBS, short: NONE, categories: NONE, subs: &["status"], definition: "io.k8s.api.storage.v1.VolumeAttachment" },
];

/// The subresource's kind and verbs, as kube-apiserver advertises them.
fn subresource(parent: &Row, name: &str) -> SubresourceInfo {
    let (group, version) = split_gv(parent.gv);
    let (group, version, kind, verbs): (&str, &str, &str, &[&str]) = match name {
        "status" => (group, version, parent.kind, &["get", "patch", "update"]),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "binding" => ("", "v1", "Binding", CREATE_ONLY),
        "eviction" => ("policy", "v1", "Eviction", CREATE_ONLY),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest", CREATE_ONLY),
        "log" => ("", "v1", "Pod", &["get"]),
        "exec" | "attach" | "portforward" => ("", "v1", "PodExecOptions", &["create", "get"]),
        "proxy" => (
            "",
            "v1",
            "NodeProxyOptions",
            &["create", "delete", "get", "patch", "update"],
        ),
        "ephemeralcontainers" | "resize" => {
            (group, version, parent.kind, &["get", "patch", "update"])
        }
        "finalize" => ("", "v1", "Namespace", &["update"]),
        "approval" => (group, version, parent.kind, &["get", "patch", "update"]),
        _ => (group, version, parent.kind, &["get"]),
    };
    let kind = match (name, parent.kind) {
        ("exec", _) => "PodExecOptions",
        ("attach", _) => "PodAttachOptions",
        ("portforward", _) => "PodPortForwardOptions",
        ("proxy", "Pod") => "PodProxyOptions",
        ("proxy", "Service") => "ServiceProxyOptions",
        _ => kind,
    };
    SubresourceInfo {
        name: name.into(),
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    }
}

fn split_gv(gv: &str) -> (&str, &str) {
    gv.split_once('/').unwrap_or(("", gv))
}

/// Every built-in resource of Kubernetes 1.33 that kite serves, in a stable order.
pub fn builtin() -> Vec<ResourceInfo> {
    ROWS.iter()
        .map(|row| {
            let (group, version) = split_gv(row.gv);
            ResourceInfo {
                group: group.into(),
                version: version.into(),
                kind: row.kind.into(),
                plural: row.plural.into(),
                singular: row.kind.to_lowercase(),
                namespaced: row.namespaced,
                verbs: row.verbs.iter().map(|v| v.to_string()).collect(),
                short_names: row.short.iter().map(|v| v.to_string()).collect(),
                categories: row.categories.iter().map(|v| v.to_string()).collect(),
                subresources: row.subs.iter().map(|s| subresource(row, s)).collect(),
                definition: row.definition.into(),
                // autoscaling/v1 is the only non-preferred built-in version kite serves.
                preferred: row.gv != "autoscaling/v1",
                scale_paths: None,
                custom: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_resource_is_unique_per_group_version() {
        let all = builtin();
        let mut seen = std::collections::BTreeSet::new();
        for r in &all {
            assert!(
                seen.insert((r.api_version(), r.plural.clone())),
                "{} twice",
                r.group_resource()
            );
        }
        assert!(all.len() > 50);
    }

    #[test]
    fn deployments_advertise_scale_and_status() {
        let all = builtin();
        let deploy = all
            .iter()
            .find(|r| r.plural == "deployments")
            .expect("deployments");
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.short_names, ["deploy"]);
        assert_eq!(deploy.categories, ["all"]);
        let scale = deploy.subresource("scale").expect("scale");
        assert_eq!(
            (
                scale.group.as_str(),
                scale.version.as_str(),
                scale.kind.as_str()
            ),
            ("autoscaling", "v1", "Scale")
        );
        assert!(deploy.allows("watch"));
    }
}
