"""A Rust `kube` reflector (tests/e2e/kube-client) stays right when its resourceVersion expires.

Two ways to expire it: the store's compaction (the reflector's connection is cut while
changes are made and compacted away, so its re-watch is answered 410), and a restart.

The reflector watches ConfigMaps through kite on port 6443. kite is stopped, started
on another port where ConfigMaps change, stopped again and started on 6443. The
restarted watch cache begins after those changes, so the reflector's watch from its
old resourceVersion is answered 410 Gone (Expired), exactly what a client sees after
etcd compaction; the reflector must relist and end up with the new set of objects.
"""

import json
import socket
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


class CuttableProxy:
    """A TCP relay on 127.0.0.1 to the API server whose connections the test can cut.

    While cut, it closes every connection it has and every new one at once, as a
    network partition would, so the client's watch ends and it retries."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.lock = threading.Lock()
        self.open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.cut_off.set()
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.open = []

    def mend(self):
        self.cut_off.clear()

    def close(self):
        self.cut()
        self.listener.close()


def watch_from(server, namespace, resource_version):
    """The first line of a watch of the namespace's ConfigMaps from `resource_version`."""
    tls = os.path.join(server.data_dir, "server", "tls")
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "2", "--cacert", server.ca_path,
         "--cert", os.path.join(tls, "client-admin.crt"), "--key", os.path.join(tls, "client-admin.key"),
         f"{server.url}/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={resource_version}"],
        capture_output=True, text=True, timeout=10,
    )
    return out.stdout.splitlines()[0] if out.stdout else ""


@pytest.mark.skipif(not os.path.exists(CLIENT_BIN), reason="kite-e2e-kube is not built")
def test_reflector_relists_after_a_store_compaction(tmp_path):
    workdir = str(tmp_path)
    server = KiteServer(workdir)
    # Compact every second down to the newest revision: anything not watched live expires.
    server.start(extra=["--datastore-compaction-interval=1s", "--datastore-compaction-retain=0"])
    proxy = CuttableProxy(server.port)
    client = None
    try:
        server.kubectl("create", "namespace", "compact")
        for i in range(3):
            server.kubectl("create", "configmap", f"cm-{i}", "-n", "compact", "--from-literal=i=" + str(i))
        client_config = os.path.join(workdir, "client.yaml")
        with open(server.kubeconfig) as f:
            text = f.read()
        with open(client_config, "w") as f:
            f.write(text.replace(server.url, f"https://127.0.0.1:{proxy.port}"))
        client = subprocess.Popen([CLIENT_BIN, "reflect", "compact"], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, KUBECONFIG=client_config))
        q, seen = lines_of(client), []
        wait_line(q, lambda l: l["event"] == "InitDone" and ours(l) == ["cm-0", "cm-1", "cm-2"], 20, seen)

        proxy.cut()
        server.kubectl("delete", "configmap", "cm-0", "-n", "compact")
        created = server.kubectl("create", "configmap", "cm-3", "-n", "compact", "--from-literal=i=3",
                                 "-o", "jsonpath={.metadata.resourceVersion}").stdout.strip()
        # Until compaction passes the changes, a watch from before them still replays them.
        before_last = int(created) - 1
        deadline = time.monotonic() + 20
        while '"code":410' not in watch_from(server, "compact", before_last):
            assert time.monotonic() < deadline, "the store never compacted"
            time.sleep(0.5)
        first = json.loads(watch_from(server, "compact", before_last))
        assert first["type"] == "ERROR" and first["object"]["reason"] == "Expired", first

        seen.clear()
        proxy.mend()
        wait_line(q, lambda l: l["event"] == "InitDone" and ours(l) == ["cm-1", "cm-2", "cm-3"], 60, seen)
        assert any(l["event"] == "Error" and ("410" in (l["error"] or "") or "too old" in (l["error"] or ""))
                   for l in seen), seen
        server.kubectl("create", "configmap", "cm-4", "-n", "compact", "--from-literal=i=4")
        wait_line(q, lambda l: ours(l) == ["cm-1", "cm-2", "cm-3", "cm-4"], 20, seen)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        proxy.close()
        server.stop()


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
