use super::*;
use serde_json::json;

#[test]
fn events_share_core_storage_and_rename_fields() {
    let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "Started",
        "source": {"component": "kubelet"}, "count": 2, "type": "Normal", "reportingComponent": "kubelet"});
    let events = convert(core.clone(), "events.k8s.io/v1");
    assert_eq!(events["regarding"]["name"], "p");
    assert_eq!(events["note"], "hi");
    assert_eq!(events["deprecatedCount"], 2);
    assert_eq!(events["reportingController"], "kubelet");
    assert!(events.get("involvedObject").is_none());
    assert_eq!(convert(events.clone(), "v1"), core);
    assert_eq!(to_storage(&events), Some(core));
    assert_eq!(
        storage("events.k8s.io", "events").map(|s| s.group),
        Some("")
    );
}

#[test]
fn hpa_v2_round_trips_through_v1() {
    let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
                 ],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}},
        "status": {"currentReplicas": 2, "desiredReplicas": 3,
                   "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 75}}}]}});
    let v1 = convert(v2.clone(), "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert!(v1["spec"].get("metrics").is_none());
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
    assert!(v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"].is_string());
    assert_eq!(convert(v1, "autoscaling/v2"), v2);
}

#[test]
fn a_plain_v1_hpa_becomes_a_cpu_metric() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
    let v2 = to_storage(&v1).expect("converted");
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    assert!(v2["metadata"].get("annotations").is_none());
}
