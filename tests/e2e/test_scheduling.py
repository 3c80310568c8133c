"""Inter-pod scheduling on fake Node objects with real kubectl: required pod
anti-affinity spreads a Deployment one replica per node (the one too many stays
Pending with kube-scheduler's wording), pod affinity follows another app's
zone, and topology spread constraints bound the skew between zones."""

import json

import pytest
from kubernetes import client

from test_workloads import wait_for

ZONE = "topology.kubernetes.io/zone"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from conftest import fake_cluster

    with fake_cluster(tmp_path_factory, "scheduling", 6451, {"z1-a": {ZONE: "z1"}, "z1-b": {ZONE: "z1"}, "z2-a": {ZONE: "z2"}}) as value:
        yield value


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
    core = client.CoreV1Api(api)
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


def test_a_higher_priority_pod_preempts_the_least_important_pods(cluster):
    server, api = cluster
    core, scheduling = client.CoreV1Api(api), client.SchedulingV1Api(api)
    out = server.kubectl("get", "priorityclasses").stdout
    assert "system-cluster-critical" in out and "2000000000" in out, out
    for name, value in [("low", 100), ("high", 1000)]:
        scheduling.create_priority_class({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                          "metadata": {"name": name}, "value": value})
    # Priority admission: the class decides, a missing class is refused.
    r = server.kubectl("run", "nobody", "--image=busybox", "--overrides",
                       json.dumps({"spec": {"priorityClassName": "gold"}}), check=False)
    assert r.returncode != 0 and 'pods "nobody" is forbidden: no PriorityClass with name gold was found' \
        in r.stderr, r.stderr

    filler = deployment("filler", 3, priorityClassName="low")
    filler["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "3"}}
    server.kubectl("apply", "-f", "-", input=json.dumps(filler))
    wait_for(lambda: (p := placement(core, "filler")) and len(p) == 3 and all(p.values()) and p,
             what="fillers bound")
    fillers = {p.metadata.name: p for p in core.list_namespaced_pod("default", label_selector="app=filler").items}
    assert {p.spec.priority for p in fillers.values()} == {100}

    vip = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vip"},
           "spec": {"priorityClassName": "high",
                    "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "2"}}}]}}
    core.create_namespaced_pod("default", vip)
    node = wait_for(lambda: core.read_namespaced_pod("vip", "default").spec.node_name, timeout=30,
                    what="vip bound after preemption")
    pod = core.read_namespaced_pod("vip", "default")
    assert pod.spec.priority == 1000 and pod.status.nominated_node_name == node
    victims = [name for name, p in fillers.items() if p.spec.node_name == node]
    assert len(victims) == 1
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={victims[0]}").items
    preempted = [e for e in events if e.reason == "Preempted"]
    assert preempted and preempted[0].message == f"Preempted by pod {pod.metadata.uid} on node {node}", \
        [(e.reason, e.message) for e in events]

    # The victim's replacement has nowhere to go and nobody less important to evict.
    def replacement_pending():
        for p in core.list_namespaced_pod("default", label_selector="app=filler").items:
            conditions = [c for c in (p.status.conditions or []) if c.type == "PodScheduled"]
            if not p.spec.node_name and conditions and conditions[0].status == "False":
                return conditions[0].message
        return None

    message = wait_for(replacement_pending, timeout=30, what="replacement pending")
    assert message == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                       "3 No preemption victims found for incoming pod."), message
    core.delete_namespaced_pod("vip", "default")
    cleanup(server, "filler")
    for name in ["low", "high"]:
        scheduling.delete_priority_class(name)
