"""The node agent inside `kite server`: the busybox tarball in
`<data-dir>/agent/images/` is imported at start, the node registers Ready, and
pods really run: status as Kubernetes reports it, restarts with back-off,
probes, OOM kills, volumes that follow their sources, init containers, graceful
deletion with preStop hooks, and containers that survive `kill -9` of kite."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import KITE_BIN, node_agent


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def wait_for(check, timeout=30, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A kite server with its node agent, busybox in its airgap image directory."""
    with node_agent(tmp_path_factory) as value:
        yield value


def pod_spec(name, command, restart="Always", **extra):
    container = {"name": extra.pop("container_name", "c"), "image": "busybox",
                 "command": ["sh", "-c", command], **extra.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [container], **extra}}


def status_of(core, name, container=None):
    pod = core.read_namespaced_pod(name, "default")
    statuses = pod.status.container_statuses or []
    if container is None:
        return pod, (statuses[0] if statuses else None)
    return pod, next((s for s in statuses if s.name == container), None)


def events_for(core, name):
    return [(e.reason, e.message) for e in
            core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items]


def delete_now(core, name):
    try:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    except ApiException:
        pass


def test_node_is_ready_and_lists_the_imported_image(node):
    server, core = node
    nodes = wait_for(lambda: core.list_node().items, what="node registered")
    n = nodes[0]
    ready = wait_for(lambda: [c for c in core.read_node(n.metadata.name).status.conditions
                              if c.type == "Ready" and c.status == "True"], what="node Ready")
    assert ready[0].reason == "KubeletReady"
    assert n.metadata.labels["node-role.kubernetes.io/control-plane"] == "true"
    assert n.metadata.labels["kubernetes.io/os"] == "linux"
    assert int(n.status.capacity["cpu"]) >= 1
    assert n.status.node_info.kubelet_version.startswith("v1.33")
    lease = client.CoordinationV1Api(core.api_client).read_namespaced_lease(n.metadata.name, "kube-node-lease")
    assert lease.spec.holder_identity == n.metadata.name
    out = subprocess.run([KITE_BIN, "ctr", "--data-dir", server.data_dir, "images", "ls", "-q"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "docker.io/library/busybox:latest" in out.stdout.split()


def test_a_pod_runs_and_is_ready_within_two_seconds(node):
    server, core = node
    w = watch.Watch()
    started = time.monotonic()
    core.create_namespaced_pod("default", pod_spec("hello", "echo hello; sleep 3600"))
    elapsed = None
    for event in w.stream(core.list_namespaced_pod, "default", field_selector="metadata.name=hello",
                          timeout_seconds=20):
        pod = event["object"]
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        if pod.status.phase == "Running" and conditions.get("Ready") == "True":
            elapsed = time.monotonic() - started
            w.stop()
    assert elapsed is not None, "pod never became Running and Ready"
    assert elapsed < 2.0, f"Running and Ready after {elapsed:.2f}s"
    pod, cs = status_of(core, "hello")
    assert cs.state.running.started_at
    assert cs.container_id.startswith("kite://")
    assert cs.image_id.startswith("docker.io/library/busybox@sha256:")
    assert cs.ready and cs.started and cs.restart_count == 0
    assert pod.status.qos_class == "BestEffort"
    assert pod.status.host_ip
    reasons = [r for r, _ in events_for(core, "hello")]
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        assert reason in reasons, reasons


def test_crashing_containers_back_off(node):
    _, core = node
    core.create_namespaced_pod("default", pod_spec("crash", "echo oops; exit 1"))
    # The first restart is immediate, the next after 10 s: CrashLoopBackOff in between.
    cs = wait_for(lambda: (s := status_of(core, "crash")[1]) and s.state.waiting
                  and s.state.waiting.reason == "CrashLoopBackOff" and s, timeout=30,
                  what="CrashLoopBackOff")
    assert cs.last_state.terminated.exit_code == 1
    assert cs.last_state.terminated.reason == "Error"
    assert "back-off 10s restarting failed container=c pod=crash_default" in cs.state.waiting.message
    count = cs.restart_count
    assert count >= 1
    wait_for(lambda: status_of(core, "crash")[1].restart_count > count, timeout=20, what="another restart")
    assert ("BackOff", f"Back-off restarting failed container c in pod crash_default({status_of(core, 'crash')[0].metadata.uid})") in events_for(core, "crash")
    delete_now(core, "crash")


def test_a_pod_that_completes_succeeds_and_one_that_fails_fails(node):
    _, core = node
    core.create_namespaced_pod("default", pod_spec("done", "echo bye > /dev/termination-log; exit 0", restart="Never"))
    core.create_namespaced_pod("default", pod_spec("fails", "exit 3", restart="Never"))
    wait_for(lambda: status_of(core, "done")[0].status.phase == "Succeeded", what="Succeeded")
    wait_for(lambda: status_of(core, "fails")[0].status.phase == "Failed", what="Failed")
    term = status_of(core, "done")[1].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed" and term.message == "bye\n"
    assert status_of(core, "fails")[1].state.terminated.exit_code == 3
    ready = {c.type: c.reason for c in status_of(core, "done")[0].status.conditions}
    assert ready["Ready"] == "PodCompleted"
    delete_now(core, "done")
    delete_now(core, "fails")


def test_an_exit_is_reported_at_once_not_at_the_next_resync(node):
    """Exits wake the pod's worker (a pidfd of the container's monitor); the
    periodic pass while containers run is 5 s, so a report within 1.5 s of
    the exit can only come from the event."""
    _, core = node
    core.create_namespaced_pod("default", pod_spec("exits", "sleep 3; exit 4", restart="Never"))
    wait_for(lambda: status_of(core, "exits")[0].status.phase == "Running", what="Running")
    # Let a periodic pass happen first, so the exit falls between two of them.
    time.sleep(1)
    wait_for(lambda: status_of(core, "exits")[0].status.phase == "Failed", timeout=10, interval=0.05,
             what="Failed")
    seen = time.time()
    term = status_of(core, "exits")[1].state.terminated
    assert term.exit_code == 4
    # finishedAt has whole seconds: the exit happened in [finishedAt, finishedAt + 1).
    assert seen - term.finished_at.timestamp() < 2.5, (seen, term.finished_at)
    delete_now(core, "exits")


def test_probes_restart_and_unready(node):
    _, core = node
    live = pod_spec("liveness", "sleep 3600", container={
        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2}})
    ready = pod_spec("readiness", "sleep 3600", container={
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}})
    core.create_namespaced_pod("default", live)
    core.create_namespaced_pod("default", ready)
    wait_for(lambda: status_of(core, "liveness")[1] and status_of(core, "liveness")[1].restart_count >= 1,
             timeout=40, what="liveness restart")
    events = events_for(core, "liveness")
    assert ("Killing", "Container c failed liveness probe, will be restarted") in events, events
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed:") for r, m in events), events
    wait_for(lambda: status_of(core, "readiness")[0].status.phase == "Running", what="Running")
    time.sleep(3)
    pod, cs = status_of(core, "readiness")
    assert not cs.ready
    conditions = {c.type: c for c in pod.status.conditions}
    assert conditions["Ready"].status == "False"
    assert conditions["Ready"].reason == "ContainersNotReady"
    ip = pod.status.pod_ip
    assert any(r == "Unhealthy" and f"dial tcp {ip}:8080: connect: connection refused" in m
               for r, m in events_for(core, "readiness")), (ip, events_for(core, "readiness"))
    delete_now(core, "liveness")
    delete_now(core, "readiness")


