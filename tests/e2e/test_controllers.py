"""The scheduler and controllers inside `kite server`, driven by real kubectl and
the Python client, with fake Node objects (no kubelet yet): pods land where
Kubernetes would put them, Deployments make ReplicaSets and pods, deletion
cascades, and every namespace gets its ServiceAccount and root CA."""

import json
import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conftest import FakeKubelets, KiteServer


def wait_for(check, timeout=20, interval=0.1, what="condition"):
    """Polls `check` until it returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def make_node(core, name, cpu, labels=None, taints=None, ready="True"):
    body = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
    }
    core.create_node(body)
    status = {"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                        "message": "fake node for tests"}],
    }}
    core.patch_node_status(name, status)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    server = KiteServer(str(tmp_path_factory.mktemp("ctl")))
    server.start()
    kubelets = None
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        make_node(core, "node-a", "4", labels={"zone": "a"})
        make_node(core, "node-b", "4", labels={"disk": "ssd"},
                  taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
        make_node(core, "node-c", "2",
                  taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
        kubelets = FakeKubelets(api, ["node-a", "node-b", "node-c", "node-d"])
        # Pods need the namespace's default ServiceAccount (admission refuses them before).
        wait_for(lambda: core.list_namespaced_service_account(
            "default", field_selector="metadata.name=default").items, what="default SA")
        yield server, api
    finally:
        if kubelets:
            kubelets.stop()
        server.stop()


def pod_body(name, **spec):
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 **({"resources": {"requests": spec.pop("requests")}} if "requests" in spec else {})}],
                 **spec},
    }


def bound_node(core, name, namespace="default"):
    return core.read_namespaced_pod(name, namespace).spec.node_name


def test_pods_are_placed_by_selector_taints_and_tolerations(cluster):
    server, api = cluster
    core = client.CoreV1Api(api)
    core.create_namespaced_pod("default", pod_body("plain"))
    core.create_namespaced_pod("default", pod_body(
        "ssd-tolerant", nodeSelector={"disk": "ssd"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]))
    core.create_namespaced_pod("default", pod_body(
        "cp", tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-c"]}]}]}}}))
    assert wait_for(lambda: bound_node(core, "plain"), what="plain bound") == "node-a"
    assert wait_for(lambda: bound_node(core, "ssd-tolerant"), what="ssd bound") == "node-b"
    assert wait_for(lambda: bound_node(core, "cp"), what="cp bound") == "node-c"
    # Binding sets the PodScheduled condition, and the scheduler says so in an event.
    events = wait_for(lambda: [e for e in core.list_namespaced_event(
        "default", field_selector="involvedObject.name=plain").items if e.reason == "Scheduled"],
        what="Scheduled event")
    assert events[0].message == "Successfully assigned default/plain to node-a"
    assert events[0].source.component == "default-scheduler"


def scheduling_failure(core, name):
    pod = core.read_namespaced_pod(name, "default")
    conditions = [c for c in (pod.status.conditions or []) if c.type == "PodScheduled"]
    return conditions and conditions[0].status == "False" and conditions[0]


def test_a_pod_that_fits_nowhere_stays_pending_with_kubernetes_wording(cluster):
    server, api = cluster
    core = client.CoreV1Api(api)
    core.create_namespaced_pod("default", pod_body("too-big", requests={"cpu": "8"}))
    condition = wait_for(lambda: scheduling_failure(core, "too-big"), what="PodScheduled=False")
    expected = ("0/3 nodes are available: 1 Insufficient cpu, "
                "1 node(s) had untolerated taint {dedicated: infra}, "
                "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    assert condition.reason == "Unschedulable"
    assert condition.message == expected
    pod = core.read_namespaced_pod("too-big", "default")
    assert pod.spec.node_name is None and pod.status.phase == "Pending"
    out = server.kubectl("get", "events", "--field-selector", "involvedObject.name=too-big",
                         "-o", "json").stdout
    failed = [e for e in json.loads(out)["items"] if e["reason"] == "FailedScheduling"]
    assert failed and failed[0]["type"] == "Warning" and failed[0]["message"] == expected

    core.create_namespaced_pod("default", pod_body("ssd-intolerant", nodeSelector={"disk": "ssd"}))
    condition = wait_for(lambda: scheduling_failure(core, "ssd-intolerant"), what="PodScheduled=False")
    assert condition.message == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: infra}, "
        "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    # A matching node appearing later gets the pod scheduled.
    make_node(core, "node-d", "4", labels={"disk": "ssd"})
    assert wait_for(lambda: bound_node(core, "ssd-intolerant"), what="rescheduled") == "node-d"
    core.delete_node("node-d")


def deployment_state(apps, core, name, namespace="default"):
    rss = [rs for rs in apps.list_namespaced_replica_set(namespace).items
           if any(o.name == name and o.kind == "Deployment" for o in rs.metadata.owner_references or [])]
    pods = [p for p in core.list_namespaced_pod(namespace).items
            if any(o.kind == "ReplicaSet" and o.name in {rs.metadata.name for rs in rss}
                   for o in p.metadata.owner_references or [])]
    return rss, pods


def test_kubectl_create_deployment_scale_and_delete(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    server.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3")

    def three_bound():
        rss, pods = deployment_state(apps, core, "web")
        return len(rss) == 1 and len(pods) == 3 and all(p.spec.node_name for p in pods) and (rss, pods)

    rss, pods = wait_for(three_bound, what="3 bound pods")
    rs = rss[0]
    template_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{template_hash}"
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": template_hash}
    for pod in pods:
        owner = pod.metadata.owner_references[0]
        assert owner.controller and owner.block_owner_deletion and owner.uid == rs.metadata.uid
        assert pod.metadata.labels["pod-template-hash"] == template_hash
        assert pod.metadata.name.startswith(f"web-{template_hash}-")
        assert pod.spec.node_name == "node-a"  # the only node without a taint
    dep = wait_for(lambda: (d := apps.read_namespaced_deployment("web", "default")).status.replicas == 3 and d,
                   what="deployment status")
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert dep.status.observed_generation == dep.metadata.generation
    conditions = {c.type: c for c in dep.status.conditions}
    # No kubelet runs the pods, so none is available yet.
    assert conditions["Available"].status == "False"
    assert conditions["Available"].reason == "MinimumReplicasUnavailable"
    assert conditions["Progressing"].status == "True"
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=web").items
    assert f"Scaled up replica set web-{template_hash} to 3" in [e.message for e in events]
    rs_events = wait_for(lambda: [e.message for e in core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={rs.metadata.name}").items
        if e.reason == "SuccessfulCreate"], what="SuccessfulCreate events")
    assert any(m.startswith(f"Created pod: web-{template_hash}-") for m in rs_events)

    server.kubectl("scale", "deployment", "web", "--replicas=5")
    wait_for(lambda: len(deployment_state(apps, core, "web")[1]) == 5, what="5 pods")
    server.kubectl("scale", "deployment", "web", "--replicas=2")
    wait_for(lambda: len(deployment_state(apps, core, "web")[1]) == 2, what="2 pods")
    rss, _ = deployment_state(apps, core, "web")
    assert len(rss) == 1 and rss[0].spec.replicas == 2

    server.kubectl("delete", "deployment", "web")
    wait_for(lambda: not apps.list_namespaced_replica_set("default", label_selector="app=web").items,
             what="ReplicaSet garbage-collected")
    wait_for(lambda: not core.list_namespaced_pod("default", label_selector="app=web").items,
             what="pods garbage-collected")


def test_a_deleted_pod_is_replaced(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    server.kubectl("create", "deployment", "heal", "--image=busybox", "--replicas=2")
    _, pods = wait_for(lambda: (s := deployment_state(apps, core, "heal")) and len(s[1]) == 2 and s,
                       what="2 pods")
    victim = pods[0].metadata.name
    core.delete_namespaced_pod(victim, "default")
    wait_for(lambda: (names := [p.metadata.name for p in deployment_state(apps, core, "heal")[1]])
             and len(names) == 2 and victim not in names, what="replacement pod")
    server.kubectl("delete", "deployment", "heal")


def test_cascade_orphan_leaves_replicasets_and_pods(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    server.kubectl("create", "deployment", "orphans", "--image=busybox", "--replicas=2")
    wait_for(lambda: len(deployment_state(apps, core, "orphans")[1]) == 2, what="2 pods")
    server.kubectl("delete", "deployment", "orphans", "--cascade=orphan")
    wait_for(lambda: not apps.list_namespaced_deployment("default", field_selector="metadata.name=orphans").items,
             what="deployment gone")
    rss = apps.list_namespaced_replica_set("default", label_selector="app=orphans").items
    assert len(rss) == 1
    assert not rss[0].metadata.owner_references
    time.sleep(1)  # give a wrongly-acting garbage collector the chance to do harm
    pods = core.list_namespaced_pod("default", label_selector="app=orphans").items
    assert len(pods) == 2
    assert all(p.metadata.owner_references[0].uid == rss[0].metadata.uid for p in pods)
    apps.delete_namespaced_replica_set(rss[0].metadata.name, "default")
    wait_for(lambda: not core.list_namespaced_pod("default", label_selector="app=orphans").items,
             what="pods collected after their ReplicaSet")


def test_cascade_foreground_waits_for_dependents(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    server.kubectl("create", "deployment", "fg", "--image=busybox", "--replicas=2")
    wait_for(lambda: len(deployment_state(apps, core, "fg")[1]) == 2, what="2 pods")
    server.kubectl("delete", "deployment", "fg", "--cascade=foreground", "--timeout=30s")
    # kubectl returned once the Deployment was gone, which foreground deletion
    # allows only after its ReplicaSet and the ReplicaSet's pods are gone.
    assert not apps.list_namespaced_replica_set("default", label_selector="app=fg").items
    assert not core.list_namespaced_pod("default", label_selector="app=fg").items


def test_a_new_namespace_gets_its_service_account_and_root_ca_within_a_second(cluster):
    server, api = cluster
    core = client.CoreV1Api(api)
    started = time.monotonic()
    core.create_namespace({"metadata": {"name": "fresh"}})

    def both():
        try:
            sa = core.read_namespaced_service_account("default", "fresh")
            cm = core.read_namespaced_config_map("kube-root-ca.crt", "fresh")
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return sa, cm

    sa, cm = wait_for(both, timeout=1.0, interval=0.02, what="default SA and kube-root-ca.crt")
    assert time.monotonic() - started < 1.0
    assert cm.data["ca.crt"].encode() == server.kubeconfig_ca_pem()
    # Deleting either brings it back.
    core.delete_namespaced_config_map("kube-root-ca.crt", "fresh")
    wait_for(lambda: both(), timeout=2.0, what="root CA recreated")


def test_scheduler_and_controllers_hold_leases(cluster):
    server, api = cluster
    coordination = client.CoordinationV1Api(api)
    for name in ["kube-scheduler", "kube-controller-manager"]:
        lease = coordination.read_namespaced_lease(name, "kube-system")
        assert lease.spec.holder_identity
        assert lease.spec.lease_duration_seconds == 15


def test_disable_scheduler_leaves_pods_pending(tmp_path):
    from conftest import KiteServer

    server = KiteServer(str(tmp_path), port=6444)
    server.start(extra=["--disable-scheduler"])
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        make_node(core, "lonely", "2")
        # The controllers still run: the default ServiceAccount appears (pods need it,
        # as in Kubernetes, where creating one before it exists is refused).
        wait_for(lambda: core.list_namespaced_service_account(
            "default", field_selector="metadata.name=default").items, what="default SA")
        core.create_namespaced_pod("default", pod_body("waits"))
        time.sleep(2)
        assert bound_node(core, "waits") is None
        with pytest.raises(ApiException) as missing:
            client.CoordinationV1Api(api).read_namespaced_lease("kube-scheduler", "kube-system")
        assert missing.value.status == 404
    finally:
        server.stop()
