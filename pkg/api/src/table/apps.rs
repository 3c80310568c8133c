//! Printers for workload kinds: deployments, replica sets, replication
//! controllers, stateful sets, daemon sets, jobs, cron jobs, controller
//! revisions, horizontal pod autoscalers and pod disruption budgets.

use super::format::{
    Clock, NONE, bool_ptr, container_cells, format_labels, has_condition, int, int_or_string, list,
    quantity, selector_string, text,
};
use super::{Col, Printer, Row};
use crate::selector::LabelSelector;
use serde_json::{Value, json};

pub(crate) fn printer(group: &str, kind: &str) -> Option<(&'static [Col], Printer)> {
    let found: (&'static [Col], Printer) = match (group, kind) {
        ("apps", "Deployment") => (DEPLOYMENT, print_deployment),
        ("apps", "ReplicaSet") => (REPLICA_SET, print_replica_set),
        ("", "ReplicationController") => (REPLICA_SET, print_replication_controller),
        ("apps", "StatefulSet") => (STATEFUL_SET, print_stateful_set),
        ("apps", "DaemonSet") => (DAEMON_SET, print_daemon_set),
        ("apps", "ControllerRevision") => (CONTROLLER_REVISION, print_controller_revision),
        ("batch", "Job") => (JOB, print_job),
        ("batch", "CronJob") => (CRON_JOB, print_cron_job),
        ("autoscaling", "HorizontalPodAutoscaler") => (HPA, print_hpa),
        ("policy", "PodDisruptionBudget") => (PDB, print_pdb),
        _ => return None,
    };
    Some(found)
}

