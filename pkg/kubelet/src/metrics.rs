//! The kubelet's `/metrics` in the Prometheus text format, with kube's
//! names and help texts: `kubelet_running_pods`, `kubelet_running_containers`
//! (by `container_state`) and the `kubelet_pod_start_duration_seconds`
//! histogram (from the kubelet first seeing a pod to it running).

use std::fmt::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// kube's buckets for `kubelet_pod_start_duration_seconds`.
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// A histogram with fixed buckets.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative).
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// What the pod workers record for `/metrics`; shared through the registry.
#[derive(Debug)]
pub struct Metrics {
    pod_start: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            pod_start: Mutex::new(Histogram::new(&POD_START_BUCKETS)),
        }
    }
}

/// How many containers are in each state, for `kubelet_running_containers`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerCounts {
    /// Created, not started.
    pub created: u64,
    /// Running.
    pub running: u64,
    /// Exited.
    pub exited: u64,
}

impl Metrics {
    /// Records that a pod took `took` from first seen to running.
    pub fn pod_started(&self, took: Duration) {
        self.pod_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(took.as_secs_f64());
    }

    /// The exposition text, with `running_pods` pods that have a sandbox and `containers`.
    pub fn render(&self, running_pods: u64, containers: ContainerCounts) -> String {
        let mut out = String::new();
        out.push_str("# HELP kubelet_pod_start_duration_seconds [ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run\n");
        out.push_str("# TYPE kubelet_pod_start_duration_seconds histogram\n");
        self.pod_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .render(&mut out, "kubelet_pod_start_duration_seconds");
        out.push_str(
            "# HELP kubelet_running_containers [ALPHA] Number of containers currently running\n",
        );
        out.push_str("# TYPE kubelet_running_containers gauge\n");
        for (state, n) in [
            ("created", containers.created),
            ("exited", containers.exited),
            ("running", containers.running),
        ] {
            let _ = writeln!(
                out,
                "kubelet_running_containers{{container_state=\"{state}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox\n",
        );
        out.push_str("# TYPE kubelet_running_pods gauge\n");
        let _ = writeln!(out, "kubelet_running_pods {running_pods}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_kubes_names_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.pod_started(Duration::from_millis(700));
        metrics.pod_started(Duration::from_secs(7));
        metrics.pod_started(Duration::from_secs(7200));
        let text = metrics.render(
            2,
            ContainerCounts {
                created: 0,
                running: 3,
                exited: 1,
            },
        );
        for line in [
            "# TYPE kubelet_pod_start_duration_seconds histogram",
            "kubelet_pod_start_duration_seconds_bucket{le=\"0.5\"} 0",
            "kubelet_pod_start_duration_seconds_bucket{le=\"1\"} 1",
            "kubelet_pod_start_duration_seconds_bucket{le=\"8\"} 2",
            "kubelet_pod_start_duration_seconds_bucket{le=\"3600\"} 2",
            "kubelet_pod_start_duration_seconds_bucket{le=\"+Inf\"} 3",
            "kubelet_pod_start_duration_seconds_count 3",
            "kubelet_pod_start_duration_seconds_sum 7207.7",
            "kubelet_running_containers{container_state=\"running\"} 3",
            "kubelet_running_containers{container_state=\"exited\"} 1",
            "kubelet_running_pods 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
    }
}
