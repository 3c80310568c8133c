//! One schemars pass over every built-in kind, normalised to Kubernetes names.

use super::Definitions;
use super::extensions;
use crate::resources;
use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::json;

/// Adds the schema of each listed type (and everything it references).
macro_rules! register {
    ($generator:expr, [$($ty:ty),* $(,)?]) => {
        $( let _ = $generator.subschema_for::<$ty>(); )*
    };
}

/// Generates all definitions, adds list kinds and the `x-kubernetes-*` extensions.
pub(super) fn build() -> Definitions {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/definitions".into();
        s.meta_schema = None;
        s.transforms = Vec::new();
    });
    let mut generator = SchemaGenerator::new(settings);
    register!(generator, [
        // core/v1
        api::core::v1::Binding, api::core::v1::ComponentStatus, api::core::v1::ConfigMap,
        api::core::v1::Endpoints, api::core::v1::Event, api::core::v1::LimitRange,
        api::core::v1::Namespace, api::core::v1::Node, api::core::v1::PersistentVolumeClaim,
        api::core::v1::PersistentVolume, api::core::v1::Pod, api::core::v1::PodTemplate,
        api::core::v1::ReplicationController, api::core::v1::ResourceQuota, api::core::v1::Secret,
        api::core::v1::ServiceAccount, api::core::v1::Service,
        // admissionregistration.k8s.io/v1
        api::admissionregistration::v1::MutatingWebhookConfiguration,
        api::admissionregistration::v1::ValidatingAdmissionPolicy,
        api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        api::admissionregistration::v1::ValidatingWebhookConfiguration,
        apiextensions::CustomResourceDefinition,
        // apps/v1
        api::apps::v1::ControllerRevision, api::apps::v1::DaemonSet, api::apps::v1::Deployment,
        api::apps::v1::ReplicaSet, api::apps::v1::StatefulSet,
        // authentication, authorization
        api::authentication::v1::SelfSubjectReview, api::authentication::v1::TokenReview,
        api::authentication::v1::TokenRequest,
        api::authorization::v1::LocalSubjectAccessReview,
        api::authorization::v1::SelfSubjectAccessReview,
        api::authorization::v1::SelfSubjectRulesReview,
        api::authorization::v1::SubjectAccessReview,
        // autoscaling
        api::autoscaling::v2::HorizontalPodAutoscaler, api::autoscaling::v1::HorizontalPodAutoscaler,
        api::autoscaling::v1::Scale,
        // batch, certificates, coordination, discovery, events
        api::batch::v1::CronJob, api::batch::v1::Job,
        api::certificates::v1::CertificateSigningRequest, api::coordination::v1::Lease,
        api::discovery::v1::EndpointSlice, api::events::v1::Event,
        // networking, node, policy
        api::networking::v1::IngressClass, api::networking::v1::Ingress,
        api::networking::v1::NetworkPolicy, api::node::v1::RuntimeClass,
        api::policy::v1::PodDisruptionBudget, api::policy::v1::Eviction,
        // rbac, scheduling, storage
        api::rbac::v1::ClusterRoleBinding, api::rbac::v1::ClusterRole, api::rbac::v1::RoleBinding,
        api::rbac::v1::Role, api::scheduling::v1::PriorityClass,
        api::storage::v1::CSIDriver, api::storage::v1::CSINode, api::storage::v1::CSIStorageCapacity,
        api::storage::v1::StorageClass, api::storage::v1::VolumeAttachment,
        // meta
        meta::ObjectMeta, meta::ListMeta, meta::Status, meta::DeleteOptions,
        meta::WatchEvent<k8s_openapi::apimachinery::pkg::runtime::RawExtension>,
        meta::APIGroup, meta::APIGroupList, meta::APIResourceList, meta::APIVersions, meta::Patch,
    ]);
    let mut defs = generator.take_definitions(false);
    super::metrics::add(&mut defs);
    metadata_is_optional(&mut defs);
    add_list_kinds(&mut defs);
    extensions::apply(&mut defs);
    defs
}

/// k8s-openapi types `metadata` as a plain struct (not an `Option`), so
/// schemars lists it as required; Kubernetes never requires it (kubectl's
/// client-side validation would reject a TokenReview without one).
fn metadata_is_optional(defs: &mut Definitions) {
    for schema in defs.values_mut() {
        let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) else {
            continue;
        };
        required.retain(|field| field != "metadata");
        if required.is_empty()
            && let Some(map) = schema.as_object_mut()
        {
            map.remove("required");
        }
    }
}

/// `<Kind>List` definitions for every listable built-in resource, shaped as
/// kube-apiserver publishes them (apiVersion, items, kind, metadata).
fn add_list_kinds(defs: &mut Definitions) {
    for info in resources::builtin() {
        if !info.allows("list") || !defs.contains_key(&info.definition) {
            continue;
        }
        let name = format!("{}List", info.definition);
        if defs.contains_key(&name) {
            continue;
        }
        let list = json!({
            "description": format!("{}List is a list of {} objects.", info.kind, info.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {
                    "description": "APIVersion defines the versioned schema of this representation of an object.",
                    "type": "string",
                },
                "items": {
                    "description": format!("List of {}.", info.plural),
                    "type": "array",
                    "items": { "$ref": format!("#/definitions/{}", info.definition) },
                },
                "kind": {
                    "description": "Kind is a string value representing the REST resource this object represents.",
                    "type": "string",
                },
                "metadata": {
                    "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
                    "description": "Standard list metadata.",
                },
            },
        });
        defs.insert(name, list);
    }
}
