//! The resource metrics API, `metrics.k8s.io/v1beta1` NodeMetrics and
//! PodMetrics, served by the apiserver itself from what [`scrape`] collects
//! from the kubelets (k3s runs metrics-server behind the aggregator for this;
//! kite has no aggregator to put it behind). `kubectl top` and the
//! HorizontalPodAutoscaler read it.
//!
//! Like metrics-server: get and list only, label and field selectors on the
//! node's or pod's own labels and name, objects named and labelled as their
//! node or pod, and nothing for a node or pod until two scrapes have seen it.

pub mod scrape;

use crate::api::Call;
use crate::body::Body;
use crate::codec::{self, Output};
use crate::errors::{self, ApiResult};
use crate::filter::Filter;
use crate::objects;
use crate::output;
use crate::request::Verb;
use http::{Response, StatusCode};
use kite_api::{Status, StatusReason};
use scrape::{Point, Usage};
use serde_json::{Value, json};
use std::time::Duration;

pub use scrape::Samples;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";

/// Answers a request for a resource of [`GROUP`]; `None` for any other.
pub async fn handle(call: &Call<'_>) -> Option<ApiResult<Response<Body>>> {
    if call.resource.group != GROUP || call.request.subresource.is_some() {
        return None;
    }
    let answer = match (call.resource.plural.as_str(), call.request.verb) {
        ("nodes", Verb::Get) => get_node(call).await,
        ("nodes", Verb::List) => list_nodes(call).await,
        ("pods", Verb::Get) => get_pod(call).await,
        ("pods", Verb::List) => list_pods(call).await,
        _ => Err(errors::method_not_allowed(
            &call.resource,
            call.request.verb.as_str(),
        )),
    };
    Some(answer)
}

async fn get_node(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let not_found = || metrics_not_found("nodemetrics", &name);
    let node = crate::admission::get(call, "nodes", "", &name)
        .await?
        .ok_or_else(not_found)?;
    let point = call
        .api
        .resource_metrics
        .node(&name)
        .ok_or_else(not_found)?;
    output::object(call, StatusCode::OK, &node_metrics(&node, &point))
}

async fn list_nodes(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let mut items = Vec::new();
    for node in read_matching(call, "nodes", None).await? {
        if let Some(point) = call.api.resource_metrics.node(objects::name(&node)) {
            items.push(node_metrics(&node, &point));
        }
    }
    list_response(call, "NodeMetricsList", items)
}

async fn get_pod(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let namespace = call.namespace().unwrap_or_default().to_string();
    let not_found = || metrics_not_found("podmetrics", &format!("{namespace}/{name}"));
    let pod = crate::admission::get(call, "pods", &namespace, &name)
        .await?
        .ok_or_else(not_found)?;
    let point = call
        .api
        .resource_metrics
        .pod(&namespace, &name)
        .ok_or_else(not_found)?;
    output::object(
        call,
        StatusCode::OK,
        &pod_metrics(&pod, &point.point, &point.containers),
    )
}

async fn list_pods(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let mut items = Vec::new();
    for pod in read_matching(call, "pods", call.namespace()).await? {
        if let Some(point) = call
            .api
            .resource_metrics
            .pod(objects::namespace(&pod), objects::name(&pod))
        {
            items.push(pod_metrics(&pod, &point.point, &point.containers));
        }
    }
    list_response(call, "PodMetricsList", items)
}

/// The core/v1 objects the call's selectors pick, sorted by namespace and name.
async fn read_matching(
    call: &Call<'_>,
    plural: &str,
    namespace: Option<&str>,
) -> ApiResult<Vec<Value>> {
    let resource = call
        .api
        .registry
        .get("", "v1", plural)
        .ok_or_else(|| errors::internal(format!("{plural} are not served")))?;
    let filter = Filter::new(
        &resource,
        namespace,
        call.param("labelSelector").as_deref(),
        call.param("fieldSelector").as_deref(),
    )?;
    let page = call
        .api
        .store
        .list(&objects::prefix(&resource, namespace), None, 0, 0)
        .await
        .map_err(errors::from_store)?;
    let mut found = Vec::new();
    for kv in &page.kvs {
        let object = objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
        if filter.matches(&object) {
            found.push(object);
        }
    }
    found.sort_by(|a, b| {
        (objects::namespace(a), objects::name(a)).cmp(&(objects::namespace(b), objects::name(b)))
    });
    Ok(found)
}

