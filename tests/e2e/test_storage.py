"""Persistent volumes with real pods: the `local-path` StorageClass kite makes
at start (k3s's default class), its provisioner writing directories under
`<data-dir>/storage`, the PV binder, the scheduler's volume checks and the
DefaultStorageClass admission plugin, driven by real kubectl (1.33 and 1.27)
and the Python client."""

import os
import re
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import KiteServer, node_agent

KEEP_RUNNING = "trap 'exit 0' TERM; sleep 3600 & wait"


def wait_for(check, timeout=30, interval=0.1, what="condition"):
    """Polls `check` until it returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A kite server with its node agent; StatefulSets are removed before the
    pods, so nothing recreates them during clean-up."""
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    with node_agent(tmp_path_factory) as (server, core):
        try:
            wait_for(lambda: [n for n in core.list_node().items
                              for c in (n.status.conditions if n.status else None) or []
                              if c.type == "Ready" and c.status == "True"], what="node Ready")
            yield server, core
        finally:
            apps = client.AppsV1Api(core.api_client)
            for sts in apps.list_namespaced_stateful_set("default").items:
                apps.delete_namespaced_stateful_set(sts.metadata.name, "default")
            wait_for(lambda: not apps.list_namespaced_stateful_set("default").items,
                     what="statefulsets gone")
            # Their pods go through the garbage collector; node_agent then
            # deletes what is left, and must not race it.
            wait_for(lambda: not [p for p in core.list_namespaced_pod("default").items
                                  if (p.metadata.owner_references or [])
                                  and p.metadata.owner_references[0].kind == "StatefulSet"],
                     timeout=60, what="statefulset pods collected")


def node_name(core):
    return core.list_node().items[0].metadata.name


def storage_dir(server):
    return os.path.join(server.data_dir, "storage")


def claim_body(name, size="64Mi", **spec):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}, **spec}}


def pod_body(name, claim, command=KEEP_RUNNING):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", command],
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def sts_body(name, replicas, **spec):
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"serviceName": name, "replicas": replicas,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "busybox",
                                                       "command": ["sh", "-c", KEEP_RUNNING],
                                                       "volumeMounts": [{"name": "data",
                                                                         "mountPath": "/data"}]}]}},
                 "volumeClaimTemplates": [{
                     "metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "64Mi"}}}}], **spec},
    }


def ordinals(core, name):
    return sorted(int(p.metadata.labels["apps.kubernetes.io/pod-index"])
                  for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items)


def running(core, name):
    try:
        pod = core.read_namespaced_pod(name, "default")
    except ApiException:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod if pod.status.phase == "Running" and ready and not pod.metadata.deletion_timestamp else None


def events_of(core, name):
    return [(e.reason, e.message) for e in core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}").items]


def bound_claim(core, name):
    claim = core.read_namespaced_persistent_volume_claim(name, "default")
    return claim if claim.status.phase == "Bound" else None


def table(server, *args, version="1.33"):
    out = server.kubectl("get", *args, version=version).stdout
    return [line.split() for line in out.splitlines()]


def test_the_local_path_class_is_the_default_and_printed_like_kube(cluster):
    server, core = cluster
    for version in ("1.33", "1.27"):
        rows = table(server, "storageclass", version=version)
        assert rows[0] == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                           "ALLOWVOLUMEEXPANSION", "AGE"]
        assert rows[1][:6] == ["local-path", "(default)", "rancher.io/local-path", "Delete",
                               "WaitForFirstConsumer", "false"]
    sc = client.StorageV1Api(core.api_client).read_storage_class("local-path")
    assert sc.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"