def test_seccomp_runtime_default_filters_and_unconfined_does_not(node):
    """RuntimeDefault loads kite's filter (mode 2 in /proc/self/status) and new
    namespaces are refused; unset means Unconfined; a Localhost profile is read
    from the kubelet's seccomp directory, and a missing one is a clear error."""
    server, core = node
    probe = "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?; sleep 3600"
    profiles = {"filtered": {"type": "RuntimeDefault"}, "plain": None,
                "local": {"type": "Localhost", "localhostProfile": "profiles/deny-mkdir.json"},
                "missing": {"type": "Localhost", "localhostProfile": "profiles/nope.json"}}
    seccomp_dir = os.path.join(server.data_dir, "agent", "seccomp", "profiles")
    os.makedirs(seccomp_dir, exist_ok=True)
    with open(os.path.join(seccomp_dir, "deny-mkdir.json"), "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}, f)
    for name, profile in profiles.items():
        command = probe if name != "local" else "mkdir /tmp/x; echo mkdir=$?; sleep 3600"
        extra = {"securityContext": {"seccompProfile": profile}} if profile else {}
        core.create_namespaced_pod("default", pod_spec(name, command, **extra))
    for name in ["filtered", "plain", "local"]:
        wait_for(lambda: status_of(core, name)[0].status.phase == "Running", timeout=15,
                 what=f"{name} Running ({status_of(core, name)[1]}, {events_for(core, name)})")

    def log(name, marker):
        return wait_for(lambda: marker in (out := core.read_namespaced_pod_log(name, "default")) and out,
                        what=f"{name} log")

    filtered = log("filtered", "unshare=")
    assert "Seccomp:\t2" in filtered and "unshare=1" in filtered, filtered
    plain = log("plain", "unshare=")
    assert "Seccomp:\t0" in plain, plain
    assert "mkdir=1" in log("local", "mkdir="), "the Localhost profile denies mkdir"
    waiting = wait_for(lambda: (cs := status_of(core, "missing")[1]) and cs.state.waiting
                       and cs.state.waiting.reason == "CreateContainerConfigError" and cs.state.waiting,
                       what="missing profile reported")
    assert "failed to read seccomp profile" in waiting.message and "nope.json" in waiting.message, waiting
    for name in profiles:
        delete_now(core, name)


def test_memory_limits_oom_kill_and_cpu_quota_is_set(node):
    _, core = node
    hog = pod_spec("hog", "x=$(yes | head -c 200000000); echo survived",
                   restart="Never",
                   container={"resources": {"limits": {"memory": "16Mi", "cpu": "250m"}}})
    core.create_namespaced_pod("default", hog)
    term = wait_for(lambda: (s := status_of(core, "hog")[1]) and s.state.terminated, timeout=60,
                    what="hog terminated")
    assert term.reason == "OOMKilled", term
    assert term.exit_code == 137
    quota = pod_spec("quota", "sleep 3600", container={"resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}})
    core.create_namespaced_pod("default", quota)
    cs = wait_for(lambda: (s := status_of(core, "quota")[1]) and s.state.running and s, what="quota running")
    cid = cs.container_id.removeprefix("kite://")
    found = []
    for base, dirs, files in os.walk("/sys/fs/cgroup"):
        if os.path.basename(base) == cid:
            for f in ("cpu.cfs_quota_us", "cpu.max"):
                if f in files:
                    found.append(open(os.path.join(base, f)).read().strip())
    assert any(v in ("25000", "25000 100000") for v in found), found
    delete_now(core, "hog")
    delete_now(core, "quota")


def test_volumes_hold_their_sources_and_follow_updates(node):
    _, core = node
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}})
    core.create_namespaced_secret("default", {"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}})
    body = pod_spec("vols", "sleep 3600", container={"volumeMounts": [
        {"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"},
        {"name": "info", "mountPath": "/info"}, {"name": "all", "mountPath": "/all"},
    ]})
    body["metadata"]["labels"] = {"app": "vols"}
    body["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "g"}]}},
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}},
    ]
    core.create_namespaced_pod("default", body)
    wait_for(lambda: (s := status_of(core, "vols")[1]) and s.state.running, what="vols running")

    files = {}
    for path in ("/cfg/greeting", "/sec/password", "/info/labels", "/info/name", "/all/g", "/all/token"):
        files[path] = _read_in_pod(node, "vols", path)
    assert files["/cfg/greeting"] == "hello"
    assert files["/sec/password"] == "s3cret"
    assert files["/info/labels"] == 'app="vols"'
    assert files["/info/name"] == "vols"
    assert files["/all/g"] == "hello"
    assert files["/all/token"].count(".") == 2
    core.patch_namespaced_config_map("cfg", "default", {"data": {"greeting": "updated"}})
    wait_for(lambda: _read_in_pod(node, "vols", "/cfg/greeting") == "updated", timeout=30,
             interval=1, what="configMap update in the volume")
    delete_now(core, "vols")