fn list_response(call: &Call<'_>, kind: &str, items: Vec<Value>) -> ApiResult<Response<Body>> {
    let output = codec::negotiate(call.headers)?;
    let value = match output {
        Output::Table => output::table(call, &items, json!(""))?,
        _ => json!({
            "kind": kind,
            "apiVersion": format!("{GROUP}/v1beta1"),
            "metadata": {},
            "items": items,
        }),
    };
    let output = if output == Output::PartialMetadata {
        Output::Json
    } else {
        output
    };
    Ok(codec::respond(StatusCode::OK, output, &value))
}

fn metrics_not_found(resource: &str, name: &str) -> Status {
    Status::failure(
        StatusReason::NotFound,
        format!("{resource}.{GROUP} \"{name}\" not found"),
    )
    .with_details(kite_api::status::StatusDetails {
        name: name.into(),
        group: GROUP.into(),
        kind: resource.into(),
        ..Default::default()
    })
}

/// Metadata of a metrics object: its node's or pod's name, namespace and labels.
fn metadata_of(object: &Value) -> Value {
    let mut meta = json!({
        "name": objects::name(object),
        "creationTimestamp": objects::now_rfc3339(),
    });
    if !objects::namespace(object).is_empty() {
        meta["namespace"] = json!(objects::namespace(object));
    }
    if let Some(labels) = object.pointer("/metadata/labels") {
        meta["labels"] = labels.clone();
    }
    meta
}

fn node_metrics(node: &Value, point: &Point) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/v1beta1"),
        "metadata": metadata_of(node),
        "timestamp": objects::rfc3339(point.timestamp),
        "window": go_duration(point.window),
        "usage": usage(&point.usage),
    })
}

fn pod_metrics(pod: &Value, point: &Point, containers: &[(String, Usage)]) -> Value {
    json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/v1beta1"),
        "metadata": metadata_of(pod),
        "timestamp": objects::rfc3339(point.timestamp),
        "window": go_duration(point.window),
        "containers": containers
            .iter()
            .map(|(name, u)| json!({"name": name, "usage": usage(u)}))
            .collect::<Vec<_>>(),
    })
}

/// CPU in nanocores and memory in KiB, the units metrics-server reports in.
fn usage(usage: &Usage) -> Value {
    json!({
        "cpu": format!("{}n", usage.cpu_nano_cores),
        "memory": format!("{}Ki", usage.memory_bytes / 1024),
    })
}

/// A duration as Go's `time.Duration.String` writes it (`15.004s`, `1m0.5s`).
fn go_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000_000_000 {
        let (value, unit) = if total < 1_000 {
            (total as f64, "ns")
        } else if total < 1_000_000 {
            (total as f64 / 1e3, "µs")
        } else {
            (total as f64 / 1e6, "ms")
        };
        return format!("{}{unit}", trim_float(value));
    }
    let hours = total / 3_600_000_000_000;
    let minutes = total / 60_000_000_000 % 60;
    let seconds = (total % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim_float(seconds)));
    out
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(15_004)), "15.004s");
        assert_eq!(go_duration(Duration::from_millis(60_500)), "1m0.5s");
        assert_eq!(go_duration(Duration::from_secs(3_600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn usage_is_in_nanocores_and_kibibytes() {
        let u = Usage {
            cpu_nano_cores: 123_456_789,
            memory_bytes: 8 << 20,
        };
        assert_eq!(usage(&u), json!({"cpu": "123456789n", "memory": "8192Ki"}));
    }

    #[test]
    fn a_metrics_object_carries_its_pods_name_namespace_and_labels() {
        let pod = json!({"metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}, "uid": "u"}});
        let point = Point {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            window: Duration::from_secs(15),
            usage: Usage {
                cpu_nano_cores: 5,
                memory_bytes: 4096,
            },
        };
        let metrics = pod_metrics(&pod, &point, &[("c".into(), point.usage.clone())]);
        assert_eq!(metrics["metadata"]["name"], "web");
        assert_eq!(metrics["metadata"]["namespace"], "prod");
        assert_eq!(metrics["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(metrics["window"], "15s");
        assert_eq!(metrics["containers"][0]["usage"]["memory"], "4Ki");
        assert_eq!(metrics["timestamp"], "2027-01-15T08:00:00Z");
    }
}
