"""The node's container runtime: airgap image import and real containers.

Builds the busybox image with airgap/build-busybox-image.sh, imports it with
`kite ctr images import`, and runs containers with `kite ctr run` (namespaces,
overlayfs, cgroups). Needs root; tests/run.sh runs it inside a network
namespace, and every container gets a network namespace of its own on top.
"""

import hashlib
import io
import json
import os
import re
import tarfile
import shutil
import subprocess
import tempfile

import pytest

from conftest import KITE_BIN, in_own_netns, restore_cgroup_mounts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD_IMAGE = os.path.join(ROOT, "airgap/build-busybox-image.sh")
BUSYBOX = "docker.io/library/busybox:latest"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def ctr(data_dir, *args, timeout=60, input=None):
    return subprocess.run([KITE_BIN, "ctr", "--data-dir", data_dir, *args],
                          capture_output=True, text=True, timeout=timeout, input=input)


def own_cgroup_dirs():
    """Every cgroup directory below the hierarchies (to spot leftovers)."""
    found = set()
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            found.add(os.path.join(base, d))
    return found


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


@pytest.fixture(scope="module")
def image_tarballs():
    d = tempfile.mkdtemp(prefix="kite-images-")
    try:
        paths = {}
        for fmt in ("docker-archive", "oci"):
            out = os.path.join(d, f"busybox-{fmt}.tar")
            r = subprocess.run([BUILD_IMAGE, out, "--format", fmt], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            paths[fmt] = out
        yield paths
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def node(image_tarballs):
    """A data dir with busybox imported; afterwards no container, mount or cgroup of it is left."""
    if not in_own_netns():
        pytest.fail("refusing to run containers in the machine's network namespace; use tests/run.sh")
    restore_cgroup_mounts()
    d = tempfile.mkdtemp(prefix="kite-rt-")
    data = os.path.join(d, "data")
    cgroups_before = own_cgroup_dirs()
    try:
        r = ctr(data, "images", "import", image_tarballs["docker-archive"])
        assert r.returncode == 0, r.stderr
        yield data
    finally:
        ids = ctr(data, "containers", "ls", "-q").stdout.split()
        if ids:
            ctr(data, "containers", "rm", *ids)
        for m in reversed(mounts_under(d)):
            subprocess.run(["umount", "-l", m])
        shutil.rmtree(d, ignore_errors=True)
    leaked_mounts = mounts_under(d)
    assert leaked_mounts == [], leaked_mounts
    # kite's parent cgroup (<own cgroup>/kite, created in every hierarchy) stays, like
    # k3s's kubepods; nothing below it may.
    new = own_cgroup_dirs() - cgroups_before
    parents = [c for c in new if c.endswith("/kite")]
    leaked = [c for c in new if not any(p == c or p.startswith(c + "/") for p in parents)]
    assert leaked == [], leaked


def test_import_lists_busybox_like_ctr(node, image_tarballs):
    r = ctr(node, "images", "ls")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["REF", "TYPE", "DIGEST", "SIZE"]
    assert len(rows) == 1
    ref, media_type, digest, *size = rows[0].split()
    assert ref == BUSYBOX
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert size[1] == "MiB"
    # The OCI layout of the same image imports too, and keeps a single name.
    r = ctr(node, "images", "import", image_tarballs["oci"])
    assert r.returncode == 0, r.stderr
    assert f"unpacking {BUSYBOX}" in r.stdout
    assert ctr(node, "images", "ls", "-q").stdout.split() == [BUSYBOX]


def test_run_prints_output_and_exits_with_the_container_code(node):
    r = ctr(node, "run", "--rm", "busybox", "t1", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "hello\n"
    assert "oops" in r.stderr
    assert not os.path.exists(os.path.join(node, "agent/containers/t1"))


def test_the_container_is_isolated(node):
    script = "hostname; echo pid=$$; ls /sys/class/net | tr '\\n' ' '; echo; cat /etc/passwd | head -1; " \
             "touch /newfile && echo wrote"
    r = ctr(node, "run", "--rm", "--env", "GREETING=hi", "busybox", "iso-1", "sh", "-c",
            script + "; echo $GREETING; test -c /dev/null && test -d /dev/shm && test -f /proc/1/status && echo dev-ok")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "iso-1"              # UTS namespace, host name is the ID
    assert lines[1] == "pid=1"              # PID namespace
    assert lines[2].split() == ["lo"]       # network namespace with loopback only
    assert lines[3].startswith("root:x:0:0")
    assert lines[4] == "wrote"
    assert lines[5] == "hi"
    assert lines[6] == "dev-ok"
    # The write went to the container's upper layer, not the image's snapshot.
    snapshots = os.path.join(node, "agent/snapshots")
    for layer in os.listdir(snapshots):
        assert not os.path.exists(os.path.join(snapshots, layer, "newfile"))


def test_memory_and_pids_limits_are_in_the_container_cgroup(node):
    # Read the limits from the host side while the container runs.
    proc = subprocess.Popen([KITE_BIN, "ctr", "--data-dir", node, "run", "--rm", "--memory-limit", "32m",
                             "--pids-limit", "20", "busybox", "lim-1", "sleep", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = {}
        for _ in range(100):
            for base, dirs, files in os.walk("/sys/fs/cgroup"):
                if os.path.basename(base) == "lim-1":
                    for name in ("memory.limit_in_bytes", "memory.max", "pids.max"):
                        if name in files:
                            found[name] = open(os.path.join(base, name)).read().strip()
            if len(found) >= 2:
                break
            subprocess.run(["sleep", "0.1"])
        memory = found.get("memory.limit_in_bytes") or found.get("memory.max")
        assert memory == str(32 << 20), found
        assert found.get("pids.max") == "20", found
    finally:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_fork_bomb_stops_at_the_pids_limit(node):
    script = "for i in $(seq 30); do sleep 5 & done; echo survived"
    limited = ctr(node, "run", "--rm", "--pids-limit", "10", "busybox", "pids-1", "sh", "-c", script)
    assert limited.returncode != 0
    assert "can't fork" in limited.stderr, limited.stderr
    assert "survived" not in limited.stdout
    # The same script without the limit runs to the end.
    free = ctr(node, "run", "--rm", "busybox", "pids-2", "sh", "-c", script)
    assert free.returncode == 0, free.stderr
    assert free.stdout == "survived\n"


def test_containers_without_rm_stay_until_removed(node):
    r = ctr(node, "run", "busybox", "keep-1", "sh", "-c", "echo data > /kept")
    assert r.returncode == 0, r.stderr
    assert ctr(node, "containers", "ls", "-q").stdout.split() == ["keep-1"]
    assert ctr(node, "containers", "ls").stdout.splitlines()[1].split() == ["keep-1", "stopped", "-"]
    again = ctr(node, "run", "busybox", "keep-1", "true")
    assert again.returncode != 0 and "already exists" in again.stderr
    assert mounts_under(os.path.join(node, "agent/containers")) == []
    r = ctr(node, "containers", "rm", "keep-1")
    assert r.returncode == 0, r.stderr
    assert ctr(node, "containers", "ls", "-q").stdout.split() == []


def test_a_detached_container_outlives_the_command_until_removed(node):
    r = ctr(node, "run", "--detach", "busybox", "bg-1", "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bg-1"
    # `kite ctr` has exited; the container runs on, with its state under the data dir.
    _, row = ctr(node, "containers", "ls").stdout.splitlines()
    cid, status, pid = row.split()
    assert (cid, status) == ("bg-1", "running"), row
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"300"]
    assert os.path.exists(os.path.join(node, "agent/runtime/bg-1/state.json"))
    r = ctr(node, "containers", "rm", "bg-1")
    assert r.returncode == 0, r.stderr
    for _ in range(50):
        if not os.path.exists(f"/proc/{pid}"):
            break
        subprocess.run(["sleep", "0.1"])
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert ctr(node, "containers", "ls", "-q").stdout.split() == []


def test_bad_input_is_rejected_clearly(node, image_tarballs, tmp_path):
    r = ctr(node, "run", "--rm", "Not A Name", "x1", "true")
    assert r.returncode == 1 and "invalid image reference" in r.stderr
    r = ctr(node, "run", "--rm", "nosuch:image", "x2", "true")
    assert r.returncode == 1 and "not found" in r.stderr
    r = ctr(node, "run", "--rm", "busybox", "x3", "/no/such/program")
    assert r.returncode == 1 and "/no/such/program" in r.stderr, r.stderr
    assert os.listdir(os.path.join(node, "agent/runtime")) == []
    assert os.listdir(os.path.join(node, "agent/containers")) == []
    truncated = tmp_path / "truncated.tar"
    data = open(image_tarballs["oci"], "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    r = ctr(node, "images", "import", str(truncated))
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr
    assert os.listdir(os.path.join(node, "agent/content/ingest")) == []
    assert ctr(node, "images", "ls", "-q").stdout.split() == [BUSYBOX]


def layered_image(busybox_tarball, out):
    """busybox plus a layer that deletes /etc/group and replaces /var/www (a whiteout and an
    opaque directory), as a docker-archive named whiteout:test."""
    with tarfile.open(busybox_tarball) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        config = json.load(t.extractfile(manifest["Config"]))
        base = t.extractfile(manifest["Layers"][0]).read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in [("etc/.wh.group", b""), ("var/www/.wh..wh..opq", b""),
                           ("var/www/new.html", b"new\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    top = buf.getvalue()
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(top).hexdigest())
    config_bytes = json.dumps(config).encode()
    files = {
        "base/layer.tar": base,
        "top/layer.tar": top,
        "config.json": config_bytes,
        "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": ["whiteout:test"],
                                      "Layers": ["base/layer.tar", "top/layer.tar"]}]).encode(),
    }
    with tarfile.open(out, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_whiteouts_hide_files_of_lower_layers(node, image_tarballs, tmp_path):
    tarball = tmp_path / "layered.tar"
    layered_image(image_tarballs["docker-archive"], tarball)
    r = ctr(node, "images", "import", str(tarball))
    assert r.returncode == 0, r.stderr
    r = ctr(node, "run", "--rm", "whiteout:test", "wh-1", "sh", "-c",
            "test -e /etc/group && echo group-present; test -e /etc/passwd && echo passwd-present; ls /var/www")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["passwd-present", "new.html"]
    # The base layer is untouched: busybox still sees everything.
    r = ctr(node, "run", "--rm", "busybox", "wh-2", "sh", "-c", "ls /etc/group /var/www")
    assert r.returncode == 0, r.stderr
    assert "index.html" in r.stdout and "/etc/group" in r.stdout


def test_images_rm_removes_the_image_and_its_layers(node):
    r = ctr(node, "images", "rm", "busybox")
    assert r.returncode == 0, r.stderr
    assert ctr(node, "images", "ls", "-q").stdout.split() == []
    assert os.listdir(os.path.join(node, "agent/snapshots")) == []