def _read_in_pod(node, pod, path):
    """Reads a file of a pod's container from the node's side (the kubelet API
    serves exec; this reads the container's root through /proc instead)."""
    server, core = node
    cs = status_of(core, pod)[1]
    cid = cs.container_id.removeprefix("kite://")
    monitor = json.load(open(os.path.join(server.data_dir, "agent", "containers", cid, "monitor.json")))
    with open(f"/proc/{monitor['pid']}/root{path}") as f:
        return f.read()


def test_emptydir_is_shared_and_init_containers_run_first(node):
    _, core = node
    body = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shared"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "initContainers": [{"name": "init", "image": "busybox",
                                "command": ["sh", "-c", "echo from-init > /s/init"],
                                "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}],
            "containers": [
                {"name": "writer", "image": "busybox",
                 "command": ["sh", "-c", "cat /s/init > /s/copy; echo from-writer > /s/w; sleep 3600"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]},
                {"name": "reader", "image": "busybox", "command": ["sleep", "3600"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
            ],
        },
    }
    core.create_namespaced_pod("default", body)
    wait_for(lambda: status_of(core, "shared")[0].status.phase == "Running", what="Running")
    pod = core.read_namespaced_pod("shared", "default")
    init = pod.status.init_container_statuses[0]
    assert init.state.terminated.exit_code == 0 and init.state.terminated.reason == "Completed"
    wait_for(lambda: _read_in_pod_container(node, "shared", "reader", "/data/w") == "from-writer\n",
             what="writer's file visible to the reader")
    assert _read_in_pod_container(node, "shared", "reader", "/data/copy") == "from-init\n"
    delete_now(core, "shared")


