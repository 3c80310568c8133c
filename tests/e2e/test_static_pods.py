"""Static pods: the kubelet runs the Pod manifests of
`<data-dir>/agent/pod-manifests/` from their files and shows each as a mirror
pod in the API (annotated `kubernetes.io/config.mirror`, owned by the Node).
Deleting the mirror brings it back without touching the running pod; editing
the file restarts the pod under a new hash; removing it stops the pod."""

import json
import os
import signal
import time

import pytest
from kubernetes.client.rest import ApiException

from conftest import node_agent
from test_kubelet import wait_for


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def static_node(tmp_path_factory):
    """A kite server with its node agent; yields (server, core, manifest dir,
    node name). Manifests are removed, and their mirrors waited out, before
    node_agent cleans up the rest."""
    with node_agent(tmp_path_factory) as (server, core):
        manifests = os.path.join(server.data_dir, "agent", "pod-manifests")
        node = wait_for(lambda: core.list_node().items, what="node registered")[0].metadata.name
        try:
            yield server, core, manifests, node
        finally:
            for name in os.listdir(manifests):
                os.remove(os.path.join(manifests, name))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and [
                    p for p in core.list_pod_for_all_namespaces().items
                    if "kubernetes.io/config.mirror" in (p.metadata.annotations or {})]:
                time.sleep(0.2)


def manifest(name, command, **metadata):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **metadata},
            "spec": {"terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "c", "image": "busybox",
                                     "command": ["sh", "-c", f"trap 'exit 0' TERM; {command} & wait"]}]}}


def write(manifests, file, doc):
    # Written aside and renamed, as editors and config tools do: never half a file.
    tmp = os.path.join(manifests, f".{file}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(doc) if file.endswith(".json") else to_yaml(doc))
    os.rename(tmp, os.path.join(manifests, file))


def to_yaml(doc):
    # JSON is YAML; indenting it keeps the file a YAML document a person would read.
    return json.dumps(doc, indent=2) + "\n"


def running_mirror(core, name, not_uid=None, not_hash=None):
    """The mirror pod `name` once Running with a ready container (and, if
    asked, another UID or hash than given), else None."""
    try:
        pod = core.read_namespaced_pod(name, "default")
    except ApiException:
        return None
    annotations = pod.metadata.annotations or {}
    statuses = pod.status.container_statuses or []
    if pod.metadata.deletion_timestamp or pod.status.phase != "Running" or not statuses \
            or not statuses[0].ready or "kubernetes.io/config.mirror" not in annotations:
        return None
    if not_uid and pod.metadata.uid == not_uid:
        return None
    if not_hash and annotations["kubernetes.io/config.mirror"] == not_hash:
        return None
    return pod


def test_a_manifest_runs_as_a_static_pod_with_a_mirror_in_the_api(static_node):
    server, core, manifests, node = static_node
    write(manifests, "web.yaml", manifest("web", "sleep 3600", labels={"app": "web"}))
    name = f"web-{node}"
    pod = wait_for(lambda: running_mirror(core, name), timeout=60, what="mirror pod Running")
    annotations = pod.metadata.annotations
    digest = annotations["kubernetes.io/config.hash"]
    assert len(digest) == 32 and all(c in "0123456789abcdef" for c in digest), digest
    assert annotations["kubernetes.io/config.mirror"] == digest
    assert annotations["kubernetes.io/config.source"] == "file"
    assert annotations["kubernetes.io/config.seen"]
    assert pod.metadata.uid != digest, "the API gives the mirror a UID of its own"
    assert pod.metadata.labels == {"app": "web"}
    assert pod.metadata.namespace == "default"
    assert pod.spec.node_name == node
    node_uid = core.read_node(node).metadata.uid
    [owner] = pod.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid, owner.controller) == \
        ("v1", "Node", node, node_uid, True)
    assert any(t.operator == "Exists" and t.effect == "NoExecute" for t in pod.spec.tolerations)
    cs = pod.status.container_statuses[0]
    assert cs.container_id.startswith("kite://") and cs.restart_count == 0
    # kubectl sees it like any pod, and its logs and exec go to the static pod.
    out = server.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
    assert out == "Running"
    out = server.kubectl("exec", name, "--", "echo", "inside").stdout
    assert out == "inside\n"


