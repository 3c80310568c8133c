#!/usr/bin/env python3
"""Service proxy benchmark: how long an EndpointSlice change takes to be live
in the kernel with 1,000 and 10,000 Services, and how long a restarted kite
takes to rebuild the whole table.

"Live" is measured the way a client sees it, not from kite's logs: the probe
Service's only endpoint is a listener on the node address answering "A"; the
benchmark moves the endpoint to a second listener answering "B" and connects
to the ClusterIP in a tight loop until "B" answers. Every other Service has
one (unreachable) endpoint of its own, so the table holds a chain per Service
and one per endpoint, as in a real cluster.

Run through tests/bench/proxy.sh, which builds kite and runs this inside a
network namespace of its own.
"""

import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../e2e"))
from conftest import KiteServer, restore_cgroup_mounts, add_uplink, remove_uplink  # noqa: E402
from kubernetes import client, config  # noqa: E402

SIZES = [int(n) for n in os.environ.get("SERVICES", "1000,10000").split(",")]
CHANGES = int(os.environ.get("CHANGES", "20"))
NODE_IP = "192.0.2.10"
UPLINK = "kite-bench0"
PORT_A, PORT_B = 18081, 18082


def listener(port, answer):
    """A TCP server on the node address that writes `answer` and closes."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((NODE_IP, port))
    sock.listen(512)

    def serve():
        while True:
            conn, _ = sock.accept()
            try:
                conn.sendall(answer)
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()


def answer_of(cluster_ip):
    try:
        with socket.create_connection((cluster_ip, 80), timeout=0.2) as s:
            return s.recv(1)
    except OSError:
        return None


def service(name):
    """A Service without a selector: the benchmark writes its EndpointSlice."""
    return {"metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def slice_body(name, address, port):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def create_services(core, discovery, first, last):
    """Creates Services bench-FIRST..LAST-1, each with one endpoint, in parallel."""
    def one(i):
        name = f"bench-{i}"
        # The answers are not decoded into models: that, not kite, would be the
        # bottleneck at 10,000 Services.
        core.create_namespaced_service("default", service(name), _preload_content=False)
        # 10.99.x.y: a pod address nobody answers for; only the rule count matters.
        discovery.create_namespaced_endpoint_slice(
            "default", slice_body(name, f"10.99.{i // 250}.{i % 250 + 1}", 8080),
            _preload_content=False)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(first, last)))


def wait_until(predicate, timeout, interval=0.0005):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError("timed out")


def map_size():
    out = subprocess.run(["nft", "list", "map", "ip", "kite-proxy", "service-ips"],
                         capture_output=True, text=True).stdout
    return out.count(" : goto ")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    restore_cgroup_mounts()
    workdir = tempfile.mkdtemp(prefix="kite-bench-proxy-")
    server = KiteServer(workdir)
    server.agent = True
    rows = []
    try:
        add_uplink(NODE_IP, UPLINK)
        listener(PORT_A, b"A")
        listener(PORT_B, b"B")
        extra = ["--node-ip", NODE_IP, "--disable", "coredns", "--disable", "servicelb"]
        server.start(extra=extra)
        api = config.new_client_from_config(config_file=server.kubeconfig)
        api.configuration.connection_pool_maxsize = 32
        core = client.CoreV1Api(api)
        discovery = client.DiscoveryV1Api(api)
        core.create_namespaced_service("default", service("probe"))
        discovery.create_namespaced_endpoint_slice("default", slice_body("probe", NODE_IP, PORT_A))
        probe_ip = core.read_namespaced_service("probe", "default").spec.cluster_ip
        wait_until(lambda: answer_of(probe_ip) == b"A", 30)
        created = 0
        for size in SIZES:
            started = time.monotonic()
            create_services(core, discovery, created, size - 1)
            created = size - 1
            # The kubernetes Service, the probe and the bench Services.
            wait_until(lambda: map_size() >= size + 1, 600, interval=0.1)
            setup = time.monotonic() - started
            latencies = []
            port = PORT_A
            for _ in range(CHANGES):
                port = PORT_B if port == PORT_A else PORT_A
                want = b"B" if port == PORT_B else b"A"
                body = slice_body("probe", NODE_IP, port)
                started = time.monotonic()
                discovery.replace_namespaced_endpoint_slice("probe", "default", body)
                latencies.append(wait_until(lambda: answer_of(probe_ip) == want, 30))
            # A restart rewrites the whole table from the informers' first lists.
            server.stop()
            subprocess.run(["nft", "delete", "table", "ip", "kite-proxy"], capture_output=True)
            started = time.monotonic()
            server.start(extra=extra)
            want = b"B" if port == PORT_B else b"A"
            wait_until(lambda: answer_of(probe_ip) == want, 600)
            rebuild = time.monotonic() - started
            rows.append((size, statistics.median(latencies) * 1e3, percentile(latencies, 99) * 1e3,
                         rebuild, setup))
    finally:
        server.stop()
        remove_uplink(UPLINK)
    print(f"\nservice proxy, {CHANGES} one-endpoint changes per size "
          f"({os.path.basename(os.path.dirname(os.environ.get('KITE_BIN', 'debug/kite')))} build)")
    print(f"{'services':>9} {'change p50 ms':>14} {'change p99 ms':>14} "
          f"{'restart→live s':>15} {'create all s':>13}")
    for size, p50, p99, rebuild, setup in rows:
        print(f"{size:>9} {p50:>14.1f} {p99:>14.1f} {rebuild:>15.2f} {setup:>13.1f}")


if __name__ == "__main__":
    main()