const CONTAINERS: Col = Col::new(
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Col = Col::new(
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Col = Col::new(
    "Selector",
    "string",
    1,
    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
);

const DEPLOYMENT: &[Col] = &[
    Col::name(),
    Col::new("Ready", "string", 0, "Number of the pod with ready state"),
    Col::new(
        "Up-to-date",
        "integer",
        0,
        "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
    ),
    Col::new(
        "Available",
        "integer",
        0,
        "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    Col::age(),
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn print_deployment(d: &Value, clock: &Clock) -> Row {
    let (names, images) = container_cells(&d["spec"]["template"]["spec"]);
    let status = &d["status"];
    Row::new(vec![
        d["metadata"]["name"].clone(),
        json!(format!(
            "{}/{}",
            int(&status["readyReplicas"]),
            int(&d["spec"]["replicas"])
        )),
        json!(int(&status["updatedReplicas"])),
        json!(int(&status["availableReplicas"])),
        json!(clock.age(d)),
        json!(names),
        json!(images),
        json!(selector_string(&d["spec"]["selector"])),
    ])
}

const REPLICA_SET: &[Col] = &[
    Col::name(),
    Col::new(
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired pods.",
    ),
    Col::new(
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of non-terminating pods.",
    ),
    Col::new(
        "Ready",
        "integer",
        0,
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    Col::age(),
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn print_replica_set(rs: &Value, clock: &Clock) -> Row {
    replicas_row(rs, clock, selector_string(&rs["spec"]["selector"]))
}

fn print_replication_controller(rc: &Value, clock: &Clock) -> Row {
    let selector = rc["spec"]["selector"]
        .as_object()
        .map_or_else(String::new, |m| {
            LabelSelector::from_set(
                m.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
            )
            .to_string()
        });
    replicas_row(rc, clock, selector)
}

fn replicas_row(obj: &Value, clock: &Clock, selector: String) -> Row {
    let (names, images) = container_cells(&obj["spec"]["template"]["spec"]);
    Row::new(vec![
        obj["metadata"]["name"].clone(),
        json!(int(&obj["spec"]["replicas"])),
        json!(int(&obj["status"]["replicas"])),
        json!(int(&obj["status"]["readyReplicas"])),
        json!(clock.age(obj)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

const STATEFUL_SET: &[Col] = &[
    Col::name(),
    Col::new("Ready", "string", 0, "Number of the pod with ready state"),
    Col::age(),
    CONTAINERS,
    IMAGES,
];

fn print_stateful_set(sts: &Value, clock: &Clock) -> Row {
    let (names, images) = container_cells(&sts["spec"]["template"]["spec"]);
    Row::new(vec![
        sts["metadata"]["name"].clone(),
        json!(format!(
            "{}/{}",
            int(&sts["status"]["readyReplicas"]),
            int(&sts["spec"]["replicas"])
        )),
        json!(clock.age(sts)),
        json!(names),
        json!(images),
    ])
}

const DAEMON_SET: &[Col] = &[
    Col::name(),
    Col::new(
        "Desired",
        "integer",
        0,
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
    ),
    Col::new(
        "Current",
        "integer",
        0,
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    Col::new(
        "Ready",
        "integer",
        0,
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    Col::new(
        "Up-to-date",
        "integer",
        0,
        "The total number of nodes that are running updated daemon pod",
    ),
    Col::new(
        "Available",
        "integer",
        0,
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    Col::new(
        "Node Selector",
        "string",
        0,
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    Col::age(),
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn print_daemon_set(ds: &Value, clock: &Clock) -> Row {
    let (names, images) = container_cells(&ds["spec"]["template"]["spec"]);
    let status = &ds["status"];
    Row::new(vec![
        ds["metadata"]["name"].clone(),
        json!(int(&status["desiredNumberScheduled"])),
        json!(int(&status["currentNumberScheduled"])),
        json!(int(&status["numberReady"])),
        json!(int(&status["updatedNumberScheduled"])),
        json!(int(&status["numberAvailable"])),
        json!(format_labels(
            &ds["spec"]["template"]["spec"]["nodeSelector"]
        )),
        json!(clock.age(ds)),
        json!(names),
        json!(images),
        json!(selector_string(&ds["spec"]["selector"])),
    ])
}

const CONTROLLER_REVISION: &[Col] = &[
    Col::name(),
    Col::new("Controller", "string", 0, "Controller of the object"),
    Col::new(
        "Revision",
        "string",
        0,
        "Revision indicates the revision of the state represented by Data.",
    ),
    Col::age(),
];

fn print_controller_revision(cr: &Value, clock: &Clock) -> Row {
    let owner = list(&cr["metadata"]["ownerReferences"])
        .iter()
        .find(|o| o["controller"].as_bool() == Some(true));
    let controller = owner.map_or_else(
        || NONE.to_string(),
        |o| {
            let api_version = text(&o["apiVersion"]);
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let kind = text(&o["kind"]).to_lowercase();
            let group_kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{group_kind}/{}", text(&o["name"]))
        },
    );
    Row::new(vec![
        cr["metadata"]["name"].clone(),
        json!(controller),
        json!(int(&cr["revision"])),
        json!(clock.age(cr)),
    ])
}

const JOB: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", 0, "Status of the job."),
    Col::new(
        "Completions",
        "string",
        0,
        "The completion status of the job.",
    ),
    Col::new(
        "Duration",
        "string",
        0,
        "Time required to complete the job.",
    ),
    Col::age(),
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn print_job(job: &Value, clock: &Clock) -> Row {
    let spec = &job["spec"];
    let status = &job["status"];
    let succeeded = int(&status["succeeded"]);
    let completions = match spec["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(&spec["parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        status["startTime"].as_str(),
        status["completionTime"].as_str(),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => clock.since(&json!(start)),
        (Some(start), Some(end)) => Clock::between(start, end).unwrap_or_default(),
    };
    let conditions = &status["conditions"];
    let state = if has_condition(conditions, "Complete") {
        "Complete"
    } else if has_condition(conditions, "Failed") {
        "Failed"
    } else if job["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has_condition(conditions, "Suspended") {
        "Suspended"
    } else if has_condition(conditions, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(conditions, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = container_cells(&spec["template"]["spec"]);
    Row::new(vec![
        job["metadata"]["name"].clone(),
        json!(state),
        json!(completions),
        json!(duration),
        json!(clock.age(job)),
        json!(names),
        json!(images),
        json!(selector_string(&spec["selector"])),
    ])
}

const CRON_JOB: &[Col] = &[
    Col::name(),
    Col::new(
        "Schedule",
        "string",
        0,
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    Col::new(
        "Timezone",
        "string",
        0,
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
    ),
    Col::new(
        "Suspend",
        "boolean",
        0,
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.",
    ),
    Col::new(
        "Active",
        "integer",
        0,
        "A list of pointers to currently running jobs.",
    ),
    Col::new(
        "Last Schedule",
        "string",
        0,
        "Information when was the last time the job was successfully scheduled.",
    ),
    Col::age(),
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn print_cron_job(cj: &Value, clock: &Clock) -> Row {
    let spec = &cj["spec"];
    let last = match cj["status"]["lastScheduleTime"].as_str() {
        Some(_) => clock.since(&cj["status"]["lastScheduleTime"]),
        None => NONE.into(),
    };
    let job_spec = &spec["jobTemplate"]["spec"];
    let (names, images) = container_cells(&job_spec["template"]["spec"]);
    Row::new(vec![
        cj["metadata"]["name"].clone(),
        json!(text(&spec["schedule"])),
        json!(spec["timeZone"].as_str().unwrap_or(NONE)),
        json!(bool_ptr(&spec["suspend"])),
        json!(list(&cj["status"]["active"]).len()),
        json!(last),
        json!(clock.age(cj)),
        json!(names),
        json!(images),
        json!(selector_string(&job_spec["selector"])),
    ])
}

const HPA: &[Col] = &[
    Col::name(),
    Col::new(
        "Reference",
        "string",
        0,
        "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
    ),
    Col::new(
        "Targets",
        "string",
        0,
        "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).",
    ),
    Col::new(
        "MinPods",
        "string",
        0,
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    Col::new(
        "MaxPods",
        "string",
        0,
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    Col::new(
        "Replicas",
        "string",
        0,
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
    ),
    Col::age(),
];

fn print_hpa(hpa: &Value, clock: &Clock) -> Row {
    let spec = &hpa["spec"];
    let reference = format!(
        "{}/{}",
        text(&spec["scaleTargetRef"]["kind"]),
        text(&spec["scaleTargetRef"]["name"])
    );
    let min = spec["minReplicas"]
        .as_i64()
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    Row::new(vec![
        hpa["metadata"]["name"].clone(),
        json!(reference),
        json!(hpa_targets(hpa)),
        json!(min),
        json!(int(&spec["maxReplicas"])),
        json!(int(&hpa["status"]["currentReplicas"])),
        json!(clock.age(hpa)),
    ])
}

/// The TARGETS cell: `current/target` per metric, two at most. Reads
/// autoscaling/v2 metrics, or v1's `targetCPUUtilizationPercentage`.
fn hpa_targets(hpa: &Value) -> String {
    let spec = &hpa["spec"];
    let status = &hpa["status"];
    if spec.get("metrics").is_none()
        && spec.get("scaleTargetRef").is_some()
        && hpa["apiVersion"] == "autoscaling/v1"
    {
        let target = spec["targetCPUUtilizationPercentage"]
            .as_i64()
            .map_or("<auto>".into(), |t| format!("{t}%"));
        let current = status["currentCPUUtilizationPercentage"]
            .as_i64()
            .map_or("<unknown>".into(), |c| format!("{c}%"));
        return format!("cpu: {current}/{target}");
    }
    let specs = list(&spec["metrics"]);
    if specs.is_empty() {
        return NONE.into();
    }
    let statuses = list(&status["currentMetrics"]);
    let parts: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let current = statuses.get(i);
            match m["type"].as_str().unwrap_or_default() {
                "Resource" | "ContainerResource" => {
                    let key = if m["type"] == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let source = &m[key];
                    let cur = current
                        .map(|c| &c[key]["current"])
                        .filter(|c| c.is_object());
                    let name = text(&source["name"]);
                    if source["target"]["averageValue"].is_null() {
                        let cur = cur
                            .and_then(|c| c["averageUtilization"].as_i64())
                            .map_or("<unknown>".into(), |u| format!("{u}%"));
                        let target = source["target"]["averageUtilization"]
                            .as_i64()
                            .map_or("<auto>".into(), |u| format!("{u}%"));
                        format!("{name}: {cur}/{target}")
                    } else {
                        let cur = cur.map_or("<unknown>".into(), |c| quantity(&c["averageValue"]));
                        format!(
                            "{name}: {cur}/{}",
                            quantity(&source["target"]["averageValue"])
                        )
                    }
                }
                "Pods" => {
                    let cur = current
                        .filter(|c| c["pods"].is_object())
                        .map_or("<unknown>".into(), |c| {
                            quantity(&c["pods"]["current"]["averageValue"])
                        });
                    format!("{cur}/{}", quantity(&m["pods"]["target"]["averageValue"]))
                }
                kind @ ("Object" | "External") => {
                    let key = if kind == "Object" {
                        "object"
                    } else {
                        "external"
                    };
                    let target = &m[key]["target"];
                    let cur = current
                        .map(|c| &c[key]["current"])
                        .filter(|c| c.is_object());
                    if target["type"] == "AverageValue"
                        || (target["value"].is_null() && !target["averageValue"].is_null())
                    {
                        let cur = cur.map_or("<unknown>".into(), |c| quantity(&c["averageValue"]));
                        format!("{cur}/{} (avg)", quantity(&target["averageValue"]))
                    } else {
                        let cur = cur.map_or("<unknown>".into(), |c| quantity(&c["value"]));
                        format!("{cur}/{}", quantity(&target["value"]))
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    let shown = parts.iter().take(2).cloned().collect::<Vec<_>>().join(", ");
    if parts.len() > 2 {
        format!("{shown} + {} more...", parts.len() - 2)
    } else {
        shown
    }
}

const PDB: &[Col] = &[
    Col::name(),
    Col::new(
        "Min Available",
        "string",
        0,
        "The minimum number of pods that must be available.",
    ),
    Col::new(
        "Max Unavailable",
        "string",
        0,
        "The maximum number of pods that may be unavailable.",
    ),
    Col::new(
        "Allowed Disruptions",
        "integer",
        0,
        "Calculated number of pods that may be disrupted at this time.",
    ),
    Col::age(),
];

fn print_pdb(pdb: &Value, clock: &Clock) -> Row {
    let spec = &pdb["spec"];
    Row::new(vec![
        pdb["metadata"]["name"].clone(),
        json!(int_or_string(&spec["minAvailable"]).unwrap_or_else(|| "N/A".into())),
        json!(int_or_string(&spec["maxUnavailable"]).unwrap_or_else(|| "N/A".into())),
        json!(int(&pdb["status"]["disruptionsAllowed"])),
        json!(clock.age(pdb)),
    ])
}
