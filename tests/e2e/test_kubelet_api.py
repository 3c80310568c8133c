"""The kubelet API through the apiserver, driven by real kubectl 1.27 (SPDY)
and 1.33 (WebSocket): `kubectl logs` with its options and kube's errors,
`exec` (plain, stdin, exit codes, a terminal under tmux), `cp` both ways,
`attach` to a container started with stdin, and `port-forward` to a pod's
port. The kubelet listens on a non-default `--kubelet-port`."""

import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import kubectl_path, node_agent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

# The oldest (SPDY) and newest (WebSocket) kubectl; KITE_E2E_KUBECTL="1.27 1.30 1.31" widens it.
VERSIONS = os.environ.get("KITE_E2E_KUBECTL", "1.27 1.33").split()
KUBELET_PORT = 10350


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
    with node_agent(tmp_path_factory, extra=["--kubelet-port", str(KUBELET_PORT)]) as value:
        yield value


def kubectl(server, version, *args, input=None, timeout=60):
    return subprocess.run([kubectl_path(version), "--kubeconfig", server.kubeconfig, *args],
                          capture_output=True, text=True, input=input, timeout=timeout)


def pod(name, command, restart="Always", containers=None, **container):
    spec = containers or [{"name": "c", "image": "busybox", "command": ["sh", "-c", command],
                           **container}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "containers": spec}}


def running(core, name):
    def check():
        p = core.read_namespaced_pod(name, "default")
        statuses = p.status.container_statuses or []
        return p if statuses and all(s.state.running for s in statuses) else None
    return wait_for(check, what=f"{name} running")


@pytest.fixture(scope="module")
def logger(node):
    server, core = node
    core.create_namespaced_pod("default", pod(
        "logger", "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; sleep 3600"))
    running(core, "logger")
    wait_for(lambda: kubectl(server, "1.33", "logs", "logger").stdout.count("\n") == 3,
             what="three log lines")
    return "logger"


def test_the_node_publishes_the_kubelet_port(node):
    server, core = node
    n = wait_for(lambda: core.list_node().items, what="node")[0]
    assert n.status.daemon_endpoints.kubelet_endpoint.port == KUBELET_PORT
    # The images it holds, by tag and digest, for the scheduler's image locality.
    names = [name for image in n.status.images or [] for name in image.names]
    assert "docker.io/library/busybox:latest" in names, names
    assert any(name.startswith("docker.io/library/busybox@sha256:") for name in names), names
    assert all(image.size_bytes > 0 for image in n.status.images)


def test_the_kubelet_wants_a_client_certificate(node):
    server, _ = node
    import ssl
    ctx = ssl.create_default_context(cafile=server.ca_path)
    ctx.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionResetError, urllib.error.URLError)):
        with urllib.request.urlopen(f"https://127.0.0.1:{KUBELET_PORT}/healthz",
                                    context=ctx, timeout=5) as r:
            r.read()


def curl_kubelet(server, path, cert, key):
    return subprocess.run(["curl", "-sS", "--cacert", server.ca_path, "--cert", cert, "--key", key,
                           "--resolve", f"localhost:{KUBELET_PORT}:127.0.0.1",
                           "-w", "\n%{http_code}", f"https://localhost:{KUBELET_PORT}{path}"],
                          capture_output=True, text=True, timeout=30)


