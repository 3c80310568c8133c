"""Shared fixtures for kite's end-to-end tests.

The tests run the real `kite` binary and real clients. tests/run.sh starts
pytest inside a network namespace it created; `kite_server` refuses to start
a cluster in the machine's own network namespace.
"""

import base64
import contextlib
import glob
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

KITE_BIN = os.environ.get("KITE_BIN", os.path.join(os.path.dirname(__file__), "../../target/debug/kite"))
KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"


def in_own_netns():
    """Whether this process runs in a named network namespace (one `ip netns add` made)."""
    out = subprocess.run(["ip", "netns", "identify", str(os.getpid())], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() != ""


def kubectl_versions():
    """The kubectl minor versions on this machine, e.g. ["1.27", ..., "1.33"]."""
    found = []
    for path in glob.glob(os.path.join(KUBECTL_DIR, "kubectl.1.*")):
        m = re.search(r"kubectl\.(1\.\d+)$", path)
        if m:
            found.append(m.group(1))
    return sorted(found, key=lambda v: int(v.split(".")[1]))


def kubectl_path(version):
    return os.path.join(KUBECTL_DIR, f"kubectl.{version}")


class KiteServer:
    """A `kite server` process with its own data dir and kubeconfig."""

    def __init__(self, workdir, port=6443):
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.kubeconfig = os.path.join(workdir, "kite.yaml")
        self.port = port
        self.proc = None
        self.log_path = os.path.join(workdir, "kite.log")

    @property
    def tls_dir(self):
        return os.path.join(self.data_dir, "server", "tls")

    @property
    def ca_path(self):
        return os.path.join(self.tls_dir, "server-ca.crt")

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    # Tests that run real pods turn the node agent on; the others keep the
    # machine's cgroups and mounts untouched.
    agent = False

    def args(self, extra=()):
        return [
            KITE_BIN, "server",
            "--data-dir", self.data_dir,
            "--write-kubeconfig", self.kubeconfig,
            "--https-listen-port", str(self.port),
            "--config", os.path.join(self.workdir, "no-config.yaml"),
            *([] if self.agent else ["--disable-agent"]),
            *extra,
        ]

    def start(self, extra=(), wait=True):
        if not in_own_netns():
            pytest.fail("refusing to start a cluster in the machine's network namespace; use tests/run.sh")
        # An empty config file keeps /etc/kite/config.yaml of the machine out of the test.
        open(os.path.join(self.workdir, "no-config.yaml"), "w").close()
        self.log = open(self.log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(self.args(extra), stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return time.monotonic() - started

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kite exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError(f"kite not ready in {timeout}s:\n{self.read_log()}")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()

    def kubectl_cmd(self, *args, version="1.33"):
        return [kubectl_path(version), "--kubeconfig", self.kubeconfig, *args]

    def kubectl(self, *args, version="1.33", check=True, input=None, timeout=60):
        cmd = self.kubectl_cmd(*args, version=version)
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubeconfig_ca_pem(self):
        text = open(self.kubeconfig).read()
        m = re.search(r"certificate-authority-data:\s*(\S+)", text)
        assert m, text
        return base64.b64decode(m.group(1))

    def curl(self, path, *extra):
        """curl against the server; returns (http code, body, http version)."""
        out = subprocess.run(
            ["curl", "-sS", "--cacert", self.ca_path, "-o", "-", "-w", "\n%{http_code} %{http_version}",
             *extra, f"{self.url}{path}"],
            capture_output=True, text=True, timeout=20,
        )
        assert out.returncode == 0, out.stderr
        body, _, tail = out.stdout.rpartition("\n")
        code, version = tail.split()
        return int(code), body, version


class FakeKubelets:
    """Stands in for the kubelets of fake Node objects in two respects only:
    pods bound to them that are being deleted (graceful deletion waits for a
    kubelet) are finalized with a grace period of 0, as a kubelet would after
    stopping their containers; and, unless `leases` is false, their Leases in
    kube-node-lease are renewed every 2 s, so the node lifecycle controller
    keeps them Ready. A test harness, never part of kite."""

    def __init__(self, api_client, nodes, leases=True):
        import threading
        from kubernetes import client
        self.core = client.CoreV1Api(api_client)
        self.coord = client.CoordinationV1Api(api_client)
        self.nodes = set(nodes)
        self.leases = leases
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _renew_leases(self):
        import datetime
        from kubernetes.client.rest import ApiException
        now = datetime.datetime.now(datetime.timezone.utc)
        for node in self.nodes:
            try:
                self.coord.patch_namespaced_lease(node, "kube-node-lease", {"spec": {"renewTime": now}})
            except ApiException as e:
                if e.status != 404:
                    continue
                try:
                    self.coord.create_namespaced_lease("kube-node-lease", {
                        "metadata": {"name": node},
                        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now}})
                except ApiException:
                    pass
            except Exception:
                pass

    def _run(self):
        from kubernetes.client.rest import ApiException
        renewed = 0.0
        while not self.stopped.wait(0.2):
            if self.leases and time.monotonic() - renewed >= 2:
                self._renew_leases()
                renewed = time.monotonic()
            try:
                pods = self.core.list_pod_for_all_namespaces().items
            except Exception:
                continue
            for pod in pods:
                if pod.metadata.deletion_timestamp and pod.spec.node_name in self.nodes:
                    try:
                        self.core.delete_namespaced_pod(
                            pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
                    except ApiException:
                        pass

    def stop(self):
        self.stopped.set()
        self.thread.join(5)


@contextlib.contextmanager
def fake_cluster(tmp_path_factory, name, port, nodes):
    """A kite server (no node agent) with fake Ready Nodes `nodes` (name →
    labels) whose kubelets FakeKubelets stands in for; yields (server, ApiClient)
    once the default ServiceAccount exists."""
    from kubernetes import client, config
    from test_workloads import make_node, wait_for

    server = KiteServer(str(tmp_path_factory.mktemp(name)), port=port)
    server.start()
    kubelets = None
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        for node, labels in nodes.items():
            make_node(core, node, labels=labels)
        kubelets = FakeKubelets(api, list(nodes))
        wait_for(lambda: core.list_namespaced_service_account(
            "default", field_selector="metadata.name=default").items, what="default SA")
        yield server, api
    finally:
        if kubelets:
            kubelets.stop()
        server.stop()


BUILD_IMAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../airgap/build-busybox-image.sh")


def _mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def _containers(data_dir):
    """IDs of the containers the runtime knows under `data_dir` (never raises)."""
    try:
        out = subprocess.run([KITE_BIN, "ctr", "--data-dir", data_dir, "containers", "ls", "-q"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.split() if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        return []


@contextlib.contextmanager
def node_agent(tmp_path_factory, extra=()):
    """A kite server with its node agent, busybox in its airgap image directory;
    yields (server, CoreV1Api). Pods are deleted and mounts checked afterwards."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    if not in_own_netns():
        pytest.fail("refusing to run containers in the machine's network namespace; use tests/run.sh")
    restore_cgroup_mounts()
    workdir = str(tmp_path_factory.mktemp("node"))
    server = KiteServer(workdir)
    server.agent = True
    images = os.path.join(server.data_dir, "agent", "images")
    os.makedirs(images)
    r = subprocess.run([BUILD_IMAGE, os.path.join(images, "busybox.tar")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    server.start(extra=extra)
    api = config.new_client_from_config(config_file=server.kubeconfig)
    core = client.CoreV1Api(api)

    def sa_ready():
        try:
            core.read_namespaced_service_account("default", "default")
            return True
        except ApiException:
            return False

    deadline = time.monotonic() + 30
    while not sa_ready():
        assert time.monotonic() < deadline, "default service account never appeared"
        time.sleep(0.1)
    try:
        yield server, core
    finally:
        try:
            for pod in core.list_pod_for_all_namespaces().items:
                try:
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                               grace_period_seconds=0)
                except ApiException as e:
                    if e.status != 404:  # its owner's deletion was quicker
                        raise
            deadline = time.monotonic() + 30
            while core.list_pod_for_all_namespaces().items:
                assert time.monotonic() < deadline, "pods were not removed"
                time.sleep(0.1)
            # A pod deleted with grace 0 leaves the API at once; its containers
            # stop a moment later. Containers outlive kite by design, so wait
            # for them before stopping it.
            deadline = time.monotonic() + 20
            while _containers(server.data_dir) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            server.stop()
            # Whatever is left (a failed test, a kubelet that gave up) goes too.
            for cid in _containers(server.data_dir):
                subprocess.run([KITE_BIN, "ctr", "--data-dir", server.data_dir,
                                "containers", "rm", cid], capture_output=True, timeout=30)
            for m in reversed(_mounts_under(workdir)):
                subprocess.run(["umount", "-l", m])
    leaked = _mounts_under(workdir)
    assert leaked == [], leaked


def add_uplink(node_ip, link):
    """A node address of its own: `node_ip` on a veth `link` of this network
    namespace, with the namespace's default route on it. The far end has no
    address, so anything routed there waits for an ARP answer that never
    comes: nothing leaves the namespace."""
    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("link", "add", link, "type", "veth", "peer", "name", link + "p")
    ip("addr", "add", f"{node_ip}/24", "dev", link)
    ip("link", "set", link, "up")
    ip("link", "set", link + "p", "up")
    ip("route", "add", "default", "dev", link)


def remove_uplink(link):
    """Undoes `add_uplink` and removes kite's nftables tables."""
    subprocess.run(["ip", "link", "delete", link], capture_output=True)
    for table in ("kite-proxy", "kite-pod-network", "kite-netpol"):
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)


@contextlib.contextmanager
def node_with_uplink(tmp_path_factory, node_ip, link, extra=()):
    """`node_agent` on a node address of its own (see `add_uplink`); the link
    and kite's nftables tables go afterwards."""
    if not in_own_netns():
        pytest.fail("refusing to change links in the machine's network namespace; use tests/run.sh")
    try:
        add_uplink(node_ip, link)
        with node_agent(tmp_path_factory, extra=["--node-ip", node_ip, *extra]) as value:
            yield value
    finally:
        remove_uplink(link)


def restore_cgroup_mounts():
    """`ip netns exec` mounts a fresh /sys, which hides /sys/fs/cgroup. Mount the machine's
    cgroup hierarchies again, as pid 1 sees them, in this process's mount namespace (which
    `ip netns exec` created as a slave of the machine's, so nothing leaks out)."""
    if os.path.isdir("/sys/fs/cgroup") and os.listdir("/sys/fs/cgroup"):
        return
    with open("/proc/1/mountinfo") as f:
        lines = [line.split() for line in f]
    for fields in lines:
        point = fields[4]
        if point != "/sys/fs/cgroup" and not point.startswith("/sys/fs/cgroup/"):
            continue
        sep = fields.index("-")
        fstype, source, options = fields[sep + 1], fields[sep + 2], fields[sep + 3]
        options = ",".join(o for o in options.split(",") if o not in ("rw", "ro"))
        os.makedirs(point, exist_ok=True)
        cmd = ["mount", "-t", fstype, *(["-o", options] if options else []), source, point]
        subprocess.run(cmd, check=True)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="kite-e2e-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kite_server(workdir):
    server = KiteServer(workdir)
    yield server
    server.stop(signal.SIGKILL if server.proc and server.proc.poll() is None else signal.SIGTERM)


def run_kite(*args, timeout=20, env=None):
    """Runs a short kite command and returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([KITE_BIN, *args], capture_output=True, text=True, timeout=timeout, env=full_env)
