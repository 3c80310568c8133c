//! The pod status the kubelet reports, computed from what it observed of the
//! pod's containers: phase, conditions (PodReadyToStartContainers,
//! Initialized, ContainersReady, Ready; PodScheduled kept from the
//! scheduler), container statuses with state, last state, restart count,
//! image and IDs, host and pod IPs, QoS class and start time, worded and
//! shaped as Kubernetes reports them.

use crate::state::ContainerRecord;
use k8s_openapi::api::core::v1::Pod;
use kite_runtime::monitor::Exited;
use serde_json::{Value, json};

/// What the kubelet knows of one container of the pod.
#[derive(Clone, Debug, Default)]
pub struct ContainerView {
    /// Name in the pod spec.
    pub name: String,
    /// Image as the spec names it.
    pub image: String,
    /// The newest instance, if one was started.
    pub current: Option<Instance>,
    /// The instance before it, if any (its exit is `lastState`).
    pub previous: Option<(ContainerRecord, Exited)>,
    /// Why it is not running, when the kubelet knows (ErrImagePull, CrashLoopBackOff...).
    pub waiting: Option<(String, String)>,
    /// Readiness (probe) of the running instance.
    pub ready: bool,
    /// Startup (probe) of the running instance.
    pub started: bool,
    /// Whether the exited current instance will be restarted.
    pub will_restart: bool,
    /// Termination message of the exited current instance.
    pub termination_message: Option<String>,
    /// A restartable init container (sidecar).
    pub sidecar: bool,
}

/// A started container instance and whether it still runs.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The record.
    pub record: ContainerRecord,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How it exited, once it has.
    pub exited: Option<Exited>,
}

/// Everything the status is computed from.
#[derive(Clone, Debug, Default)]
pub struct PodView {
    /// Init containers in order.
    pub init: Vec<ContainerView>,
    /// App containers.
    pub app: Vec<ContainerView>,
    /// The sandbox exists.
    pub sandbox_ready: bool,
    /// The node's IP.
    pub host_ip: String,
    /// The pod's IPs (empty until it has some).
    pub pod_ips: Vec<String>,
    /// When the kubelet first saw the pod (RFC 3339).
    pub start_time: String,
    /// The pod's restart policy.
    pub restart_policy: String,
    /// The pod is being deleted and its containers were stopped.
    pub terminated: bool,
}

/// Seconds precision, as `metav1.Time` serialises.
pub fn seconds(time: &str) -> String {
    match time.find('.') {
        Some(dot) if time.ends_with('Z') => format!("{}Z", &time[..dot]),
        _ => time.to_string(),
    }
}

fn container_id(record: &ContainerRecord) -> String {
    format!("kite://{}", record.id)
}

fn terminated(record: &ContainerRecord, exited: &Exited, message: Option<&str>) -> Value {
    let reason = if exited.oom_killed {
        "OOMKilled"
    } else if exited.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let mut t = json!({
        "exitCode": exited.exit_code,
        "reason": reason,
        "startedAt": seconds(&exited.started_at),
        "finishedAt": seconds(&exited.finished_at),
        "containerID": container_id(record),
    });
    if let Some(signal) = exited.signal {
        t["signal"] = json!(signal);
    }
    if let Some(message) = message.filter(|m| !m.is_empty()) {
        t["message"] = json!(message);
    }
    t
}

/// The status entry of one container.
pub fn container_status(view: &ContainerView, init_pending: bool) -> Value {
    let mut status = json!({
        "name": view.name,
        "image": view.image,
        "imageID": "",
        "ready": false,
        "restartCount": 0,
        "started": false,
        "state": {},
        "lastState": {},
    });
    if let Some((record, exited)) = &view.previous {
        status["lastState"] = json!({"terminated": terminated(record, exited, None)});
    }
    let waiting = |reason: &str, message: Option<&str>| {
        let mut w = json!({"reason": reason});
        if let Some(m) = message {
            w["message"] = json!(m);
        }
        json!({"waiting": w})
    };
    match &view.current {
        None => {
            status["state"] = match &view.waiting {
                Some((reason, message)) => waiting(reason, Some(message)),
                None if init_pending => waiting("PodInitializing", None),
                None => waiting("ContainerCreating", None),
            };
        }
        Some(instance) => {
            let record = &instance.record;
            // The runtime's name for the image, as containerd reports it.
            status["image"] = json!(if record.image_name.is_empty() {
                &view.image
            } else {
                &record.image_name
            });
            status["imageID"] = json!(record.image_id);
            status["containerID"] = json!(container_id(record));
            status["restartCount"] = json!(record.attempt);
            match &instance.exited {
                None => {
                    status["state"] =
                        json!({"running": {"startedAt": seconds(&instance.started_at)}});
                    status["ready"] = json!(view.ready);
                    status["started"] = json!(view.started);
                }
                Some(exited) => {
                    let term = terminated(record, exited, view.termination_message.as_deref());
                    if view.will_restart {
                        status["lastState"] = json!({"terminated": term});
                        status["state"] = match &view.waiting {
                            Some((reason, message)) => waiting(reason, Some(message)),
                            None => waiting("ContainerCreating", None),
                        };
                    } else {
                        status["state"] = json!({"terminated": term});
                    }
                }
            }
        }
    }
    status
}