def test_a_statefulset_of_three_gets_a_local_path_volume_per_pod_in_order(cluster):
    server, core = cluster
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_stateful_set("default", sts_body("db", 3))
    seen = []

    def three_ready():
        seen.append(ordinals(core, "db"))
        return apps.read_namespaced_stateful_set("db", "default").status.ready_replicas == 3

    wait_for(three_ready, timeout=120, interval=0.1, what="three ready pods")
    # Never a gap: db-1 only after db-0 was ready, db-2 after db-1.
    assert all(o == list(range(len(o))) for o in seen), seen
    pods = {p.metadata.name: p for p in core.list_namespaced_pod("default", label_selector="app=db").items}
    for n in (1, 2):
        ready = next(c for c in pods[f"db-{n - 1}"].status.conditions if c.type == "Ready")
        assert pods[f"db-{n}"].metadata.creation_timestamp >= ready.last_transition_time

    node = node_name(core)
    volumes = set()
    for n in range(3):
        claim = core.read_namespaced_persistent_volume_claim(f"data-db-{n}", "default")
        assert claim.status.phase == "Bound"
        assert claim.spec.storage_class_name == "local-path"
        assert claim.status.capacity["storage"] == "64Mi"
        assert claim.status.access_modes == ["ReadWriteOnce"]
        annotations = claim.metadata.annotations
        assert annotations["volume.kubernetes.io/selected-node"] == node
        assert annotations["volume.kubernetes.io/storage-provisioner"] == "rancher.io/local-path"
        assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
        volume = claim.spec.volume_name
        assert volume == f"pvc-{claim.metadata.uid}"
        volumes.add(volume)
        pv = client.CoreV1Api(core.api_client).read_persistent_volume(volume)
        assert pv.status.phase == "Bound"
        assert pv.spec.persistent_volume_reclaim_policy == "Delete"
        assert pv.spec.claim_ref.name == f"data-db-{n}" and pv.spec.claim_ref.uid == claim.metadata.uid
        path = os.path.join(storage_dir(server), f"{volume}_default_data-db-{n}")
        assert pv.spec.host_path.path == path and pv.spec.host_path.type == "DirectoryOrCreate"
        assert os.path.isdir(path)
        term = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
        assert (term.key, term.operator, term.values) == ("kubernetes.io/hostname", "In", [node])
        reasons = [r for r, _ in events_of(core, f"data-db-{n}")]
        assert "ProvisioningSucceeded" in reasons, reasons
        assert ("ProvisioningSucceeded", f"Successfully provisioned volume {volume}") in events_of(
            core, f"data-db-{n}")
    assert len(volumes) == 3

    out = server.kubectl("describe", "pvc", "data-db-1").stdout
    for line in (r"Status:\s+Bound", r"StorageClass:\s+local-path", r"Used By:\s+db-1",
                 r"Normal\s+ProvisioningSucceeded"):
        assert re.search(line, out), (line, out)
    volume = core.read_namespaced_persistent_volume_claim("data-db-1", "default").spec.volume_name
    out = server.kubectl("describe", "pv", volume).stdout
    for line in (r"Claim:\s+default/data-db-1", r"Type:\s+HostPath \(bare host directory volume\)",
                 rf"Term 0:\s+kubernetes.io/hostname in \[{node}\]"):
        assert re.search(line, out), (line, out)

    # What db-0 writes outlives the pod: its replacement mounts the same claim.
    server.kubectl("exec", "db-0", "--", "sh", "-c", "echo kept > /data/greeting")
    first = core.read_namespaced_pod("db-0", "default").metadata.uid
    path = core.read_persistent_volume(
        core.read_namespaced_persistent_volume_claim("data-db-0", "default").spec.volume_name).spec.host_path.path
    assert open(os.path.join(path, "greeting")).read() == "kept\n"
    core.delete_namespaced_pod("db-0", "default")
    wait_for(lambda: (p := running(core, "db-0")) and p.metadata.uid != first, timeout=90,
             what="db-0 recreated")
    # The kubelet may still hold the old db-0 for a moment and answer exec
    # from it (its registry finds pods by name), so ask until the new one answers.
    out = wait_for(lambda: (r := server.kubectl("exec", "db-0", "--", "cat", "/data/greeting", check=False))
                   .returncode == 0 and r, timeout=20, interval=0.5, what="exec in the new db-0")
    assert out.stdout == "kept\n"

    # Scaling down removes db-2 first; its claim (and volume) stays.
    apps.patch_namespaced_stateful_set("db", "default", {"spec": {"replicas": 1}})
    snapshots = []

    def scaled_down():
        pods = core.list_namespaced_pod("default", label_selector="app=db").items
        snapshots.append({p.metadata.name: bool(p.metadata.deletion_timestamp) for p in pods})
        return set(snapshots[-1]) == {"db-0"}

    wait_for(scaled_down, timeout=60, interval=0.02, what="scaled down to one")
    # db-1 is not touched while db-2 is still there, terminating or not.
    assert not [s for s in snapshots if "db-2" in s and s.get("db-1")], snapshots
    assert all(set(s) in ({"db-0", "db-1", "db-2"}, {"db-0", "db-1"}, {"db-0"}) for s in snapshots)
    events = [e.message for e in sorted(core.list_namespaced_event(
        "default", field_selector="involvedObject.name=db,reason=SuccessfulDelete").items,
        key=lambda e: e.metadata.name)]
    assert events[-2:] == ["delete Pod db-2 in StatefulSet db successful",
                           "delete Pod db-1 in StatefulSet db successful"], events
    assert bound_claim(core, "data-db-2")
    assert bound_claim(core, "data-db-1")

    # kubectl's tables for pv and pvc, from either end of the supported range.
    for version in ("1.33", "1.27"):
        rows = table(server, "pvc", version=version)
        assert rows[0] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                           "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
        row = next(r for r in rows if r[0] == "data-db-2")
        claim = core.read_namespaced_persistent_volume_claim("data-db-2", "default")
        assert row[:7] == ["data-db-2", "Bound", claim.spec.volume_name, "64Mi", "RWO", "local-path",
                           "<unset>"]
        rows = table(server, "pv", version=version)
        assert rows[0] == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
                           "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
        row = next(r for r in rows if r[0] == claim.spec.volume_name)
        assert row[:7] == [claim.spec.volume_name, "64Mi", "RWO", "Delete", "Bound",
                           "default/data-db-2", "local-path"]


