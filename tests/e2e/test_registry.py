"""Registry pulls: a local registry (Debian's `docker-registry`, basic auth
from an htpasswd file) on 127.0.0.1 inside the test's network namespace holds
busybox, pushed there with skopeo. Pods pull it with an imagePullSecret and
fail clearly without one; `kite ctr images pull` follows registries.yaml
mirrors, rewrites and credentials."""

import base64
import json
import os
import shutil
import socket
import subprocess
import time

import pytest
from kubernetes import client

from conftest import KITE_BIN, in_own_netns
from test_kubelet import events_for, node, status_of, wait_for  # noqa: F401 (node is a fixture)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD_IMAGE = os.path.join(ROOT, "airgap/build-busybox-image.sh")
PORT = 5000
IMAGE = f"127.0.0.1:{PORT}/private/busybox:1.0"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("skopeo")
                            and shutil.which("htpasswd")),
                       reason="needs docker-registry, skopeo and htpasswd (tests/run.sh installs them)"),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry with basic auth (kite / s3cret) holding private/busybox:1.0."""
    if not in_own_netns():
        pytest.fail("refusing to start a registry in the machine's network namespace; use tests/run.sh")
    work = tmp_path_factory.mktemp("registry")
    htpasswd = subprocess.run(["htpasswd", "-Bbn", "kite", "s3cret"], capture_output=True,
                              text=True, check=True).stdout
    (work / "htpasswd").write_text(htpasswd)
    (work / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work}/data\n"
        f"http:\n  addr: 127.0.0.1:{PORT}\n"
        f"auth:\n  htpasswd:\n    realm: kite-test\n    path: {work}/htpasswd\n")
    log = open(work / "registry.log", "w")
    proc = subprocess.Popen(["docker-registry", "serve", str(work / "config.yml")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _listening(PORT), timeout=20, what="registry listening")
        tarball = str(work / "busybox.tar")
        r = subprocess.run([BUILD_IMAGE, tarball], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["skopeo", "copy", "--dest-creds", "kite:s3cret", "--dest-tls-verify=false",
                            f"docker-archive:{tarball}", f"docker://{IMAGE}"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        yield work
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pod(name, image, secrets=()):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "imagePullSecrets": [{"name": s} for s in secrets],
                     "containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}]}}


def test_a_pod_without_credentials_backs_off_with_the_registry_refusal(node, registry):
    _, core = node
    core.create_namespaced_pod("default", _pod("nocreds", IMAGE))
    first = wait_for(lambda: (s := status_of(core, "nocreds")[1]) and s.state.waiting
                     and s.state.waiting.reason == "ErrImagePull" and s.state.waiting, what="ErrImagePull")
    assert first.message.startswith(f'failed to pull and unpack image "{IMAGE}"'), first.message
    assert "no basic auth credentials" in first.message
    backoff = wait_for(lambda: (s := status_of(core, "nocreds")[1]) and s.state.waiting
                       and s.state.waiting.reason == "ImagePullBackOff" and s.state.waiting,
                       timeout=30, what="ImagePullBackOff")
    assert backoff.message.startswith(f'Back-off pulling image "{IMAGE}": ErrImagePull: ')
    events = events_for(core, "nocreds")
    assert ("Pulling", f'Pulling image "{IMAGE}"') in events
    assert ("Failed", "Error: ErrImagePull") in events
    assert any(r == "Failed" and m.startswith(f'Failed to pull image "{IMAGE}": ') for r, m in events)
    core.delete_namespaced_pod("nocreds", "default", grace_period_seconds=0)


def test_a_pod_pulls_with_its_image_pull_secret(node, registry):
    server, core = node
    auth = base64.b64encode(b"kite:s3cret").decode()
    config = {"auths": {f"127.0.0.1:{PORT}": {"username": "kite", "password": "s3cret", "auth": auth}}}
    core.create_namespaced_secret("default", {
        "metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}})
    core.create_namespaced_pod("default", _pod("pulled", IMAGE, secrets=["regcred"]))
    cs = wait_for(lambda: (s := status_of(core, "pulled")[1]) and s.state.running and s,
                  timeout=60, what="pulled pod running")
    assert cs.image_id.startswith(f"127.0.0.1:{PORT}/private/busybox@sha256:"), cs.image_id
    events = events_for(core, "pulled")
    assert any(r == "Pulled" and m.startswith(f'Successfully pulled image "{IMAGE}" in ')
               and "Image size: " in m for r, m in events), events
    out = subprocess.run([KITE_BIN, "ctr", "--data-dir", server.data_dir, "images", "ls", "-q"],
                         capture_output=True, text=True, timeout=30)
    assert IMAGE in out.stdout.split()
    core.delete_namespaced_pod("pulled", "default", grace_period_seconds=0)


def test_ctr_pull_follows_mirrors_rewrites_and_configured_credentials(registry, tmp_path):
    data = str(tmp_path / "data")
    registries = tmp_path / "registries.yaml"
    registries.write_text(
        "mirrors:\n  docker.io:\n"
        f"    endpoint: [\"http://127.0.0.1:{PORT}\"]\n"
        "    rewrite:\n      \"^library/(.*)\": \"private/$1\"\n"
        f"configs:\n  \"127.0.0.1:{PORT}\":\n    auth: {{username: kite, password: s3cret}}\n")
    r = subprocess.run([KITE_BIN, "ctr", "-d", data, "images", "pull", "--private-registry",
                        str(registries), "busybox:1.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = subprocess.run([KITE_BIN, "ctr", "-d", data, "images", "ls", "-q"],
                            capture_output=True, text=True, timeout=30).stdout.split()
    assert "docker.io/library/busybox:1.0" in listed
    # The same image by a wrong password: refused, nothing stored, a clear message.
    r = subprocess.run([KITE_BIN, "ctr", "-d", str(tmp_path / "other"), "images", "pull",
                        "--private-registry", "/nonexistent", "--user", "kite:wrong", IMAGE],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "401 Unauthorized" in r.stderr and r.stderr.startswith("error: failed to pull and unpack image")
    empty = subprocess.run([KITE_BIN, "ctr", "-d", str(tmp_path / "other"), "images", "ls", "-q"],
                           capture_output=True, text=True, timeout=30).stdout.split()
    assert empty == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("mirrors:\n  docker.io:\n    endpoints: []\n")
    r = subprocess.run([KITE_BIN, "ctr", "-d", data, "images", "pull", "--private-registry",
                        str(bad), "busybox:1.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "endpoints" in r.stderr, r.stderr