fn init_done(view: &PodView) -> bool {
    view.init.iter().all(|c| match &c.current {
        Some(i) if c.sidecar => i.exited.is_none() && c.started,
        Some(i) => i.exited.as_ref().is_some_and(|e| e.exit_code == 0),
        None => false,
    })
}

/// The pod phase Kubernetes would report.
pub fn phase(view: &PodView) -> &'static str {
    let never = view.restart_policy == "Never";
    let init_failed = view.init.iter().any(|c| {
        !c.sidecar
            && c.current
                .as_ref()
                .and_then(|i| i.exited.as_ref())
                .is_some_and(|e| e.exit_code != 0)
            && !c.will_restart
    });
    if init_failed && never {
        return "Failed";
    }
    if !init_done(view) && !view.terminated {
        return "Pending";
    }
    let (mut running, mut waiting, mut succeeded, mut failed, mut restarting) = (0, 0, 0, 0, 0);
    for c in &view.app {
        match &c.current {
            None => waiting += 1,
            Some(i) => match &i.exited {
                None => running += 1,
                Some(_) if c.will_restart => restarting += 1,
                Some(e) if e.exit_code == 0 => succeeded += 1,
                Some(_) => failed += 1,
            },
        }
    }
    if waiting > 0 && !view.terminated {
        return "Pending";
    }
    if running > 0 || restarting > 0 {
        return "Running";
    }
    if failed > 0 {
        "Failed"
    } else if succeeded > 0 || view.terminated {
        "Succeeded"
    } else {
        "Pending"
    }
}