def _read_in_pod_container(node, pod, container, path):
    server, core = node
    cs = status_of(core, pod, container)[1]
    if not cs or not cs.container_id:
        return None
    cid = cs.container_id.removeprefix("kite://")
    try:
        monitor = json.load(open(os.path.join(server.data_dir, "agent", "containers", cid, "monitor.json")))
        with open(f"/proc/{monitor['pid']}/root{path}") as f:
            return f.read()
    except OSError:
        return None


def test_graceful_deletion_runs_prestop_and_sigterm(node, tmp_path):
    _, core = node
    marks = str(tmp_path)
    body = pod_spec("graceful", "trap 'echo term >> /marks/log; exit 0' TERM; while true; do sleep 0.2; done",
                    container={
                        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /marks/log"]}}},
                        "volumeMounts": [{"name": "marks", "mountPath": "/marks"}]},
                    volumes=[{"name": "marks", "hostPath": {"path": marks, "type": "Directory"}}])
    body["spec"]["terminationGracePeriodSeconds"] = 20
    core.create_namespaced_pod("default", body)
    wait_for(lambda: (s := status_of(core, "graceful")[1]) and s.state.running, what="running")
    started = time.monotonic()
    core.delete_namespaced_pod("graceful", "default")
    pod = core.read_namespaced_pod("graceful", "default")
    assert pod.metadata.deletion_timestamp and pod.metadata.deletion_grace_period_seconds == 20
    wait_for(lambda: not core.list_namespaced_pod("default", field_selector="metadata.name=graceful").items,
             timeout=25, what="pod removed")
    took = time.monotonic() - started
    assert took < 15, f"took {took:.1f}s although the container exits on SIGTERM"
    assert open(os.path.join(marks, "log")).read().split() == ["prestop", "term"]
    assert ("Killing", "Stopping container c") in events_for(core, "graceful")

    # --grace-period=0 --force: gone at once.
    core.create_namespaced_pod("default", pod_spec("forced", "sleep 3600"))
    wait_for(lambda: (s := status_of(core, "forced")[1]) and s.state.running, what="running")
    started = time.monotonic()
    node[0].kubectl("delete", "pod", "forced", "--grace-period=0", "--force")
    assert not core.list_namespaced_pod("default", field_selector="metadata.name=forced").items
    assert time.monotonic() - started < 5


def test_containers_survive_kill_9_of_kite(node):
    server, core = node
    core.create_namespaced_pod("default", pod_spec("survivor", "echo up; sleep 3600"))
    before = wait_for(lambda: (s := status_of(core, "survivor")[1]) and s.state.running and s,
                      what="running")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.log.close()
    server.start()
    time.sleep(3)
    after = status_of(core, "survivor")[1]
    assert after.container_id == before.container_id
    assert after.restart_count == before.restart_count
    assert after.state.running and after.ready
    cid = before.container_id.removeprefix("kite://")
    monitor = json.load(open(os.path.join(server.data_dir, "agent", "containers", cid, "monitor.json")))
    assert os.path.exists(f"/proc/{monitor['pid']}")
    delete_now(core, "survivor")


