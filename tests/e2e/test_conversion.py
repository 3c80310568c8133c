"""Kinds two APIs serve from one storage: Events (core and events.k8s.io) and HPAs (autoscaling v1 and v2)."""

import json

import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    s = KiteServer(str(tmp_path_factory.mktemp("conversion")))
    s.start()
    yield s
    s.stop()


def get_json(server, *args):
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def test_events_are_one_collection_in_two_shapes(server):
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "core-made", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Started", "message": "Started container web", "type": "Normal",
            "source": {"component": "kubelet"}, "count": 1,
            "firstTimestamp": "2026-11-22T10:00:00Z", "lastTimestamp": "2026-11-22T10:00:00Z"}
    server.kubectl("create", "-f", "-", input=json.dumps(core))
    seen = get_json(server, "events.v1.events.k8s.io", "core-made")
    assert seen["apiVersion"] == "events.k8s.io/v1"
    assert seen["regarding"]["name"] == "web" and seen["note"] == "Started container web"
    assert seen["deprecatedSource"] == {"component": "kubelet"}

    modern = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
              "metadata": {"name": "new-made", "namespace": "default"},
              "eventTime": "2026-11-22T10:00:00.000000Z", "reportingController": "kite.io/scheduler",
              "reportingInstance": "kite-1", "action": "Scheduling", "reason": "Scheduled", "type": "Normal",
              "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
              "note": "Successfully assigned default/web to node-1"}
    server.kubectl("create", "-f", "-", input=json.dumps(modern))
    names = {e["metadata"]["name"]: e for e in get_json(server, "events", "-n", "default")["items"]}
    assert {"core-made", "new-made"} <= set(names)
    assert names["new-made"]["apiVersion"] == "v1"
    assert names["new-made"]["message"] == "Successfully assigned default/web to node-1"
    assert names["new-made"]["involvedObject"]["name"] == "web"
    # Field selectors of core events work on both.
    selected = get_json(server, "events", "-n", "default", "--field-selector", "involvedObject.name=web")
    assert len(selected["items"]) >= 2
    described = server.kubectl("describe", "pod", "web", "-n", "default", check=False)
    assert described.returncode != 0  # no such pod; the events alone do not make one


def test_hpa_v2_reads_as_v1_and_back(server):
    server.kubectl("create", "deployment", "web", "--image=busybox")
    server.kubectl("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=3")
    v1 = get_json(server, "horizontalpodautoscalers.v1.autoscaling", "web")
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert v1["spec"]["maxReplicas"] == 3

    hpa_v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "old"},
              "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                       "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}}
    server.kubectl("create", "-f", "-", input=json.dumps(hpa_v1))
    v2 = get_json(server, "horizontalpodautoscalers.v2.autoscaling", "old")
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    server.kubectl("patch", "horizontalpodautoscalers.v1.autoscaling", "old", "--type=merge",
                   "-p", '{"spec":{"maxReplicas":6}}')
    assert get_json(server, "hpa", "old")["spec"]["maxReplicas"] == 6


def test_python_clients_see_both_shapes(server):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    # Raw JSON: the client's model refuses a null eventTime, which old-style
    # core events have here as in Kubernetes.
    listed = json.loads(client.EventsV1Api(api_client).list_namespaced_event("default", _preload_content=False).data)
    assert listed["apiVersion"] == "events.k8s.io/v1"
    assert "core-made" in {e["metadata"]["name"] for e in listed["items"]}
    hpa = client.AutoscalingV1Api(api_client).read_namespaced_horizontal_pod_autoscaler("web", "default")
    assert hpa.spec.target_cpu_utilization_percentage == 50