def gone(read, *args):
    try:
        read(*args)
        return False
    except ApiException as e:
        return e.status == 404


def test_claims_of_a_delete_retention_policy_go_with_their_pods_and_set(cluster):
    server, core = cluster
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_stateful_set("default", sts_body("tmp", 2, persistentVolumeClaimRetentionPolicy={
        "whenDeleted": "Delete", "whenScaled": "Delete"}))
    wait_for(lambda: apps.read_namespaced_stateful_set("tmp", "default").status.ready_replicas == 2,
             timeout=90, what="two ready pods")
    claims = {n: core.read_namespaced_persistent_volume_claim(f"data-tmp-{n}", "default") for n in (0, 1)}
    owners = [(r.kind, r.name) for r in claims[0].metadata.owner_references]
    assert owners == [("StatefulSet", "tmp")]
    dirs = {n: core.read_persistent_volume(c.spec.volume_name).spec.host_path.path for n, c in claims.items()}
    assert all(os.path.isdir(d) for d in dirs.values())

    apps.patch_namespaced_stateful_set("tmp", "default", {"spec": {"replicas": 1}})
    read_claim = core.read_namespaced_persistent_volume_claim
    wait_for(lambda: gone(read_claim, "data-tmp-1", "default"), timeout=60, what="scaled-away claim deleted")
    wait_for(lambda: gone(core.read_persistent_volume, claims[1].spec.volume_name), what="its volume deleted")
    assert not os.path.exists(dirs[1])
    assert bound_claim(core, "data-tmp-0")

    apps.delete_namespaced_stateful_set("tmp", "default")
    wait_for(lambda: gone(read_claim, "data-tmp-0", "default"), timeout=60, what="claims of the set deleted")
    wait_for(lambda: gone(core.read_persistent_volume, claims[0].spec.volume_name), what="last volume deleted")
    assert not os.path.exists(dirs[0])


