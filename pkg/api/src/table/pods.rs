//! The pod printer: READY, STATUS and RESTARTS computed as `kubectl get pods` shows them.
//!
//! STATUS walks init containers (`Init:0/2`, `Init:CrashLoopBackOff`,
//! restartable sidecars), then app containers from last to first (waiting or
//! terminated reasons, `ExitCode:N`, `Signal:N`), then deletion
//! (`Terminating`, or `Unknown` for pods on an unreachable node).

use super::format::{Clock, NONE, list};
use super::{Col, Row};
use serde_json::{Value, json};

pub(crate) const POD_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new(
        "Ready",
        "string",
        0,
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Col::new(
        "Status",
        "string",
        0,
        "The aggregate status of the containers in this pod.",
    ),
    Col::new(
        "Restarts",
        "string",
        0,
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    Col::age(),
    Col::new(
        "IP",
        "string",
        1,
        "podIP is the IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    Col::new(
        "Node",
        "string",
        1,
        "NodeName indicates in which node this pod is scheduled.",
    ),
    Col::new(
        "Nominated Node",
        "string",
        1,
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
    ),
    Col::new(
        "Readiness Gates",
        "string",
        1,
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    ),
];

/// Tracks the restart count and the most recent restart time.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<(f64, String)>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += status["restartCount"].as_i64().unwrap_or(0);
        if let Some(finished) = status["lastState"]["terminated"]["finishedAt"].as_str()
            && let Some(t) = super::format::parse_timestamp(finished)
            && self.last.as_ref().is_none_or(|(prev, _)| *prev < t)
        {
            self.last = Some((t, finished.to_string()));
        }
    }
}

fn is_restartable(init: Option<&Value>) -> bool {
    init.is_some_and(|c| c["restartPolicy"] == "Always")
}

pub(crate) fn print_pod(pod: &Value, clock: &Clock) -> Row {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let init_specs = list(&spec["initContainers"]);
    let total = list(&spec["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| is_restartable(Some(c)))
            .count();
    let mut ready = 0usize;
    let phase = status["phase"].as_str().unwrap_or_default();
    let mut reason = status["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or(phase)
        .to_string();
    if list(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let init_spec = |name: &Value| init_specs.iter().find(|c| c["name"] == *name);

    let mut restarts = Restarts::default();
    let mut sidecar_restarts = Restarts::default();
    let mut initializing = false;
    let init_statuses = list(&status["initContainerStatuses"]);
    for (i, container) in init_statuses.iter().enumerate() {
        restarts.add(container);
        let restartable = is_restartable(init_spec(&container["name"]));
        if restartable {
            sidecar_restarts.add(container);
        }
        let terminated = &container["state"]["terminated"];
        let waiting_reason = container["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or_default();
        if terminated.is_object() && terminated["exitCode"].as_i64().unwrap_or(0) == 0 {
            continue;
        }
        if restartable && container["started"].as_bool() == Some(true) {
            if container["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        if terminated.is_object() {
            reason = match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match terminated["signal"].as_i64().filter(|s| *s != 0) {
                    Some(signal) => format!("Init:Signal:{signal}"),
                    None => format!(
                        "Init:ExitCode:{}",
                        terminated["exitCode"].as_i64().unwrap_or(0)
                    ),
                },
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = list(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for container in list(&status["containerStatuses"]).iter().rev() {
            restarts.add(container);
            let state = &container["state"];
            let waiting = state["waiting"]["reason"].as_str().unwrap_or_default();
            let terminated = &state["terminated"];
            let terminated_reason = terminated["reason"].as_str().unwrap_or_default();
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if terminated.is_object() {
                reason = match terminated["signal"].as_i64().filter(|s| *s != 0) {
                    Some(signal) => format!("Signal:{signal}"),
                    None => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
                };
            } else if container["ready"].as_bool() == Some(true) && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = list(&status["conditions"])
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    let deleting = pod["metadata"]["deletionTimestamp"].is_string();
    if deleting && status["reason"] == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_cell = match (&restarts.last, restarts.count) {
        (Some((_, when)), n) if n != 0 => {
            format!("{n} ({} ago)", clock.since(&Value::String(when.clone())))
        }
        (_, n) => n.to_string(),
    };

    let ip = list(&status["podIPs"])
        .first()
        .and_then(|ip| ip["ip"].as_str())
        .unwrap_or_default();
    let or_none = |s: &str| {
        if s.is_empty() {
            NONE.to_string()
        } else {
            s.to_string()
        }
    };
    let gates = list(&spec["readinessGates"]);
    let gates_cell = if gates.is_empty() {
        NONE.to_string()
    } else {
        let conds = list(&status["conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                conds
                    .iter()
                    .find(|c| c["type"] == g["conditionType"])
                    .is_some_and(|c| c["status"] == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    Row {
        cells: vec![
            pod["metadata"]["name"].clone(),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_cell),
            json!(clock.age(pod)),
            json!(or_none(ip)),
            json!(or_none(spec["nodeName"].as_str().unwrap_or_default())),
            json!(or_none(
                status["nominatedNodeName"].as_str().unwrap_or_default()
            )),
            json!(gates_cell),
        ],
        conditions,
    }
}
