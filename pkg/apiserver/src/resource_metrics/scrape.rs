//! Collects CPU and memory from every kubelet's `/stats/summary` at a fixed
//! resolution, as metrics-server does: CPU usage is the rate of the
//! cumulative `usageCoreNanoSeconds` between two scrapes (so the `window` of
//! every point is the time between them), memory is the working set.

use crate::api::Api;
use crate::objects;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often kubelets are scraped (metrics-server's `--metric-resolution`, as k3s sets it).
pub const RESOLUTION: Duration = Duration::from_secs(15);
/// The largest summary read from a kubelet.
const MAX_SUMMARY: usize = 16 << 20;

/// Usage over one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// CPU, nanocores.
    pub cpu_nano_cores: u64,
    /// Memory working set, bytes.
    pub memory_bytes: u64,
}

/// A usage point of a node or pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// When the later of the two samples was taken.
    pub timestamp: SystemTime,
    /// Time between the two samples.
    pub window: Duration,
    /// The node's usage (for a pod: the sum of its containers).
    pub usage: Usage,
}

/// A pod's point and its containers' usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPoint {
    /// The pod's window and timestamp.
    pub point: Point,
    /// Each container's usage, in the summary's order.
    pub containers: Vec<(String, Usage)>,
}

/// One cumulative CPU reading and the memory beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Raw {
    time: SystemTime,
    cpu_ns: u64,
    memory: u64,
}

/// The last raw sample of everything, and the points computed from the last two.
#[derive(Debug, Default)]
struct State {
    raw_nodes: HashMap<String, Raw>,
    raw_containers: HashMap<(String, String, String), Raw>,
    nodes: HashMap<String, Point>,
    pods: HashMap<(String, String), PodPoint>,
    /// The node that last reported each pod.
    pod_nodes: HashMap<(String, String), String>,
}

impl State {
    /// Drops everything known of a pod that is gone (or moved to another node).
    fn forget_pod(&mut self, key: &(String, String)) {
        self.pod_nodes.remove(key);
        self.pods.remove(key);
        self.raw_containers
            .retain(|(ns, pod, _), _| (ns, pod) != (&key.0, &key.1));
    }
}

/// The latest metrics of every node and pod; shared by the scraper and the API.
#[derive(Debug, Default)]
pub struct Samples {
    state: RwLock<State>,
}

impl Samples {
    /// The node's latest point.
    pub fn node(&self, name: &str) -> Option<Point> {
        self.read().nodes.get(name).cloned()
    }

    /// The pod's latest point.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodPoint> {
        self.read()
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one node's summary: new raw samples, and points for what has two.
    pub fn record(&self, node: &str, summary: &Value) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(raw) = raw(summary.get("node")) {
            if let Some(usage) = state.raw_nodes.get(node).and_then(|old| rate(old, &raw)) {
                state.nodes.insert(node.to_string(), usage);
            }
            state.raw_nodes.insert(node.to_string(), raw);
        }
        let pods = summary
            .get("pods")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Pods this node reported before and no longer does are gone (or moved).
        let reported: std::collections::HashSet<(String, String)> =
            pods.iter().filter_map(pod_key).collect();
        let gone: Vec<(String, String)> = state
            .pod_nodes
            .iter()
            .filter(|(key, owner)| owner.as_str() == node && !reported.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            state.forget_pod(&key);
        }
        for pod in &pods {
            let Some((namespace, name)) = pod_key(pod) else {
                continue;
            };
            let containers = pod
                .get("containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut usages = Vec::new();
            let mut window: Option<(SystemTime, Duration)> = None;
            let mut complete = !containers.is_empty();
            for container in &containers {
                let Some(cname) = container.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let key = (namespace.clone(), name.clone(), cname.to_string());
                let Some(raw) = raw(Some(container)) else {
                    complete = false;
                    continue;
                };
                match state
                    .raw_containers
                    .get(&key)
                    .and_then(|old| rate(old, &raw))
                {
                    Some(point) => {
                        window.get_or_insert((point.timestamp, point.window));
                        usages.push((cname.to_string(), point.usage));
                    }
                    None => complete = false,
                }
                state.raw_containers.insert(key, raw);
            }
            let pod_key = (namespace, name);
            state.pod_nodes.insert(pod_key.clone(), node.to_string());
            match (complete, window) {
                (true, Some((timestamp, window))) => {
                    let usage = Usage {
                        cpu_nano_cores: usages.iter().map(|(_, u)| u.cpu_nano_cores).sum(),
                        memory_bytes: usages.iter().map(|(_, u)| u.memory_bytes).sum(),
                    };
                    state.pods.insert(
                        pod_key,
                        PodPoint {
                            point: Point {
                                timestamp,
                                window,
                                usage,
                            },
                            containers: usages,
                        },
                    );
                }
                // A container without two samples yet: no point, as metrics-server.
                _ => {
                    state.pods.remove(&pod_key);
                }
            }
        }
    }