def test_the_kubelet_serves_masters_and_refuses_other_users(node, logger, tmp_path):
    server, _ = node
    admin = (os.path.join(server.tls_dir, "client-admin.crt"),
             os.path.join(server.tls_dir, "client-admin.key"))
    out = curl_kubelet(server, "/healthz", *admin)
    assert out.stdout.split("\n")[-1] == "200", out
    out = curl_kubelet(server, "/pods", *admin)
    assert out.stdout.split("\n")[-1] == "200", out
    assert '"name":"logger"' in out.stdout
    # A certificate of the same client CA for a node, not the apiserver: refused.
    key, csr, cert, ext = (str(tmp_path / n) for n in ("node.key", "node.csr", "node.crt", "ext"))
    with open(ext, "w") as f:
        f.write("keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", "/O=system:nodes/CN=system:node:other"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(server.tls_dir, "client-ca.crt"),
                    "-CAkey", os.path.join(server.tls_dir, "client-ca.key"), "-CAcreateserial",
                    "-out", cert, "-days", "1", "-extfile", ext], check=True, capture_output=True)
    out = curl_kubelet(server, "/pods", cert, key)
    assert out.stdout.split("\n")[-1] == "403", out
    assert "Forbidden (user=system:node:other" in out.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_with_tail_timestamps_and_limit(node, logger, version):
    server, _ = node
    out = kubectl(server, version, "logs", logger)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "one\ntwo\nthree\n"
    out = kubectl(server, version, "logs", logger, "--tail=1")
    assert out.stdout == "three\n"
    out = kubectl(server, version, "logs", logger, "--timestamps")
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    for line, text in zip(lines, ["one", "two", "three"]):
        stamp, rest = line.split(" ", 1)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", stamp), stamp
        assert rest == text
    out = kubectl(server, version, "logs", logger, "--limit-bytes=6")
    assert out.stdout == "one\ntw"
    out = kubectl(server, version, "logs", logger, "--since=1h")
    assert out.stdout == "one\ntwo\nthree\n"


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_follow_ends_when_the_container_exits(node, version):
    server, core = node
    name = f"follow-{version.replace('.', '')}"
    core.create_namespaced_pod("default", pod(
        name, "sleep 1; for i in 1 2 3; do echo line $i; sleep 0.5; done", restart="Never"))
    running(core, name)
    started = time.monotonic()
    out = kubectl(server, version, "logs", "-f", name, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "line 1\nline 2\nline 3\n"
    assert time.monotonic() - started > 1.0, "follow returned before the container ended"


@pytest.mark.parametrize("version", VERSIONS)
def test_previous_logs_and_their_absence(node, logger, version):
    server, core = node
    out = kubectl(server, version, "logs", "--previous", logger)
    assert out.returncode != 0
    assert 'previous terminated container "c" in pod "logger" not found' in out.stderr
    name = f"crash-{version.replace('.', '')}"
    core.create_namespaced_pod("default", pod(name, "echo run at $(date +%s%N); exit 1"))
    wait_for(lambda: (core.read_namespaced_pod(name, "default").status.container_statuses or [None])[0]
             and core.read_namespaced_pod(name, "default").status.container_statuses[0].restart_count >= 1,
             what="a restart")
    out = kubectl(server, version, "logs", "--previous", name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("run at ")


@pytest.mark.parametrize("version", VERSIONS)
def test_log_errors_are_kubes(node, version):
    server, core = node
    suffix = version.replace(".", "")
    multi = f"multi-{suffix}"
    core.create_namespaced_pod("default", pod(multi, "", containers=[
        {"name": "a", "image": "busybox", "command": ["sleep", "3600"]},
        {"name": "b", "image": "busybox", "command": ["sleep", "3600"]}]))
    # kubectl picks the first container itself; the API asks for a name.
    out = kubectl(server, version, "logs", multi)
    assert 'Defaulted container "a" out of: a, b' in out.stderr
    raw = kubectl(server, version, "get", "--raw", f"/api/v1/namespaces/default/pods/{multi}/log")
    assert f"a container name must be specified for pod {multi}, choose one of: [a b]" in raw.stderr
    out = kubectl(server, version, "logs", multi, "-c", "x")
    assert out.returncode != 0
    missing = f"missing-{suffix}"
    core.create_namespaced_pod("default", pod(missing, "true", image="does-not-exist:1"))

    def waiting():
        out = kubectl(server, version, "logs", missing)
        return out if "is waiting to start" in out.stderr else None
    out = wait_for(waiting, what="waiting error")
    assert re.search(rf'container "c" in pod "{missing}" is waiting to start: \S', out.stderr), out.stderr
    assert "BadRequest" in out.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_output_stdin_and_exit_codes(node, logger, version):
    server, _ = node
    out = kubectl(server, version, "exec", logger, "--", "cat", "/etc/hostname")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "logger\n"
    out = kubectl(server, version, "exec", "-i", logger, "--", "cat", input="abc\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "abc\n"
    out = kubectl(server, version, "exec", logger, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert out.returncode == 3, out.stderr
    assert out.stdout == "out\n"
    assert "err\n" in out.stderr
    assert "command terminated with exit code 3" in out.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_cp_both_ways(node, logger, version, tmp_path):
    server, _ = node
    local = tmp_path / "in.txt"
    data = "".join(f"line {i} {version}\n" for i in range(2000))
    local.write_text(data)
    out = kubectl(server, version, "cp", str(local), f"default/{logger}:/tmp/in-{version}.txt")
    assert out.returncode == 0, out.stderr
    out = kubectl(server, version, "exec", logger, "--", "cat", f"/tmp/in-{version}.txt")
    assert out.stdout == data
    back = tmp_path / "back.txt"
    out = kubectl(server, version, "cp", f"default/{logger}:/tmp/in-{version}.txt", str(back))
    assert out.returncode == 0, out.stderr
    assert back.read_text() == data


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_with_a_terminal_under_tmux(node, logger, version, tmp_path):
    server, _ = node
    session = f"kite-tty-{os.getpid()}-{version.replace('.', '')}"
    command = f"{kubectl_path(version)} --kubeconfig {server.kubeconfig} exec -it {logger} -- sh"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
                   check=True)
    try:
        def pane():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True).stdout
        wait_for(lambda: "#" in pane(), what="a shell prompt")
        subprocess.run(["tmux", "send-keys", "-t", session, "stty size; echo $((6*7))", "Enter"], check=True)
        wait_for(lambda: "30 100" in pane() and "42" in pane(), what="terminal size and output")
        subprocess.run(["tmux", "resize-window", "-t", session, "-x", "120", "-y", "40"], check=True)
        time.sleep(0.5)
        subprocess.run(["tmux", "send-keys", "-t", session, "stty size", "Enter"], check=True)
        wait_for(lambda: "40 120" in pane(), what="resized terminal")
        subprocess.run(["tmux", "send-keys", "-t", session, "exit 0", "Enter"], check=True)
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session],
                                        capture_output=True).returncode != 0,
                 what="kubectl to exit with the shell")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_attach_to_a_container_with_stdin(node, version):
    server, core = node
    name = f"attach-{version.replace('.', '')}"
    core.create_namespaced_pod("default", pod(
        name, "read line; echo got $line; sleep 1", restart="Never", stdin=True))
    running(core, name)
    out = kubectl(server, version, "attach", "-i", name, input="hello\n", timeout=30)
    assert "got hello" in out.stdout, (out.stdout, out.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web(node):
    server, core = node
    core.create_namespaced_pod("default", pod(
        "web", "mkdir -p /www && echo hello from web > /www/index.html && httpd -f -p 80 -h /www"))
    running(core, "web")
    return "web"


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_reaches_the_pod(node, web, version):
    server, _ = node
    port = free_port()
    proc = subprocess.Popen([kubectl_path(version), "--kubeconfig", server.kubeconfig,
                             "port-forward", f"pod/{web}", f"{port}:80"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return None
        assert wait_for(fetch, what="the page") == "hello from web\n"
        # A second connection through the same session.
        assert fetch() == "hello from web\n"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("version", VERSIONS)
def test_node_proxy_reaches_the_kubelet(node, logger, version):
    server, core = node
    name = core.list_node().items[0].metadata.name
    out = kubectl(server, version, "get", "--raw", f"/api/v1/nodes/{name}/proxy/healthz")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    out = kubectl(server, version, "get", "--raw", f"/api/v1/nodes/{name}/proxy/pods")
    assert out.returncode == 0, out.stderr
    pods = json.loads(out.stdout)
    assert pods["kind"] == "PodList"
    assert "logger" in [p["metadata"]["name"] for p in pods["items"]]


def test_run_executes_a_command_and_answers_with_its_output(node, logger):
    """`/run` (POST, `cmd` split on spaces): stdout then stderr, or a 500 naming the exit code."""
    server, core = node
    name = core.list_node().items[0].metadata.name
    tls = server.tls_dir

    def run(cmd):
        out = subprocess.run(
            ["curl", "-sS", "--cacert", server.ca_path, "-X", "POST",
             "--cert", os.path.join(tls, "client-admin.crt"), "--key", os.path.join(tls, "client-admin.key"),
             "-w", "\n%{http_code}", "--get", "--data-urlencode", f"cmd={cmd}",
             f"{server.url}/api/v1/nodes/{name}/proxy/run/default/logger/c"],
            capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        body, _, code = out.stdout.rpartition("\n")
        return int(code), body

    assert run("echo hello from run") == (200, "hello from run\n")
    assert run("sh -c exit") == (200, "")
    code, body = run("ls /nonexistent")
    assert code == 500 and body.startswith("command 'ls /nonexistent' exited with 1: ls: /nonexistent"), body
    code, body = run("true")
    assert code == 200
    code, body = run("")
    assert code == 400, body


def test_stats_summary_reports_node_and_container_usage(node, logger):
    server, core = node
    name = core.list_node().items[0].metadata.name

    def summary():
        out = kubectl(server, "1.33", "get", "--raw", f"/api/v1/nodes/{name}/proxy/stats/summary")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    s = summary()
    assert s["node"]["nodeName"] == name
    assert s["node"]["cpu"]["usageCoreNanoSeconds"] > 0
    assert s["node"]["memory"]["availableBytes"] > 0
    assert s["node"]["fs"]["capacityBytes"] > 0
    time.sleep(1)
    s = summary()
    assert "usageNanoCores" in s["node"]["cpu"]
    pod = next(p for p in s["pods"] if p["podRef"]["name"] == "logger")
    container = next(c for c in pod["containers"] if c["name"] == "c")
    assert container["memory"]["workingSetBytes"] > 0
    assert container["cpu"]["usageCoreNanoSeconds"] > 0
    assert "usageNanoCores" in container["cpu"]


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_needs_create_on_pods_exec(node, logger, version, tmp_path):
    server, _ = node
    user = f"limited-{version.replace('.', '')}"
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {user}, namespace: default}}
rules:
- {{apiGroups: [""], resources: [pods], verbs: [get]}}
- {{apiGroups: [""], resources: [pods/exec], verbs: [get]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {user}, namespace: default}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {user}}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
""")
    out = kubectl(server, version, "apply", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    out = kubectl(server, version, "--as", user, "exec", logger, "--", "true")
    assert out.returncode != 0
    assert "forbidden" in out.stderr.lower(), out.stderr
    out = kubectl(server, version, "patch", "role", user, "--type=json", "-p",
                  '[{"op": "add", "path": "/rules/1/verbs/-", "value": "create"}]')
    assert out.returncode == 0, out.stderr

    def allowed():
        out = kubectl(server, version, "--as", user, "exec", logger, "--", "echo", "yes")
        return out.stdout == "yes\n"
    wait_for(allowed, timeout=15, what="exec allowed with create")


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_to_a_closed_port_reports_the_error(node, web, version):
    server, _ = node
    port = free_port()
    proc = subprocess.Popen([kubectl_path(version), "--kubeconfig", server.kubeconfig,
                             "port-forward", f"pod/{web}", f"{port}:81"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def connected():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    s.settimeout(5)
                    return s.recv(100) == b""
            except OSError:
                return None
        assert wait_for(connected, what="the forwarded connection to close")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"error forwarding port 81 to pod {web}" in err, err
