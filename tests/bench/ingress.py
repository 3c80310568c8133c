#!/usr/bin/env python3
"""Ingress benchmark: wrk through kite's Ingress controller and through nginx
(as a reverse proxy with upstream keep-alive, an nginx instance of its own)
to the same backend, a static nginx on the node address serving a small file.

The backend is reached through a Service without a selector and an
EndpointSlice naming the node address, so kite routes to it as to a pod.
Both proxies get the same wrk runs (keep-alive connections, plain HTTP).

Run through tests/bench/ingress.sh, which builds kite and runs this inside a
network namespace of its own. Settings: DURATION (s, default 10),
CONNECTIONS (default "1,32"), THREADS (wrk threads, default 2), ROUNDS
(measured runs per proxy, alternating order; default 3).
"""

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../e2e"))
from conftest import KiteServer, restore_cgroup_mounts, add_uplink, remove_uplink  # noqa: E402
from kubernetes import client, config  # noqa: E402

NODE_IP = "192.0.2.10"
UPLINK = "kite-bench0"
BACKEND_PORT, NGINX_PORT = 18080, 18081
HOST = "bench.example"
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = [int(n) for n in os.environ.get("CONNECTIONS", "1,32").split(",")]
THREADS = int(os.environ.get("THREADS", "2"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))

# The backend and nginx-as-proxy are separate nginx instances, as an
# ingress and its pods are separate programs: one instance doing both would
# let a worker answer its own upstream request without waking anything.
NGINX_COMMON = """
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    {server}
}}
"""
BACKEND_SERVER = """
    server {{
        listen {ip}:{backend};
        root {dir}/www;
        keepalive_requests 1000000;
    }}
"""
PROXY_SERVER = """
    upstream backend {{ server {ip}:{backend}; keepalive 64; }}
    server {{
        listen {ip}:{proxy};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
"""


def start_nginx(directory, server):
    """An nginx instance in `directory` serving `server` (a server block template)."""
    os.makedirs(os.path.join(directory, "www"), mode=0o755)
    with open(os.path.join(directory, "www", "index.html"), "w") as f:
        f.write("hello from the benchmark backend\n")
    conf = os.path.join(directory, "nginx.conf")
    values = dict(dir=directory, ip=NODE_IP, backend=BACKEND_PORT, proxy=NGINX_PORT)
    with open(conf, "w") as f:
        f.write(NGINX_COMMON.format(server=server.format(**values), **values))
    # In the foreground so this is the master's PID, stopped by that PID.
    return subprocess.Popen(["nginx", "-p", directory, "-c", conf, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_nginx(nginx):
    nginx.send_signal(signal.SIGQUIT)
    try:
        nginx.wait(10)
    except subprocess.TimeoutExpired:
        nginx.kill()
        nginx.wait()


def wait_ok(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"Host": HOST})
            with urllib.request.urlopen(request, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never answered 200")


def wrk(url, connections):
    out = subprocess.run(["wrk", "-t", str(min(THREADS, connections)), "-c", str(connections),
                          "-d", f"{DURATION}s", "--latency", "-H", f"Host: {HOST}", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def main():
    restore_cgroup_mounts()
    workdir = tempfile.mkdtemp(prefix="kite-bench-ingress-")
    server = KiteServer(workdir)
    server.agent = True
    nginxes, nginx_dirs = [], []
    rows = []
    try:
        add_uplink(NODE_IP, UPLINK)
        for server_block in (BACKEND_SERVER, PROXY_SERVER):
            # nginx's workers run unprivileged: their files live apart, readable.
            nginx_dir = tempfile.mkdtemp(prefix="kite-bench-nginx-")
            os.chmod(nginx_dir, 0o755)
            nginx_dirs.append(nginx_dir)
            nginxes.append(start_nginx(nginx_dir, server_block))
        server.start(extra=["--node-ip", NODE_IP, "--disable", "coredns", "--disable", "servicelb"])
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        core.create_namespaced_service("default", {"metadata": {"name": "static"},
                                                   "spec": {"ports": [{"name": "http", "port": 80}]}})
        client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
            "metadata": {"name": "static-1", "labels": {"kubernetes.io/service-name": "static"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        })
        client.NetworkingV1Api(api).create_namespaced_ingress("default", {
            "metadata": {"name": "static"},
            "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "static", "port": {"number": 80}}}}]}}]}})
        targets = [("direct", f"http://{NODE_IP}:{BACKEND_PORT}/"),
                   ("nginx", f"http://{NODE_IP}:{NGINX_PORT}/"),
                   ("kite", f"http://{NODE_IP}/")]
        for _, url in targets:
            wait_ok(url)
        for connections in CONNECTIONS:
            for _, url in targets:
                wrk(url, connections)  # warm-up: pools filled, caches hot
            # Rounds alternate the order, so neither proxy always runs
            # first; on a small, shared machine single runs vary by 10 %.
            samples = {name: [] for name, _ in targets}
            for round_ in range(ROUNDS):
                for name, url in (targets if round_ % 2 == 0 else targets[::-1]):
                    samples[name].append(wrk(url, connections))
            for name, _ in targets:
                runs = samples[name]
                rows.append((name, connections, statistics.median(r[0] for r in runs),
                             min(r[0] for r in runs), max(r[0] for r in runs),
                             statistics.median(r[1] for r in runs), sum(r[2] for r in runs)))
    finally:
        server.stop()
        for nginx in nginxes:
            stop_nginx(nginx)
        remove_uplink(UPLINK)
        for nginx_dir in nginx_dirs:
            shutil.rmtree(nginx_dir, ignore_errors=True)
        # No pods ran, so nothing is mounted under the data dir.
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ningress: wrk -t{THREADS} -d{DURATION}s, keep-alive, GET / (33 bytes), "
          f"median of {ROUNDS} rounds (kite {os.environ.get('KITE_BIN', 'kite')})")
    print(f"{'through':>8} {'conns':>6} {'req/s':>10} {'min':>8} {'max':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, connections, rps, low, high, p99, errors in rows:
        print(f"{name:>8} {connections:>6} {rps:>10.0f} {low:>8.0f} {high:>8.0f} {p99:>8.2f} {errors:>8}")


if __name__ == "__main__":
    main()
