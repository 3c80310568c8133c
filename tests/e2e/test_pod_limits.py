"""Resource limits reach the kernel: `--kubelet-arg pod-max-pids=N` caps the
processes of each pod (its cgroup's pids.max, as the kubelet's podPidsLimit
does), and a container's memory and CPU limits are its cgroup's."""

import os

import pytest

from conftest import node_agent
from test_kubelet import delete_now, pod_spec, status_of, wait_for


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

PIDS = 20


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with node_agent(tmp_path_factory, extra=["--kubelet-arg", f"pod-max-pids={PIDS}"]) as value:
        yield value


def cgroup_dirs(name):
    """Every cgroup directory called `name`, in any hierarchy."""
    return [base for base, _, _ in os.walk("/sys/fs/cgroup") if os.path.basename(base) == name]


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_pod_max_pids_caps_the_pods_processes(node):
    server, core = node
    core.create_namespaced_pod("default", pod_spec("forks", "sleep 3600"))
    wait_for(lambda: (s := status_of(core, "forks")[1]) and s.state.running, timeout=60,
             what="forks running")
    pod = core.read_namespaced_pod("forks", "default")
    dirs = [d for d in cgroup_dirs("pod" + pod.metadata.uid.replace("-", "_"))
            if os.path.exists(os.path.join(d, "pids.max"))]
    assert dirs, "the pod's cgroup has no pids controller"
    assert read(os.path.join(dirs[0], "pids.max")) == str(PIDS)
    # A process exec'd into the container is in the pod's cgroup too: it cannot fork past the cap.
    out = server.kubectl("exec", "forks", "--", "sh", "-c", "for i in $(seq 40); do sleep 300 >/dev/null 2>&1 & done; wait",
                         check=False)
    assert out.returncode != 0
    assert "can't fork" in out.stderr or "Resource temporarily unavailable" in out.stderr, out.stderr
    assert int(read(os.path.join(dirs[0], "pids.current"))) <= PIDS
    delete_now(core, "forks")


def test_container_limits_are_its_cgroups(node):
    _, core = node
    core.create_namespaced_pod("default", pod_spec(
        "limited", "sleep 3600", container={"resources": {"limits": {"memory": "32Mi", "cpu": "500m"}}}))
    cs = wait_for(lambda: (s := status_of(core, "limited")[1]) and s.state.running and s, timeout=60,
                  what="limited running")
    cid = cs.container_id.removeprefix("kite://")
    values = {}
    for d in cgroup_dirs(cid):
        for f in ("memory.limit_in_bytes", "memory.max", "cpu.cfs_quota_us", "cpu.max", "pids.max"):
            if os.path.exists(os.path.join(d, f)):
                values[f] = read(os.path.join(d, f))
    assert values.get("memory.limit_in_bytes", values.get("memory.max")) == str(32 << 20), values
    assert values.get("cpu.cfs_quota_us") == "50000" or values.get("cpu.max") == "50000 100000", values
    delete_now(core, "limited")
