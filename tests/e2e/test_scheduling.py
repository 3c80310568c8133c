"""Inter-pod scheduling on fake Node objects with real kubectl: required pod
anti-affinity spreads a Deployment one replica per node (the one too many stays
Pending with kube-scheduler's wording), pod affinity follows another app's
zone, and topology spread constraints bound the skew between zones."""

import json

import pytest
from kubernetes import client, config

from test_workloads import make_node, wait_for

ZONE = "topology.kubernetes.io/zone"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from conftest import FakeKubelets, KiteServer

    server = KiteServer(str(tmp_path_factory.mktemp("scheduling")), port=6451)
    server.start()
    kubelets = None
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        for name, zone in [("z1-a", "z1"), ("z1-b", "z1"), ("z2-a", "z2")]:
            make_node(core, name, labels={ZONE: zone})
        kubelets = FakeKubelets(api, ["z1-a", "z1-b", "z2-a"])
        wait_for(lambda: core.list_namespaced_service_account(
            "default", field_selector="metadata.name=default").items, what="default SA")
        yield server, api
    finally:
        if kubelets:
            kubelets.stop()
        server.stop()


def deployment(name, replicas, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}}}


def placement(core, app):
    pods = core.list_namespaced_pod("default", label_selector=f"app={app}").items
    return {p.metadata.name: p.spec.node_name for p in pods}


def cleanup(server, *names):
    for name in names:
        server.kubectl("delete", "deployment", name, "--wait=true", "--timeout=30s")


def test_required_anti_affinity_puts_one_replica_per_node(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    server.kubectl("apply", "-f", "-", input=json.dumps(deployment("web", 3, affinity=anti)))
    spots = wait_for(lambda: (p := placement(core, "web")) and len(p) == 3 and all(p.values()) and p,
                     what="3 web pods bound")
    assert sorted(spots.values()) == ["z1-a", "z1-b", "z2-a"], spots

    server.kubectl("scale", "deployment", "web", "--replicas=4")

    def pending():
        for pod in core.list_namespaced_pod("default", label_selector="app=web").items:
            conditions = [c for c in (pod.status.conditions or []) if c.type == "PodScheduled"]
            if conditions and conditions[0].status == "False":
                return conditions[0]
        return None

    condition = wait_for(pending, what="a 4th replica unschedulable")
    assert condition.message == (
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."), \
        condition.message
    cleanup(server, "web")


def test_pod_affinity_follows_another_apps_zone(cluster):
    server, api = cluster
    core = client.CoreV1Api(api)
    server.kubectl("apply", "-f", "-", input=json.dumps(
        deployment("cache", 1, nodeSelector={"kubernetes.io/hostname": "z2-a"})))
    wait_for(lambda: any(placement(core, "cache").values()), what="cache bound")
    near = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": ZONE}]}}
    server.kubectl("apply", "-f", "-", input=json.dumps(deployment("api", 2, affinity=near)))
    spots = wait_for(lambda: (p := placement(core, "api")) and len(p) == 2 and all(p.values()) and p,
                     what="api pods bound")
    assert set(spots.values()) == {"z2-a"}, spots
    cleanup(server, "api", "cache")


def test_topology_spread_balances_zones(cluster):
    server, api = cluster
    core = client.CoreV1Api(api)
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    server.kubectl("apply", "-f", "-", input=json.dumps(
        deployment("spread", 4, topologySpreadConstraints=spread)))
    spots = wait_for(lambda: (p := placement(core, "spread")) and len(p) == 4 and all(p.values()) and p,
                     what="4 spread pods bound")
    zones = [n.split("-")[0] for n in spots.values()]
    assert sorted(zones) == ["z1", "z1", "z2", "z2"], spots
    cleanup(server, "spread")
