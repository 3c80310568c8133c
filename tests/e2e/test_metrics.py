"""The resource metrics API (`metrics.k8s.io/v1beta1`, from the kubelets'
stats) with real `kubectl top`, and a HorizontalPodAutoscaler scaling a
CPU-busy Deployment whose pods really run."""

import json
import re

import pytest
from kubernetes import client

from test_workloads import wait_for

# Two scrapes, 15 s apart, make the first point.
FIRST_POINT = 60


def busy_deployment(name, replicas=1, busy=True):
    command = ["sh", "-c", "while :; do :; done"] if busy else ["sleep", "3600"]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "main", "image": "busybox",
                                                       "command": command,
                                                       "resources": {"requests": {"cpu": "50m"},
                                                                     "limits": {"cpu": "200m"}}}]}}},
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from conftest import node_agent

    with node_agent(tmp_path_factory) as (server, core):
        wait_for(lambda: [n for n in core.list_node().items
                          for c in (n.status.conditions if n.status else None) or []
                          if c.type == "Ready" and c.status == "True"], what="node Ready")
        try:
            yield server, core
        finally:
            apps = client.AppsV1Api(core.api_client)
            for deploy in apps.list_namespaced_deployment("default").items:
                apps.delete_namespaced_deployment(deploy.metadata.name, "default")
            wait_for(lambda: not apps.list_namespaced_replica_set("default").items, timeout=30,
                     what="replica sets removed")


def test_the_metrics_api_is_discovered_and_refuses_writes(node):
    server, core = node
    out = server.kubectl("api-resources", "--api-group=metrics.k8s.io", "-o", "wide").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {"nodes", "pods"}, out
    assert rows["nodes"][-2:] == ["NodeMetrics", "get,list"], out
    code, body, _ = server.curl("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/none",
                                "--cert", f"{server.tls_dir}/client-admin.crt",
                                "--key", f"{server.tls_dir}/client-admin.key")
    assert code == 404 and json.loads(body)["message"] == \
        'podmetrics.metrics.k8s.io "default/none" not found', body
    code, body, _ = server.curl("/apis/metrics.k8s.io/v1beta1/nodes", "-X", "POST", "-d", "{}",
                                "-H", "Content-Type: application/json",
                                "--cert", f"{server.tls_dir}/client-admin.crt",
                                "--key", f"{server.tls_dir}/client-admin.key")
    assert code == 405, body


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_kubectl_top_shows_nodes_and_pods(node, version):
    server, core = node
    apps = client.AppsV1Api(core.api_client)
    if not apps.list_namespaced_deployment("default", field_selector="metadata.name=idle").items:
        apps.create_namespaced_deployment("default", busy_deployment("idle", busy=False))

    def top(*what):
        r = server.kubectl("top", *what, version=version, check=False)
        return r.returncode == 0 and r.stdout

    out = wait_for(lambda: top("nodes"), timeout=FIRST_POINT, interval=1, what="kubectl top nodes")
    header, *rows = out.splitlines()
    # kubectl 1.33 writes CPU(%) and MEMORY(%) where older ones write CPU% and MEMORY%.
    assert [h.replace("(%)", "%") for h in header.split()] == \
        ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], out
    node_name = core.list_node().items[0].metadata.name
    cells = rows[0].split()
    assert cells[0] == node_name and cells[1].endswith("m") and cells[2].endswith("%"), out
    assert cells[3].endswith("Mi") and int(cells[3][:-2]) > 0, out

    out = wait_for(lambda: (o := top("pods", "-l", "app=idle")) and "idle-" in o and o,
                   timeout=FIRST_POINT, interval=1, what="kubectl top pods")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"], out
    name, cpu, memory = rows[0].split()
    assert name.startswith("idle-") and cpu.endswith("m") and memory.endswith("Mi"), out
    # An idle sleep uses (next to) no CPU.
    assert int(cpu[:-1]) < 20, out

    out = top("pods", "-l", "app=idle", "--containers")
    assert out and out.splitlines()[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], out
    assert out.splitlines()[1].split()[1] == "main", out


def test_an_hpa_scales_a_cpu_busy_deployment_up(node):
    server, core = node
    api = core.api_client
    apps, autoscaling = client.AppsV1Api(api), client.AutoscalingV2Api(api)
    apps.create_namespaced_deployment("default", busy_deployment("busy"))
    server.kubectl("autoscale", "deployment", "busy", "--cpu-percent=50", "--min=1", "--max=2")

    def scaled():
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler("busy", "default")
        deploy = apps.read_namespaced_deployment("busy", "default")
        return (deploy.spec.replicas or 0) >= 2 and hpa

    hpa = wait_for(scaled, timeout=FIRST_POINT + 45, interval=1, what="HPA scaled busy to 2")
    try:
        status = hpa.status
        metric = status.current_metrics[0].resource
        assert metric.name == "cpu" and metric.current.average_utilization > 50, status
        conditions = {c.type: c for c in status.conditions}
        assert conditions["ScalingActive"].status == "True"
        assert conditions["ScalingActive"].reason == "ValidMetricFound"
        assert status.last_scale_time is not None

        events = core.list_namespaced_event(
            "default", field_selector="involvedObject.name=busy,involvedObject.kind=HorizontalPodAutoscaler").items
        rescale = [e for e in events if e.reason == "SuccessfulRescale"]
        assert rescale and rescale[0].message == \
            "New size: 2; reason: cpu resource utilization (percentage of request) above target", \
            [(e.reason, e.message) for e in events]

        out = server.kubectl("get", "hpa", "busy").stdout.splitlines()
        assert out[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
        # TARGETS reads `cpu: 400%/50%`, as kube-apiserver 1.33 prints it.
        assert re.match(r"busy\s+Deployment/busy\s+cpu: \d+%/50%\s+1\s+2\s+[12]\s", out[1]), out
    finally:
        # Stop the busy loops at once: they compete with the rest of the suite.
        autoscaling.delete_namespaced_horizontal_pod_autoscaler("busy", "default")
        apps.delete_namespaced_deployment("busy", "default")
        wait_for(lambda: not core.list_namespaced_pod("default", label_selector="app=busy").items,
                 timeout=30, what="busy pods gone")