def test_a_claim_gets_the_default_class_binds_for_its_pod_and_is_reclaimed_on_delete(cluster):
    server, core = cluster
    core.create_namespaced_persistent_volume_claim("default", claim_body("scratch"))
    claim = core.read_namespaced_persistent_volume_claim("scratch", "default")
    assert claim.spec.storage_class_name == "local-path"
    wait_for(lambda: ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")
             in events_of(core, "scratch"), what="WaitForFirstConsumer event")
    assert core.read_namespaced_persistent_volume_claim("scratch", "default").status.phase == "Pending"

    core.create_namespaced_pod("default", pod_body("user", "scratch", "echo hi > /data/x; " + KEEP_RUNNING))
    wait_for(lambda: running(core, "user"), timeout=60, what="pod using the claim running")
    claim = bound_claim(core, "scratch")
    assert claim
    volume = claim.spec.volume_name
    path = os.path.join(storage_dir(server), f"{volume}_default_scratch")
    wait_for(lambda: os.path.exists(os.path.join(path, "x")), what="file written by the pod")
    reasons = [r for r, _ in events_of(core, "scratch")]
    for reason in ("ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"):
        assert reason in reasons, reasons
    assert ("Provisioning", 'External provisioner is provisioning volume for claim "default/scratch"') in \
        events_of(core, "scratch")

    assert claim.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    assert core.read_persistent_volume(volume).metadata.finalizers == ["kubernetes.io/pv-protection"]
    # Deleting the claim under a running pod only marks it: the data stays.
    core.delete_namespaced_persistent_volume_claim("scratch", "default")
    time.sleep(1)
    row = next(r for r in table(server, "pvc") if r[0] == "scratch")
    assert row[1] == "Terminating"
    assert core.read_persistent_volume(volume).status.phase == "Bound"
    assert os.path.exists(os.path.join(path, "x"))

    core.delete_namespaced_pod("user", "default", grace_period_seconds=0)
    wait_for(lambda: gone(core.read_namespaced_persistent_volume_claim, "scratch", "default"),
             what="claim gone with its pod")

    wait_for(lambda: gone(core.read_persistent_volume, volume), what="volume deleted")
    assert not os.path.exists(path)


def test_a_static_retain_volume_binds_at_once_and_is_released_not_deleted(cluster):
    server, core = cluster
    path = os.path.join(server.workdir, "static")
    core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "static"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "", "hostPath": {"path": path, "type": "DirectoryOrCreate"}}})
    wait_for(lambda: core.read_persistent_volume("static").status.phase == "Available", what="Available")
    # A smaller volume, but of another class, must not be picked.
    core.create_namespaced_persistent_volume_claim("default", claim_body("manual", "512Mi",
                                                                         storageClassName=""))
    claim = wait_for(lambda: bound_claim(core, "manual"), what="claim bound")
    assert claim.spec.volume_name == "static"
    assert claim.status.capacity["storage"] == "1Gi"
    annotations = claim.metadata.annotations
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    pv = core.read_persistent_volume("static")
    assert pv.status.phase == "Bound" and pv.spec.claim_ref.uid == claim.metadata.uid

    core.create_namespaced_pod("default", pod_body("static-user", "manual", "echo s > /data/s; " + KEEP_RUNNING))
    wait_for(lambda: running(core, "static-user"), timeout=60, what="pod on the static volume")
    wait_for(lambda: os.path.exists(os.path.join(path, "s")), what="file in the static volume")
    core.delete_namespaced_pod("static-user", "default", grace_period_seconds=0)
    wait_for(lambda: not [p for p in core.list_namespaced_pod("default").items
                          if p.metadata.name == "static-user"], what="pod gone")
    core.delete_namespaced_persistent_volume_claim("manual", "default")
    wait_for(lambda: core.read_persistent_volume("static").status.phase == "Released", what="Released")
    time.sleep(1)
    pv = core.read_persistent_volume("static")
    assert pv.status.phase == "Released" and pv.spec.claim_ref.name == "manual"
    assert os.path.exists(os.path.join(path, "s"))
    row = next(r for r in table(server, "pv") if r[0] == "static")
    assert row[:6] == ["static", "1Gi", "RWO", "Retain", "Released", "default/manual"]
    core.delete_persistent_volume("static")