    /// Forgets nodes that are no longer registered.
    fn retain_nodes(&self, nodes: &[String]) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.nodes.retain(|n, _| nodes.contains(n));
        state.raw_nodes.retain(|n, _| nodes.contains(n));
        let gone: Vec<(String, String)> = state
            .pod_nodes
            .iter()
            .filter(|(_, owner)| !nodes.contains(owner))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            state.forget_pod(&key);
        }
    }
}

fn pod_key(pod: &Value) -> Option<(String, String)> {
    let reference = pod.get("podRef")?;
    Some((
        reference.get("namespace")?.as_str()?.to_string(),
        reference.get("name")?.as_str()?.to_string(),
    ))
}

/// The cumulative CPU, working set and time of a summary entry (node or container).
fn raw(entry: Option<&Value>) -> Option<Raw> {
    let entry = entry?;
    let cpu = entry.get("cpu")?;
    let cpu_ns = cpu.get("usageCoreNanoSeconds")?.as_u64()?;
    let time = parse_time(cpu.get("time")?.as_str()?)?;
    let memory = entry
        .pointer("/memory/workingSetBytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(Raw {
        time,
        cpu_ns,
        memory,
    })
}

/// The usage between two samples; none if the counter went back (a restart)
/// or no time passed.
fn rate(old: &Raw, new: &Raw) -> Option<Point> {
    let window = new.time.duration_since(old.time).ok()?;
    if window.is_zero() || new.cpu_ns < old.cpu_ns {
        return None;
    }
    let cores = (new.cpu_ns - old.cpu_ns) as u128 * 1_000_000_000 / window.as_nanos().max(1);
    Some(Point {
        timestamp: new.time,
        window,
        usage: Usage {
            cpu_nano_cores: u64::try_from(cores).unwrap_or(u64::MAX),
            memory_bytes: new.memory,
        },
    })
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(parsed))
}

/// Scrapes every node's kubelet each [`RESOLUTION`] until the future is dropped.
pub async fn run(api: Arc<Api>) {
    let Some(client) = api.kubelet.clone() else {
        return;
    };
    let mut ticker = tokio::time::interval(RESOLUTION);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let nodes = match nodes(&api).await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::debug!(%error, "metrics: cannot list nodes");
                continue;
            }
        };
        api.resource_metrics
            .retain_nodes(&nodes.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        let scrapes = nodes.into_iter().map(|(name, object)| {
            let client = client.clone();
            let api = api.clone();
            async move {
                let Some((ip, port)) = crate::kubelet_proxy::kubelet_address(&object) else {
                    return;
                };
                let fetched = tokio::time::timeout(
                    RESOLUTION,
                    client.get(
                        ip,
                        port,
                        "/stats/summary?only_cpu_and_memory=true",
                        MAX_SUMMARY,
                    ),
                )
                .await;
                let body = match fetched {
                    Ok(Ok(body)) => body,
                    Ok(Err(error)) => {
                        tracing::debug!(node = %name, %error, "metrics: cannot scrape kubelet");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(node = %name, "metrics: kubelet scrape timed out");
                        return;
                    }
                };
                match serde_json::from_slice::<Value>(&body) {
                    Ok(summary) => api.resource_metrics.record(&name, &summary),
                    Err(error) => tracing::debug!(node = %name, %error, "metrics: bad summary"),
                }
            }
        });
        futures::future::join_all(scrapes).await;
    }
}

