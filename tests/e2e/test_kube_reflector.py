"""A Rust `kube` reflector (tests/e2e/kube-client) stays right when its resourceVersion expires.

The reflector watches ConfigMaps through kite on port 6443. kite is stopped, started
on another port where ConfigMaps change, stopped again and started on 6443. The
restarted watch cache begins after those changes, so the reflector's watch from its
old resourceVersion is answered 410 Gone (Expired), exactly what a client sees after
etcd compaction; the reflector must relist and end up with the new set of objects.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import KITE_BIN, KiteServer

CLIENT_BIN = os.environ.get("KITE_E2E_KUBE_BIN", os.path.join(os.path.dirname(KITE_BIN), "kite-e2e-kube"))


def lines_of(proc):
    """A queue receiving the client's JSON lines as they come."""
    q = queue.Queue()

    def pump():
        for line in proc.stdout:
            try:
                q.put(json.loads(line))
            except ValueError:
                pass

    threading.Thread(target=pump, daemon=True).start()
    return q


def ours(line):
    """The test's ConfigMaps among the reflector's (controllers add kube-root-ca.crt)."""
    return [n for n in line["names"] if n.startswith("cm-")]


def wait_line(q, predicate, timeout, seen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if predicate(line):
            return line
    raise AssertionError(f"no matching line in {timeout}s; saw {seen[-10:]}")


@pytest.mark.skipif(not os.path.exists(CLIENT_BIN), reason="kite-e2e-kube is not built")
def test_reflector_relists_after_its_resource_version_expires(tmp_path):
    workdir = str(tmp_path)
    server = KiteServer(workdir)
    server.start()
    client = None
    try:
        server.kubectl("create", "namespace", "reflect")
        for i in range(3):
            server.kubectl("create", "configmap", f"cm-{i}", "-n", "reflect", "--from-literal=i=" + str(i))
        client_config = os.path.join(workdir, "client.yaml")
        shutil.copy(server.kubeconfig, client_config)
        client = subprocess.Popen([CLIENT_BIN, "reflect", "reflect"], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, KUBECONFIG=client_config))
        q, seen = lines_of(client), []
        wait_line(q, lambda l: l["event"] == "InitDone" and ours(l) == ["cm-0", "cm-1", "cm-2"], 20, seen)

        # Changes the reflector cannot watch: kite serves another port meanwhile.
        server.stop()
        elsewhere = KiteServer(workdir, port=6444)
        elsewhere.start()
        elsewhere.kubectl("delete", "configmap", "cm-0", "-n", "reflect")
        elsewhere.kubectl("create", "configmap", "cm-3", "-n", "reflect", "--from-literal=i=3")
        elsewhere.stop()

        seen.clear()
        server = KiteServer(workdir)
        server.start()
        wait_line(q, lambda l: l["event"] == "InitDone" and ours(l) == ["cm-1", "cm-2", "cm-3"], 60, seen)
        assert any(l["event"] == "Init" for l in seen), seen
        assert any(l["event"] == "Error" and "410" in (l["error"] or "") or
                   l["event"] == "Error" and "too old" in (l["error"] or "") for l in seen), seen

        # And it follows live changes again.
        server.kubectl("create", "configmap", "cm-4", "-n", "reflect", "--from-literal=i=4")
        wait_line(q, lambda l: ours(l) == ["cm-1", "cm-2", "cm-3", "cm-4"], 20, seen)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        server.stop(signal.SIGKILL if server.proc and server.proc.poll() is None else signal.SIGTERM)