def test_a_waiting_claim_binds_to_a_local_volume_on_the_node_its_pod_is_scheduled_to(cluster):
    server, core = cluster
    storage = client.StorageV1Api(core.api_client)
    node = node_name(core)
    storage.create_storage_class({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-manual"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"})
    path = os.path.join(server.workdir, "local-a")
    os.makedirs(path)
    core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "local-a"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "local-manual", "local": {"path": path},
                 "persistentVolumeReclaimPolicy": "Retain",
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
    for name in ("local-one", "local-two"):
        core.create_namespaced_persistent_volume_claim("default", claim_body(name, storageClassName="local-manual"))
    wait_for(lambda: ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")
             in events_of(core, "local-one"), what="WaitForFirstConsumer event")
    # Available, but held back for the first consumer.
    assert core.read_persistent_volume("local-a").status.phase == "Available"

    core.create_namespaced_pod("default", pod_body("local-user", "local-one", "echo l > /data/l; " + KEEP_RUNNING))
    wait_for(lambda: running(core, "local-user"), timeout=60, what="pod on the local volume")
    claim = bound_claim(core, "local-one")
    assert claim and claim.spec.volume_name == "local-a"
    assert claim.metadata.annotations["volume.kubernetes.io/selected-node"] == node
    wait_for(lambda: os.path.exists(os.path.join(path, "l")), what="file in the local volume")

    # The only local volume is taken: a second consumer fits nowhere.
    core.create_namespaced_pod("default", pod_body("local-second", "local-two"))
    message = ("0/1 nodes are available: 1 node(s) didn't find available persistent volumes to bind. "
               "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    wait_for(lambda: ("FailedScheduling", message) in events_of(core, "local-second"),
             what="FailedScheduling for the second consumer")
    for pod in ("local-user", "local-second"):
        core.delete_namespaced_pod(pod, "default", grace_period_seconds=0)
    for name in ("local-one", "local-two"):
        core.delete_namespaced_persistent_volume_claim(name, "default")
    wait_for(lambda: core.read_persistent_volume("local-a").status.phase == "Released", what="Released")
    core.delete_persistent_volume("local-a")
    storage.delete_storage_class("local-manual")


def test_pods_whose_claims_cannot_be_served_are_unschedulable_with_kubes_reasons(cluster):
    server, core = cluster
    core.create_namespaced_pod("default", pod_body("ghost", "nothing-here"))
    core.create_namespaced_persistent_volume_claim("default", claim_body("unclassed", storageClassName=""))
    core.create_namespaced_pod("default", pod_body("immediate", "unclassed"))
    core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "far"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "far", "hostPath": {"path": "/nonexistent-far"},
                 "claimRef": {"namespace": "default", "name": "far"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["elsewhere"]}]}]}}}})
    core.create_namespaced_persistent_volume_claim("default", claim_body("far", storageClassName="far"))
    wait_for(lambda: bound_claim(core, "far"), what="pre-bound claim bound")
    core.create_namespaced_pod("default", pod_body("far", "far"))
    preemption = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    expected = {
        "ghost": f'0/1 nodes are available: persistentvolumeclaim "nothing-here" not found. {preemption}',
        "immediate": f"0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. {preemption}",
        "far": f"0/1 nodes are available: 1 node(s) had volume node affinity conflict. {preemption}",
    }
    for pod, message in expected.items():
        wait_for(lambda: ("FailedScheduling", message) in events_of(core, pod),
                 what=f"FailedScheduling for {pod}")
        assert not core.read_namespaced_pod(pod, "default").spec.node_name
    assert ("FailedBinding", "no persistent volumes available for this claim and no storage class is set") in \
        events_of(core, "unclassed")
    for pod in expected:
        core.delete_namespaced_pod(pod, "default", grace_period_seconds=0)
    for claim in ("unclassed", "far"):
        core.delete_namespaced_persistent_volume_claim(claim, "default")
    core.delete_persistent_volume("far")


def test_disabling_local_storage_removes_the_class(workdir):
    server = KiteServer(workdir, port=6447)
    server.start()
    try:
        wait_for(lambda: server.kubectl("get", "storageclass", "-o", "name").stdout.strip()
                 == "storageclass.storage.k8s.io/local-path", what="local-path class")
    finally:
        server.stop()
    server.start(extra=["--disable", "local-storage"])
    try:
        wait_for(lambda: server.kubectl("get", "storageclass", "-o", "name").stdout.strip() == "",
                 what="local-path class removed")
        time.sleep(1)
        assert server.kubectl("get", "storageclass", "-o", "name").stdout.strip() == ""
        server.kubectl("create", "-f", "-", input=(
            '{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},'
            ' "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}'))
        out = server.kubectl("get", "pvc", "c", "-o", "jsonpath={.spec.storageClassName}").stdout
        assert out == ""
        # A default class made later is given to the claim that had none.
        server.kubectl("create", "-f", "-", input=(
            '{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "later",'
            ' "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},'
            ' "provisioner": "example.com/none"}'))
        wait_for(lambda: server.kubectl("get", "pvc", "c", "-o", "jsonpath={.spec.storageClassName}").stdout
                 == "later", what="class assigned retroactively")
    finally:
        server.stop()