/// The pod's `status` (to merge-patch), keeping `previous` conditions the
/// kubelet does not own and transition times of unchanged ones.
pub fn pod_status(pod: &Pod, view: &PodView, now: &str) -> Value {
    let phase = phase(view);
    let init_complete = init_done(view);
    let completed = matches!(phase, "Succeeded" | "Failed");
    let previous_conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = previous_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or_else(|| now.to_string(), |t| t.0.to_string());
        let mut c = json!({
            "type": type_, "status": status, "lastProbeTime": null,
            "lastTransitionTime": seconds(&since),
        });
        if let Some(reason) = reason {
            c["reason"] = json!(reason);
        }
        if let Some(message) = message {
            c["message"] = json!(message);
        }
        c
    };
    let list = |names: Vec<&str>| format!("[{}]", names.join(" "));
    let unready: Vec<&str> = view
        .app
        .iter()
        .filter(|c| !(c.ready && c.current.as_ref().is_some_and(|i| i.exited.is_none())))
        .map(|c| c.name.as_str())
        .chain(
            view.init
                .iter()
                .filter(|c| c.sidecar && !c.ready)
                .map(|c| c.name.as_str()),
        )
        .collect();
    let incomplete: Vec<&str> = view
        .init
        .iter()
        .filter(|c| match &c.current {
            Some(i) if c.sidecar => i.exited.is_some(),
            Some(i) => i.exited.as_ref().is_none_or(|e| e.exit_code != 0),
            None => true,
        })
        .map(|c| c.name.as_str())
        .collect();
    let (ready, ready_reason, ready_message) = if completed {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!("containers with unready status: {}", list(unready))),
        )
    };
    let initialized = if completed && init_complete {
        condition("Initialized", true, Some("PodCompleted"), None)
    } else if init_complete {
        condition("Initialized", true, None, None)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                list(incomplete)
            )),
        )
    };
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            view.sandbox_ready && !view.terminated,
            None,
            None,
        ),
        initialized,
        condition("Ready", ready, ready_reason, ready_message.clone()),
        condition("ContainersReady", ready, ready_reason, ready_message),
    ];
    for c in &previous_conditions {
        if !conditions.iter().any(|n| n["type"] == c.type_.as_str()) {
            conditions.push(serde_json::to_value(c).unwrap_or(Value::Null));
        }
    }
    let init_pending = !init_complete;
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": seconds(&view.start_time),
        "qosClass": crate::container::qos_class(pod),
        "containerStatuses": view.app.iter().map(|c| container_status(c, init_pending)).collect::<Vec<_>>(),
    });
    if !view.init.is_empty() {
        status["initContainerStatuses"] = json!(
            view.init
                .iter()
                .map(|c| container_status(c, false))
                .collect::<Vec<_>>()
        );
    }
    if let Some(first) = view.pod_ips.first() {
        status["podIP"] = json!(first);
        status["podIPs"] = json!(
            view.pod_ips
                .iter()
                .map(|ip| json!({"ip": ip}))
                .collect::<Vec<_>>()
        );
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Exited {
        Exited {
            exit_code: code,
            signal: None,
            oom_killed: false,
            started_at: "2024-01-01T00:00:00.5Z".into(),
            finished_at: "2024-01-01T00:00:01.123456789Z".into(),
        }
    }

    fn instance(attempt: i32, exit: Option<i32>) -> Instance {
        Instance {
            record: ContainerRecord {
                name: "c".into(),
                id: format!("id{attempt}"),
                attempt,
                image_id: "docker.io/library/busybox@sha256:ab".into(),
                ..ContainerRecord::default()
            },
            started_at: "2024-01-01T00:00:00.5Z".into(),
            exited: exit.map(exited),
        }
    }

    fn view(app: Vec<ContainerView>, policy: &str) -> PodView {
        PodView {
            app,
            sandbox_ready: true,
            host_ip: "10.0.0.1".into(),
            start_time: "2024-01-01T00:00:00Z".into(),
            restart_policy: policy.into(),
            ..PodView::default()
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True",
                                        "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_running_ready_container_makes_a_ready_running_pod() {
        let c = ContainerView {
            name: "c".into(),
            image: "busybox".into(),
            current: Some(instance(0, None)),
            ready: true,
            started: true,
            ..ContainerView::default()
        };
        let s = pod_status(&pod(), &view(vec![c], "Always"), "2024-01-01T00:00:05Z");
        assert_eq!(s["phase"], "Running");
        let types: Vec<_> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].clone(), c["status"].clone()))
            .collect();
        assert!(types.contains(&(json!("Ready"), json!("True"))));
        assert!(types.contains(&(json!("PodScheduled"), json!("True"))));
        assert!(types.contains(&(json!("PodReadyToStartContainers"), json!("True"))));
        let cs = &s["containerStatuses"][0];
        assert_eq!(cs["state"]["running"]["startedAt"], "2024-01-01T00:00:00Z");
        assert_eq!(cs["containerID"], "kite://id0");
        assert_eq!(s["qosClass"], "BestEffort");
    }

    #[test]
    fn crash_loops_show_waiting_with_the_last_exit() {
        let c = ContainerView {
            name: "c".into(),
            image: "busybox".into(),
            current: Some(instance(2, Some(1))),
            will_restart: true,
            waiting: Some((
                "CrashLoopBackOff".into(),
                "back-off 20s restarting failed container=c pod=p_default(u)".into(),
            )),
            ..ContainerView::default()
        };
        let s = pod_status(&pod(), &view(vec![c], "Always"), "now");
        assert_eq!(s["phase"], "Running");
        let cs = &s["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cs["restartCount"], 2);
        assert_eq!(s["conditions"][2]["reason"], "ContainersNotReady");
        assert_eq!(
            s["conditions"][2]["message"],
            "containers with unready status: [c]"
        );
    }

    #[test]
    fn phases_follow_exits_and_restart_policy() {
        let done = |code| ContainerView {
            name: "c".into(),
            current: Some(instance(0, Some(code))),
            ..ContainerView::default()
        };
        assert_eq!(phase(&view(vec![done(0)], "Never")), "Succeeded");
        assert_eq!(phase(&view(vec![done(3)], "Never")), "Failed");
        let waiting = ContainerView {
            name: "c".into(),
            ..ContainerView::default()
        };
        assert_eq!(phase(&view(vec![waiting], "Always")), "Pending");
        let mut v = view(vec![done(0)], "Never");
        v.init = vec![ContainerView {
            name: "i".into(),
            current: Some(instance(0, None)),
            ..ContainerView::default()
        }];
        assert_eq!(phase(&v), "Pending");
        let s = pod_status(&pod(), &v, "now");
        assert_eq!(
            s["conditions"][1]["message"],
            "containers with incomplete status: [i]"
        );
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["running"]["startedAt"],
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn oom_kills_and_termination_messages_are_reported() {
        let mut e = exited(137);
        e.oom_killed = true;
        e.signal = Some(9);
        let c = ContainerView {
            name: "c".into(),
            current: Some(Instance {
                exited: Some(e),
                ..instance(0, None)
            }),
            termination_message: Some("bye".into()),
            ..ContainerView::default()
        };
        let s = container_status(&c, false);
        assert_eq!(s["state"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(s["state"]["terminated"]["message"], "bye");
        assert_eq!(s["state"]["terminated"]["signal"], 9);
        assert_eq!(
            s["state"]["terminated"]["finishedAt"],
            "2024-01-01T00:00:01Z"
        );
    }
}
