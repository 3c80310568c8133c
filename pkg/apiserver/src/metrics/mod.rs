//! `/metrics` in the Prometheus text format, with kube-apiserver's metric
//! names so existing dashboards and alerts read kite too: requests by verb,
//! resource and code with latency histograms, datastore latencies, watchers
//! and watch-cache sizes.

mod histogram;
mod store;

pub use store::Metered;

use histogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets of `apiserver_request_duration_seconds`, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// Latency buckets of `etcd_request_duration_seconds`, in seconds.
const STORE_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The labels of one kind of API request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`, `DELETECOLLECTION`.
    pub verb: &'static str,
    /// API group, empty for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource, or empty.
    pub subresource: String,
    /// `resource` (one object), `namespace` or `cluster`.
    pub scope: &'static str,
    /// `All` for dry runs, else empty.
    pub dry_run: &'static str,
}

#[derive(Debug)]
struct RequestStats {
    codes: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// What the apiserver counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestLabels, RequestStats>>,
    store: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

/// A gauge value per resource, supplied at render time (watchers, cache sizes).
#[derive(Debug, Default)]
pub struct CacheSample {
    /// `pods`, `deployments.apps`...
    pub resource: String,
    /// Objects held.
    pub objects: usize,
    /// Open watches.
    pub watchers: usize,
    /// Events kept for resuming watches.
    pub capacity: usize,
}

impl Metrics {
    /// Counts one answered request; watches count but have no latency (they
    /// last as long as the client wants).
    pub fn request(&self, labels: RequestLabels, code: u16, elapsed: Option<Duration>) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let stats = requests.entry(labels).or_insert_with(|| RequestStats {
            codes: BTreeMap::new(),
            latency: Histogram::new(REQUEST_BUCKETS),
        });
        *stats.codes.entry(code).or_default() += 1;
        if let Some(elapsed) = elapsed {
            stats.latency.observe(elapsed.as_secs_f64());
        }
    }

    /// Times one datastore call.
    pub fn store_call(&self, operation: &'static str, key: &str, elapsed: Duration) {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store
            .entry((operation, object_type(key)))
            .or_insert_with(|| Histogram::new(STORE_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self, caches: &[CacheSample]) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        self.render_store(&mut out);
        render_caches(&mut out, caches);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        header(
            out,
            "apiserver_request_total",
            "counter",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
        );
        for (labels, stats) in requests.iter() {
            for (code, count) in &stats.codes {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{code}\",{}}} {count}",
                    request_labels(labels)
                );
            }
        }
        header(
            out,
            "apiserver_request_duration_seconds",
            "histogram",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
        );
        for (labels, stats) in requests.iter().filter(|(_, s)| s.latency.count() > 0) {
            stats.latency.render(
                out,
                "apiserver_request_duration_seconds",
                &request_labels(labels),
            );
        }
    }

    fn render_store(&self, out: &mut String) {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        header(
            out,
            "etcd_request_duration_seconds",
            "histogram",
            "Etcd request latency in seconds for each operation and object type.",
        );
        for ((operation, ty), histogram) in store.iter() {
            histogram.render(
                out,
                "etcd_request_duration_seconds",
                &format!("operation=\"{operation}\",type=\"{}\"", escape(ty)),
            );
        }
    }
}

/// A per-resource gauge: name, help, and how to read it from a sample.
type Gauge = (&'static str, &'static str, fn(&CacheSample) -> usize);

fn render_caches(out: &mut String, caches: &[CacheSample]) {
    let gauges: [Gauge; 3] = [
        (
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind.",
            |c| c.objects,
        ),
        (
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.",
            |c| c.watchers,
        ),
        (
            "watch_cache_capacity",
            "Total capacity of watch cache broken by resource type.",
            |c| c.capacity,
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        for cache in caches {
            let resource = escape(&cache.resource);
            let labels = if name == "apiserver_longrunning_requests" {
                format!("component=\"apiserver\",resource=\"{resource}\",verb=\"WATCH\"")
            } else {
                format!("resource=\"{resource}\"")
            };
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(cache));
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn request_labels(l: &RequestLabels) -> String {
    format!(
        "component=\"apiserver\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
        l.dry_run,
        escape(&l.group),
        escape(&l.resource),
        l.scope,
        escape(&l.subresource),
        l.verb,
        escape(&l.version),
    )
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The object type of a store key, as kube-apiserver labels it: the key's
/// resource prefix, `/registry/apps/deployments` for a deployment.
fn object_type(key: &str) -> String {
    let mut parts = key.splitn(5, '/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(root), Some(group), Some(resource)) if !resource.is_empty() => {
            format!("/{root}/{group}/{resource}")
        }
        _ => key.trim_end_matches('/').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_histograms() {
        let metrics = Metrics::default();
        let labels = RequestLabels {
            verb: "LIST",
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            subresource: String::new(),
            scope: "namespace",
            dry_run: "",
        };
        metrics.request(labels.clone(), 200, Some(Duration::from_millis(3)));
        metrics.request(labels.clone(), 200, Some(Duration::from_millis(30)));
        metrics.request(labels, 404, Some(Duration::from_millis(1)));
        let text = metrics.render(&[]);
        assert!(text.contains("apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"deployments\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2"), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_bucket{component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"deployments\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\",le=\"0.005\"} 2"), "{text}");
        assert!(text.contains(",le=\"+Inf\"} 3"), "{text}");
        assert!(text.contains("apiserver_request_duration_seconds_count{component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"deployments\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 3"), "{text}");
    }

    #[test]
    fn store_calls_are_labelled_by_resource_prefix() {
        assert_eq!(
            object_type("/registry/apps/deployments/default/web"),
            "/registry/apps/deployments"
        );
        assert_eq!(
            object_type("/registry/core/namespaces/"),
            "/registry/core/namespaces"
        );
        let metrics = Metrics::default();
        metrics.store_call(
            "get",
            "/registry/core/pods/default/p",
            Duration::from_millis(2),
        );
        let text = metrics.render(&[CacheSample {
            resource: "pods".into(),
            objects: 4,
            watchers: 2,
            capacity: 10,
        }]);
        assert!(text.contains("etcd_request_duration_seconds_count{operation=\"get\",type=\"/registry/core/pods\"} 1"), "{text}");
        assert!(text.contains("apiserver_storage_objects{resource=\"pods\"} 4"));
        assert!(text.contains("apiserver_longrunning_requests{component=\"apiserver\",resource=\"pods\",verb=\"WATCH\"} 2"));
    }
}
