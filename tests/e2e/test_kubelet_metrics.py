"""The kubelet's /metrics (Prometheus text), through the apiserver's node
proxy as `kubectl get --raw` reaches it: running pods and containers, and
the pod start duration histogram."""

import os
import re

import pytest

from conftest import node_agent
from test_kubelet import pod_spec, status_of, wait_for


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with node_agent(tmp_path_factory) as value:
        yield value


def samples(text):
    """{name{labels}: value} of the exposition's sample lines."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_count_running_pods_and_containers_and_pod_starts(node):
    server, core = node
    node_name = wait_for(lambda: core.list_node().items, what="node registered")[0].metadata.name
    core.create_namespaced_pod("default", pod_spec("m1", "sleep 3600"))
    core.create_namespaced_pod("default", pod_spec("m2", "true", restart="Never"))
    wait_for(lambda: (s := status_of(core, "m1")[1]) and s.ready, timeout=60, what="m1 ready")
    wait_for(lambda: core.read_namespaced_pod("m2", "default").status.phase == "Succeeded",
             timeout=60, what="m2 done")
    text = server.kubectl("get", "--raw", f"/api/v1/nodes/{node_name}/proxy/metrics").stdout
    assert "# TYPE kubelet_pod_start_duration_seconds histogram" in text
    assert "# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox" in text
    values = samples(text)
    # m2 finished: its sandbox no longer counts as running.
    assert values["kubelet_running_pods"] == 1
    assert values['kubelet_running_containers{container_state="running"}'] == 1
    assert values['kubelet_running_containers{container_state="exited"}'] == 1
    assert values["kubelet_pod_start_duration_seconds_count"] >= 1
    buckets = [(k, v) for k, v in values.items() if k.startswith("kubelet_pod_start_duration_seconds_bucket")]
    assert buckets[-1][0] == 'kubelet_pod_start_duration_seconds_bucket{le="+Inf"}'
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert re.search(r'^kubelet_pod_start_duration_seconds_bucket\{le="0.5"\} \d+$', text, re.M)