/// Every registered node's name and object.
async fn nodes(api: &Api) -> Result<Vec<(String, Value)>, String> {
    let resource = api
        .registry
        .get("", "v1", "nodes")
        .ok_or("nodes are not served")?;
    let page = api
        .store
        .list(&objects::prefix(&resource, None), None, 0, 0)
        .await
        .map_err(|e| e.to_string())?;
    Ok(page
        .kvs
        .iter()
        .filter_map(|kv| objects::decode(&kv.value, kv.mod_revision).ok())
        .map(|node| (objects::name(&node).to_string(), node))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(at: &str, node_ns: u64, pods: &[(&str, u64, u64)]) -> Value {
        json!({
            "node": {"cpu": {"time": at, "usageCoreNanoSeconds": node_ns},
                     "memory": {"time": at, "workingSetBytes": 1 << 30}},
            "pods": pods.iter().map(|(name, ns, mem)| json!({
                "podRef": {"name": name, "namespace": "default"},
                "containers": [{"name": "c",
                                "cpu": {"time": at, "usageCoreNanoSeconds": ns},
                                "memory": {"time": at, "workingSetBytes": mem}}],
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn cpu_is_the_rate_between_two_scrapes() {
        let samples = Samples::default();
        samples.record(
            "n",
            &summary("2026-12-03T10:00:00Z", 1_000_000_000, &[("web", 0, 4096)]),
        );
        assert!(samples.node("n").is_none(), "one sample is not a rate");
        assert!(samples.pod("default", "web").is_none());
        // 15 s later: the node used 3 CPU-seconds (200m), the pod 1.5 (100m).
        samples.record(
            "n",
            &summary(
                "2026-12-03T10:00:15Z",
                4_000_000_000,
                &[("web", 1_500_000_000, 8192)],
            ),
        );
        let node = samples.node("n").expect("node point");
        assert_eq!(node.window, Duration::from_secs(15));
        assert_eq!(node.usage.cpu_nano_cores, 200_000_000);
        let pod = samples.pod("default", "web").expect("pod point");
        assert_eq!(
            pod.containers,
            vec![(
                "c".to_string(),
                Usage {
                    cpu_nano_cores: 100_000_000,
                    memory_bytes: 8192
                }
            )]
        );
    }

    #[test]
    fn a_restarted_counter_or_a_vanished_pod_leaves_no_point() {
        let samples = Samples::default();
        samples.record(
            "n",
            &summary("2026-12-03T10:00:00Z", 10, &[("web", 5_000, 1)]),
        );
        samples.record(
            "n",
            &summary("2026-12-03T10:00:15Z", 20, &[("web", 6_000, 1)]),
        );
        assert!(samples.pod("default", "web").is_some());
        // The container restarted: its counter went back.
        samples.record("n", &summary("2026-12-03T10:00:30Z", 30, &[("web", 10, 1)]));
        assert!(samples.pod("default", "web").is_none());
        samples.record("n", &summary("2026-12-03T10:00:45Z", 40, &[("web", 20, 1)]));
        assert!(samples.pod("default", "web").is_some());
        // The pod is gone from the node's summary.
        samples.record("n", &summary("2026-12-03T10:01:00Z", 50, &[]));
        assert!(samples.pod("default", "web").is_none());
        samples.retain_nodes(&[]);
        assert!(samples.node("n").is_none());
    }
}
