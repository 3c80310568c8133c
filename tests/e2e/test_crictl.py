"""`kite crictl`: the node's pods, containers and images with crictl's
columns, 13-character IDs and prefix matching, logs (tail, follow), exec
(exit codes, stdin) and inspect, read from the data dir. Also: `kite ctr
images rm` refuses an image a container uses."""

import json
import os
import re
import subprocess

import pytest

from conftest import KITE_BIN, node_agent
from test_kubelet import pod_spec, status_of, wait_for


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with node_agent(tmp_path_factory) as value:
        yield value


def crictl(server, *args, input=None, check=True):
    out = subprocess.run([KITE_BIN, "crictl", "--data-dir", server.data_dir, *args],
                         capture_output=True, text=True, timeout=60, input=input)
    if check:
        assert out.returncode == 0, f"crictl {' '.join(args)}: {out.stderr}"
    return out


def table(text):
    """Rows of a crictl table, cells split on runs of 2+ spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def running(node):
    """A running pod `cri` whose container wrote to stdout and stderr (a pause
    between: the two streams are read apart, so only time orders them); yields
    (server, core, pod, full container ID)."""
    server, core = node
    core.create_namespaced_pod("default", pod_spec(
        "cri", "echo one; echo two >&2; sleep 0.5; echo three; sleep 3600"))
    wait_for(lambda: (status_of(core, "cri")[1] or None) and status_of(core, "cri")[1].ready,
             timeout=60, what="pod cri ready")
    pod, cs = status_of(core, "cri")
    container = cs.container_id.removeprefix("kite://")
    wait_for(lambda: "three" in crictl(server, "logs", container).stdout, what="log written")
    yield server, core, pod, container


def test_ps_lists_running_containers_with_crictls_columns(running):
    server, _, pod, container = running
    rows = table(crictl(server, "ps").stdout)
    assert rows[0] == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]
    [row] = [r for r in rows[1:] if r[-1] == "cri"]
    assert row[0] == container[:13]
    assert re.fullmatch(r"[0-9a-f]{13}", row[1]), row
    assert row[2].endswith(" ago"), row
    assert row[3:6] == ["Running", "c", "0"]
    assert row[6] == pod.metadata.uid.replace("-", "")[:13]
    assert crictl(server, "ps", "-q").stdout.split() == [container]
    assert crictl(server, "ps", "--name", "^c$", "-q").stdout.split() == [container]
    assert crictl(server, "ps", "--name", "nomatch", "-q").stdout.split() == []
    assert crictl(server, "ps", "--pod", pod.metadata.uid[:8], "-q").stdout.split() == [container]


def test_ps_all_shows_exited_containers(running):
    server, core, _, _ = running
    core.create_namespaced_pod("default", pod_spec("done", "echo bye", restart="Never"))
    wait_for(lambda: core.read_namespaced_pod("done", "default").status.phase == "Succeeded",
             timeout=60, what="pod done Succeeded")
    assert "done" not in crictl(server, "ps").stdout
    rows = table(crictl(server, "ps", "-a").stdout)
    [row] = [r for r in rows[1:] if r[-1] == "done"]
    assert row[3] == "Exited"


def test_pods_and_images_are_listed(running):
    server, _, pod, _ = running
    rows = table(crictl(server, "pods").stdout)
    assert rows[0] == ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]
    [row] = [r for r in rows[1:] if r[3] == "cri"]
    pod_id = pod.metadata.uid.replace("-", "")
    assert row[0] == pod_id[:13]
    assert row[2:] == ["Ready", "cri", "default", "0", "(default)"]
    assert pod_id in crictl(server, "pods", "-q").stdout.split()
    assert crictl(server, "pods", "--name", "^cri$", "-q").stdout.split() == [pod_id]
    assert crictl(server, "pods", "--namespace", "kube-system", "--name", "^cri$", "-q").stdout == ""

    rows = table(crictl(server, "images").stdout)
    assert rows[0] == ["IMAGE", "TAG", "IMAGE ID", "SIZE"]
    [row] = [r for r in rows[1:] if r[0] == "docker.io/library/busybox"]
    assert row[1] == "latest"
    assert re.fullmatch(r"[0-9a-f]{13}", row[2])
    assert re.fullmatch(r"[0-9.]+[kMG]?B", row[3]), row
    ids = crictl(server, "images", "-q").stdout.split()
    assert any(i.startswith("sha256:" + row[2]) for i in ids), ids


def test_logs_split_streams_and_tail(running):
    server, _, _, container = running
    out = crictl(server, "logs", container[:6])
    assert out.stdout == "one\nthree\n"
    assert out.stderr == "two\n"
    assert crictl(server, "logs", "--tail", "1", container).stdout == "three\n"
    stamped = crictl(server, "logs", "-t", container).stdout.splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z one$", stamped), stamped


def test_logs_follow_ends_when_the_container_exits(running):
    server, core, _, _ = running
    core.create_namespaced_pod("default", pod_spec(
        "counter", "for i in 1 2 3; do echo $i; sleep 1; done", restart="Never"))
    cs = wait_for(lambda: status_of(core, "counter")[1] and status_of(core, "counter")[1].container_id,
                  timeout=60, what="counter started")
    out = crictl(server, "logs", "-f", cs.removeprefix("kite://"))
    assert out.stdout == "1\n2\n3\n"


def test_exec_runs_in_the_container_with_its_exit_code_and_stdin(running):
    server, _, _, container = running
    assert crictl(server, "exec", container[:8], "cat", "/etc/hostname").stdout == "cri\n"
    failed = crictl(server, "exec", container, "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    assert crictl(server, "exec", "-i", container, "cat", input="typed\n").stdout == "typed\n"
    # Without -i the command's standard input is empty.
    assert crictl(server, "exec", container, "cat", input="lost\n").stdout == ""


def test_exec_with_a_tty_gives_the_command_a_terminal(running):
    server, _, _, container = running
    # script(1) runs the command on a pseudo-terminal of its own, as a user's shell would.
    command = f"{KITE_BIN} crictl --data-dir {server.data_dir} exec -t {container[:13]} sh -c 'tty; exit 4'"
    out = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 4, (out.stdout, out.stderr)
    assert "/dev/pts/" in out.stdout, out.stdout
    # Without a terminal on standard input, -t is refused.
    refused = crictl(server, "exec", "-t", container, "true", check=False)
    assert refused.returncode == 1 and "--tty needs a terminal" in refused.stderr


def test_inspect_and_inspectp_print_json(running):
    server, _, pod, container = running
    info = json.loads(crictl(server, "inspect", container[:13]).stdout)
    status = info["status"]
    assert status["id"] == container
    assert status["state"] == "CONTAINER_RUNNING"
    assert status["metadata"] == {"attempt": 0, "name": "c"}
    assert status["labels"]["io.kubernetes.pod.name"] == "cri"
    assert status["imageRef"].startswith("docker.io/library/busybox@sha256:")
    assert status["logPath"].endswith("/c/0.log")
    assert info["info"]["pid"] > 0
    sandbox = json.loads(crictl(server, "inspectp", pod.metadata.uid[:13]).stdout)["status"]
    assert sandbox["state"] == "SANDBOX_READY"
    assert sandbox["metadata"]["uid"] == pod.metadata.uid
    assert sandbox["metadata"]["name"] == "cri"
    assert sandbox["linux"]["namespaces"]["options"]["network"] == "POD"


def test_unknown_and_ambiguous_ids_are_errors(running):
    server, _, _, _ = running
    out = crictl(server, "inspect", "zzzz", check=False)
    assert out.returncode == 1 and 'no container with ID "zzzz"' in out.stderr
    # Every ID is hex: a one-digit prefix shared by two containers is ambiguous.
    ids = crictl(server, "ps", "-a", "-q").stdout.split()
    shared = next((d for d in "0123456789abcdef" if sum(i.startswith(d) for i in ids) > 1), None)
    if shared is not None:
        out = crictl(server, "logs", shared, check=False)
        assert out.returncode == 1 and "is ambiguous" in out.stderr, out.stderr


def test_help_reads_like_a_man_page(node):
    out = subprocess.run([KITE_BIN, "crictl", "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for sub in ("ps", "pods", "images", "logs", "exec", "inspect", "inspectp"):
        assert re.search(rf"^\s+{sub}\s", out.stdout, re.M), out.stdout
    ps = subprocess.run([KITE_BIN, "crictl", "ps", "--help"], capture_output=True, text=True, timeout=10)
    assert "--all" in ps.stdout and "--quiet" in ps.stdout and "CONTAINER, IMAGE" in ps.stdout


def test_ctr_refuses_to_remove_an_image_in_use(running):
    server, _, _, container = running
    out = subprocess.run([KITE_BIN, "ctr", "--data-dir", server.data_dir, "images", "rm", "busybox"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "cannot remove image docker.io/library/busybox:latest: it is in use by container" in out.stderr
    assert container in out.stderr
    assert "docker.io/library/busybox:latest" in subprocess.run(
        [KITE_BIN, "ctr", "--data-dir", server.data_dir, "images", "ls", "-q"],
        capture_output=True, text=True, timeout=30).stdout
