//! Definitions of the resource metrics API's kinds (`metrics.k8s.io/v1beta1`
//! NodeMetrics and PodMetrics), which k8s-openapi does not carry, written out
//! as metrics-server publishes them.

use super::Definitions;
use serde_json::json;

const PREFIX: &str = "io.k8s.metrics.pkg.apis.metrics.v1beta1";

/// Adds NodeMetrics, PodMetrics and ContainerMetrics to `defs`.
pub(super) fn add(defs: &mut Definitions) {
    let usage = json!({
        "description": "The memory and CPU usage.",
        "type": "object",
        "additionalProperties": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
    });
    let common = |description: &str| {
        json!({
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "description": description},
            "timestamp": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Time",
                          "description": "The following fields define time interval from which metrics were collected from the interval [Timestamp-Window, Timestamp]."},
            "window": {"description": "The length of the interval the usage was measured over.", "type": "string"},
        })
    };
    let mut node = common("Standard object's metadata.");
    node["usage"] = usage.clone();
    defs.insert(
        format!("{PREFIX}.NodeMetrics"),
        json!({
            "description": "NodeMetrics sets resource usage metrics of a node.",
            "type": "object",
            "required": ["timestamp", "window", "usage"],
            "properties": node,
        }),
    );
    let mut pod = common("Standard object's metadata.");
    pod["containers"] = json!({
        "description": "Metrics for all containers are collected within the same time window.",
        "type": "array",
        "items": {"$ref": format!("#/definitions/{PREFIX}.ContainerMetrics")},
        "x-kubernetes-list-type": "atomic",
    });
    defs.insert(
        format!("{PREFIX}.PodMetrics"),
        json!({
            "description": "PodMetrics sets resource usage metrics of a pod.",
            "type": "object",
            "required": ["timestamp", "window", "containers"],
            "properties": pod,
        }),
    );
    defs.insert(
        format!("{PREFIX}.ContainerMetrics"),
        json!({
            "description": "ContainerMetrics sets resource usage metrics of a container.",
            "type": "object",
            "required": ["name", "usage"],
            "properties": {
                "name": {"description": "Container name corresponding to the one from pod.spec.containers.", "type": "string"},
                "usage": usage,
            },
        }),
    );
}