def test_bad_input_gets_clear_status_and_events(node, tmp_path):
    _, core = node
    core.create_namespaced_pod("default", pod_spec("healthy", "sleep 3600"))
    bad_image = pod_spec("badimage", "true")
    bad_image["spec"]["containers"][0]["image"] = "Busy Box:!!"
    core.create_namespaced_pod("default", bad_image)
    missing = pod_spec("missingimage", "true")
    missing["spec"]["containers"][0]["image"] = "registry.invalid/nothing:1"
    core.create_namespaced_pod("default", missing)
    nodir = pod_spec("nodir", "true", volumes=[{"name": "h", "hostPath": {"path": str(tmp_path / "nope"), "type": "Directory"}}],
                     container={"volumeMounts": [{"name": "h", "mountPath": "/h"}]})
    core.create_namespaced_pod("default", nodir)

    w = wait_for(lambda: (s := status_of(core, "badimage")[1]) and s.state.waiting
                 and s.state.waiting.reason == "InvalidImageName" and s.state.waiting, what="InvalidImageName")
    assert "couldn't parse image name" in w.message
    reasons = wait_for(lambda: {(s := status_of(core, "missingimage")[1]) and s.state.waiting and s.state.waiting.reason}
                       & {"ErrImagePull", "ImagePullBackOff"}, what="ErrImagePull")
    assert reasons
    wait_for(lambda: (s := status_of(core, "missingimage")[1]) and s.state.waiting.reason == "ImagePullBackOff",
             timeout=20, what="ImagePullBackOff")
    wait_for(lambda: any(r == "FailedMount" and "hostPath type check failed" in m and "is not a directory" in m
                         for r, m in events_for(core, "nodir")), what="FailedMount")
    assert status_of(core, "nodir")[0].status.phase == "Pending"
    wait_for(lambda: (s := status_of(core, "healthy")[1]) and s.state.running, what="healthy pod unaffected")
    for name in ("healthy", "badimage", "missingimage", "nodir"):
        delete_now(core, name)


def test_pods_get_addresses_from_the_node_pod_cidr_and_reach_each_other(node):
    import ipaddress
    server, core = node
    n = core.list_node().items[0]
    cidr = ipaddress.ip_network(wait_for(lambda: core.read_node(n.metadata.name).spec.pod_cidr,
                                         what="node pod CIDR"))
    assert cidr.prefixlen == 24 and cidr.subnet_of(ipaddress.ip_network("10.42.0.0/16"))
    core.create_namespaced_pod("default", pod_spec("target", "sleep 3600"))
    pod = wait_for(lambda: (p := status_of(core, "target")[0]) and p.status.pod_ip and p,
                   what="target pod IP")
    ip = ipaddress.ip_address(pod.status.pod_ip)
    assert ip in cidr and ip != cidr.network_address + 1, (ip, cidr)
    assert [p.ip for p in pod.status.pod_i_ps] == [str(ip)]
    hosts = _read_in_pod(node, "target", "/etc/hosts")
    assert f"{ip}\ttarget" in hosts, hosts
    # Another pod pings it over the bridge and exits 0 only if it answered.
    core.create_namespaced_pod("default", pod_spec(
        "pinger", f"ping -c 1 -W 5 {ip} && wget -q -T 2 -O /dev/null http://{ip}:1/ ; ping -c 1 -W 5 {ip}",
        restart="Never"))
    done = wait_for(lambda: (p := status_of(core, "pinger")[0]).status.phase in ("Succeeded", "Failed") and p,
                    timeout=30, what="pinger finished")
    assert done.status.phase == "Succeeded", status_of(core, "pinger")[1]
    other = ipaddress.ip_address(done.status.pod_ip)
    assert other in cidr and other != ip
    # Deleting a pod gives its address back and removes its link.
    ipam = os.path.join(server.data_dir, "agent", "network", "ipam", str(cidr).replace("/", "_"))
    assert os.path.exists(os.path.join(ipam, str(ip)))
    delete_now(core, "target")
    wait_for(lambda: not os.path.exists(os.path.join(ipam, str(ip))), what="address released")
    delete_now(core, "pinger")
