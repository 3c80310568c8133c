"""The node lifecycle and taint-eviction controllers inside `kite server`, with
a fake Node whose "kubelet" is this test renewing its Lease: when renewals
stop, the node turns Unknown and gets the unreachable taints, its pods are
marked not ready, pods that do not tolerate the taint are evicted at once and
those tolerating it for a while are evicted when that runs out; when the
kubelet is back the taints go."""

import datetime
import json
import threading
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conftest import FakeKubelets, KiteServer
from test_kubelet import wait_for

GRACE = 5
UNREACHABLE = "node.kubernetes.io/unreachable"




def now():
    return datetime.datetime.now(datetime.timezone.utc)


class Kubelet:
    """Renews the node's Lease every second while `renewing` is set, and posts
    Ready=True with a fresh heartbeat when asked, as a kubelet would."""

    def __init__(self, api, node):
        self.coord = client.CoordinationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.node = node
        self.renewing = threading.Event()
        self.stopped = threading.Event()
        self.renewing.set()
        self.coord.create_namespaced_lease("kube-node-lease", {
            "metadata": {"name": node},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now()},
        })
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.wait(1):
            if self.renewing.is_set():
                try:
                    self.coord.patch_namespaced_lease(
                        self.node, "kube-node-lease", {"spec": {"renewTime": now()}})
                except ApiException:
                    pass

    def post_ready(self):
        stamp = now().isoformat()
        self.core.patch_node_status(self.node, {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})

    def stop(self):
        self.stopped.set()
        self.thread.join(5)


def pod(name, tolerations=None):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "lost", "containers": [{"name": "c", "image": "busybox"}],
                     **({"tolerations": tolerations} if tolerations else {})}}


def exists(core, name):
    try:
        core.read_namespaced_pod(name, "default")
        return True
    except ApiException as e:
        assert e.status == 404
        return False


def node_json(server):
    return json.loads(server.kubectl("get", "node", "lost", "-o", "json").stdout)


def unreachable_taints(node):
    return sorted(t["effect"] for t in node["spec"].get("taints", []) if t["key"] == UNREACHABLE)


def reasons(core, kind, name, namespace="default"):
    return [(e.reason, e.message) for e in core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}").items]


def test_a_silent_node_goes_unknown_is_tainted_and_its_pods_are_evicted(tmp_path_factory):
    server = KiteServer(str(tmp_path_factory.mktemp("nodelife")))
    server.start(extra=[f"--node-monitor-grace-period={GRACE}s"])
    kubelet = kubelets = None
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        server.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "lost", "labels": {"kubernetes.io/hostname": "lost"},
                         "annotations": {"test": "fake node"}},
            "spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}))
        kubelet = Kubelet(api, "lost")
        kubelet.post_ready()
        kubelets = FakeKubelets(api, ["lost"], leases=False)
        wait_for(lambda: core.read_namespaced_service_account("default", "default"), what="default SA")

        exists_ = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        pods = [
            pod("plain"),
            # Names the key, so admission adds no default, but the value differs.
            pod("untolerated", [{"key": UNREACHABLE, "operator": "Equal", "value": "other",
                                 "effect": "NoExecute"}]),
            pod("brief", [{**exists_, "tolerationSeconds": 3}]),
            pod("forever", [exists_]),
        ]
        server.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                               "items": pods}))
        # DefaultTolerationSeconds: 300 s for both keys the pod does not tolerate itself.
        plain = json.loads(server.kubectl("get", "pod", "plain", "-o", "json").stdout)
        assert sorted((t["key"], t["tolerationSeconds"]) for t in plain["spec"]["tolerations"]) == [
            ("node.kubernetes.io/not-ready", 300), (UNREACHABLE, 300)]
        brief = core.read_namespaced_pod("brief", "default")
        assert [(t.key, t.toleration_seconds) for t in brief.spec.tolerations] == [
            (UNREACHABLE, 3), ("node.kubernetes.io/not-ready", 300)]
        stamp = now().isoformat()
        core.patch_namespaced_pod_status("plain", "default", {"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp}]}})

        # Healthy while the lease is renewed, beyond the grace period.
        time.sleep(GRACE + 1)
        node = node_json(server)
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
        assert ready["status"] == "True"
        assert unreachable_taints(node) == []
        assert all(exists(core, p["metadata"]["name"]) for p in pods)

        kubelet.renewing.clear()
        silent = time.monotonic()
        node = wait_for(lambda: (n := node_json(server)) and unreachable_taints(n) == ["NoExecute", "NoSchedule"] and n,
                        timeout=GRACE + 10, interval=0.2, what="unreachable taints")
        tainted = time.monotonic()
        assert GRACE - 1 <= tainted - silent <= GRACE + 4, tainted - silent
        conditions = {c["type"]: c for c in node["status"]["conditions"]}
        assert set(conditions) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
        assert conditions["Ready"]["reason"] == "NodeStatusUnknown"
        assert conditions["Ready"]["message"] == "Kubelet stopped posting node status."
        for type_ in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert conditions[type_]["status"] == "Unknown"
            assert conditions[type_]["reason"] == "NodeStatusNeverUpdated"
        taints = node["spec"]["taints"]
        assert taints[0] == {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
        assert [t for t in taints if t["effect"] == "NoExecute"][0]["timeAdded"]
        out = server.kubectl("get", "node", "lost").stdout
        assert "NotReady" in out, out

        # Not tolerated: gone at once (the fake kubelet confirms the deletion).
        wait_for(lambda: not exists(core, "untolerated"), timeout=5, what="untolerated evicted")
        # The pods left are no longer ready.
        wait_for(lambda: any(c.type == "Ready" and c.status == "False" for c in
                             core.read_namespaced_pod("plain", "default").status.conditions),
                 timeout=5, what="plain marked not ready")
        # Tolerated for 3 s: there until then, gone soon after.
        time.sleep(max(0, tainted + 2 - time.monotonic()))
        assert exists(core, "brief")
        wait_for(lambda: not exists(core, "brief"), timeout=6, interval=0.1, what="brief evicted")
        assert time.monotonic() - tainted >= 2.5
        assert ("TaintManagerEviction", "Marking for deletion Pod default/brief") in reasons(core, "Pod", "brief")
        assert ("TaintManagerEviction", "Marking for deletion Pod default/untolerated") in \
            reasons(core, "Pod", "untolerated")
        assert ("NodeNotReady", "Node is not ready") in reasons(core, "Pod", "plain")
        node_events = reasons(core, "Node", "lost")
        assert ("RegisteredNode", "Node lost event: Registered Node lost in Controller") in node_events
        assert ("NodeNotReady", "Node lost status is now: NodeNotReady") in node_events

        # The kubelet is back: the taints go, the remaining pods stay.
        kubelet.renewing.set()
        kubelet.post_ready()
        wait_for(lambda: unreachable_taints(node_json(server)) == [], timeout=8, what="taints removed")
        assert [t["key"] for t in node_json(server)["spec"]["taints"]] == ["dedicated"]
        assert exists(core, "forever") and exists(core, "plain")
        assert all(not e[0].startswith("TaintManager") for e in reasons(core, "Pod", "forever"))
    finally:
        for helper in (kubelet, kubelets):
            if helper:
                helper.stop()
        server.stop()