def test_a_deleted_mirror_comes_back_and_the_pod_keeps_running(static_node):
    server, core, manifests, node = static_node
    name = f"web-{node}"
    before = wait_for(lambda: running_mirror(core, name), timeout=60, what="mirror pod Running")
    before_cs = before.status.container_statuses[0]
    server.kubectl("delete", "pod", name, "--wait=false")
    after = wait_for(lambda: running_mirror(core, name, not_uid=before.metadata.uid),
                     timeout=30, what="mirror pod recreated")
    assert after.metadata.annotations["kubernetes.io/config.mirror"] == \
        before.metadata.annotations["kubernetes.io/config.mirror"]
    after_cs = after.status.container_statuses[0]
    assert after_cs.container_id == before_cs.container_id
    assert after_cs.restart_count == before_cs.restart_count
    assert after_cs.state.running.started_at == before_cs.state.running.started_at


def test_a_static_pod_survives_kill_9_of_kite_and_is_adopted(static_node):
    server, core, manifests, node = static_node
    name = f"web-{node}"
    before = wait_for(lambda: running_mirror(core, name), timeout=60, what="mirror pod Running")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.log.close()
    server.start()
    # Same file, same hash: the running container is the static pod's, not a new one.
    time.sleep(3)
    after = wait_for(lambda: running_mirror(core, name), timeout=30, what="mirror pod after restart")
    assert after.metadata.annotations["kubernetes.io/config.mirror"] == \
        before.metadata.annotations["kubernetes.io/config.mirror"]
    assert after.status.container_statuses[0].container_id == \
        before.status.container_statuses[0].container_id
    assert after.status.container_statuses[0].restart_count == 0
    assert after.metadata.uid == before.metadata.uid, "an up-to-date mirror is kept"


def test_an_edited_manifest_restarts_the_pod_under_a_new_hash(static_node):
    _, core, manifests, node = static_node
    name = f"web-{node}"
    before = wait_for(lambda: running_mirror(core, name), timeout=60, what="mirror pod Running")
    old_hash = before.metadata.annotations["kubernetes.io/config.mirror"]
    write(manifests, "web.yaml", manifest("web", "sleep 3601", labels={"app": "web", "v": "2"}))
    after = wait_for(lambda: running_mirror(core, name, not_hash=old_hash),
                     timeout=60, what="mirror pod of the edited manifest")
    assert after.metadata.labels == {"app": "web", "v": "2"}
    assert after.metadata.annotations["kubernetes.io/config.hash"] == \
        after.metadata.annotations["kubernetes.io/config.mirror"]
    assert after.status.container_statuses[0].container_id != \
        before.status.container_statuses[0].container_id
    assert after.spec.containers[0].command[-1].startswith("trap 'exit 0' TERM; sleep 3601")


def test_a_removed_manifest_stops_the_pod_and_deletes_the_mirror(static_node):
    server, core, manifests, node = static_node
    name = f"web-{node}"
    pod = wait_for(lambda: running_mirror(core, name), timeout=60, what="mirror pod Running")
    container = pod.status.container_statuses[0].container_id.removeprefix("kite://")
    os.remove(os.path.join(manifests, "web.yaml"))

    def gone():
        try:
            core.read_namespaced_pod(name, "default")
            return False
        except ApiException as e:
            return e.status == 404
    wait_for(gone, timeout=30, what="mirror pod deleted")
    wait_for(lambda: not os.path.exists(os.path.join(server.data_dir, "agent", "containers", container)),
             timeout=30, what="static pod's container removed")


def test_json_manifests_other_namespaces_and_bad_files(static_node):
    server, core, manifests, node = static_node
    write(manifests, "job.json", manifest("jsonpod", "sleep 3600", namespace="kube-system"))
    # Not a pod, not parseable, and a dotfile: skipped, and the bad ones named in the log.
    with open(os.path.join(manifests, "notes.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with open(os.path.join(manifests, "broken.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")
    with open(os.path.join(manifests, ".hidden.yaml"), "w") as f:
        f.write(to_yaml(manifest("hidden", "sleep 3600")))
    pod = wait_for(lambda: running_mirror_in(core, f"jsonpod-{node}", "kube-system"), timeout=60,
                   what="mirror of the JSON manifest")
    assert pod.metadata.annotations["kubernetes.io/config.source"] == "file"
    log = wait_for(lambda: (lambda text: text if "broken.yaml" in text and "notes.yaml" in text else None)(
        server.read_log()), timeout=20, what="bad manifests logged")
    assert "skipping static pod manifest" in log
    assert "want apiVersion v1 and kind Pod" in log
    time.sleep(3)
    names = [p.metadata.name for p in core.list_pod_for_all_namespaces().items]
    assert f"hidden-{node}" not in names and f"x-{node}" not in names, names
    for file in ("job.json", "notes.yaml", "broken.yaml", ".hidden.yaml"):
        os.remove(os.path.join(manifests, file))


def running_mirror_in(core, name, namespace):
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except ApiException:
        return None
    return pod if pod.status.phase == "Running" else None
