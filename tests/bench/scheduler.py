#!/usr/bin/env python3
"""Scheduler throughput: pods bound per second with N fake nodes and P pending
pods; then a Deployment of REPLICAS pods on fake nodes, create → all bound.

For each node count, a fresh `kite server` starts; the benchmark takes the
`kube-scheduler` Lease away from it (so its scheduler stops, as it would on
losing leadership), creates N Ready fake Nodes and P pods, then releases the
Lease. The scheduler re-acquires it, lists everything and binds. Reported: time
from release to the last bind, and pods/s over the span from first to last bind.

Run through tests/bench/scheduler.sh (a network namespace of its own).
"""

import concurrent.futures
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from kubernetes import client, config

KITE = os.environ.get("KITE_BIN", "target/release/kite")
PODS = int(os.environ.get("PODS", "10000"))
NODE_COUNTS = [int(n) for n in os.environ.get("NODES", "100,1000").split(",")]
PORT = 6443
REPLICAS = int(os.environ.get("REPLICAS", "1000"))
DEPLOYMENT_NODES = int(os.environ.get("DEPLOYMENT_NODES", "100"))


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def start(workdir):
    open(os.path.join(workdir, "empty.yaml"), "w").close()
    log = open(os.path.join(workdir, "kite.log"), "wb")
    proc = subprocess.Popen([KITE, "server", "--data-dir", os.path.join(workdir, "data"),
                             "--write-kubeconfig", os.path.join(workdir, "kite.yaml"),
                             "--https-listen-port", str(PORT),
                             "--config", os.path.join(workdir, "empty.yaml")],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(workdir, "kite.yaml")):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("kite did not start")
        time.sleep(0.05)
    return proc


def client_for(workdir):
    cfg = client.Configuration()
    config.load_kube_config(os.path.join(workdir, "kite.yaml"), client_configuration=cfg)
    cfg.connection_pool_maxsize = 32
    return client.ApiClient(cfg)


def wait_api(api):
    deadline = time.monotonic() + 30
    while True:
        try:
            client.CoreV1Api(api).list_namespace()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def take_lease(coord):
    """Makes the lease ours (a holder that renews) so kite's scheduler stands down."""
    def hold():
        lease = coord.read_namespaced_lease("kube-scheduler", "kube-system")
        lease.spec.holder_identity = "benchmark"
        lease.spec.renew_time = now()
        coord.replace_namespaced_lease("kube-scheduler", "kube-system", lease)

    deadline = time.monotonic() + 20
    while True:
        try:
            hold()
            return hold
        except client.rest.ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def watch_binds(core, rv, count):
    """When each of `count` pods was first seen bound, from a pod watch read
    as raw JSON lines: decoding whole V1Pod models in Python is slower than
    kite binds, and the benchmark would measure the client instead."""
    seen = set()
    bound_at = []
    resp = core.list_namespaced_pod("default", watch=True, resource_version=rv, timeout_seconds=600,
                                    allow_watch_bookmarks=False, _preload_content=False)
    buffer = b""
    for chunk in resp.stream(65536):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line:
                continue
            obj = json.loads(line)["object"]
            name = obj["metadata"]["name"]
            if obj.get("spec", {}).get("nodeName") and name not in seen:
                seen.add(name)
                bound_at.append(time.monotonic())
        if len(seen) >= count:
            resp.release_conn()
            break
    return bound_at


def make_nodes(core, count):
    def node(i):
        name = f"bench-{i:04d}"
        core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
        core.patch_node_status(name, {"status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]}})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(node, range(count)))


def run_deployment(node_count, replicas):
    """A Deployment of `replicas` on `node_count` fake nodes: create → all bound."""
    workdir = tempfile.mkdtemp(prefix="kite-bench-deploy-")
    proc = start(workdir)
    try:
        api = client_for(workdir)
        wait_api(api)
        core = client.CoreV1Api(api)
        make_nodes(core, node_count)
        rv = core.list_namespaced_pod("default", limit=1).metadata.resource_version
        started = time.monotonic()
        client.AppsV1Api(api).create_namespaced_deployment("default", {
            "metadata": {"name": "big"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "big"}},
                     "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [
                         {"name": "c", "image": "busybox",
                          "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}}}})
        bound_at = watch_binds(core, rv, replicas)
        return {"nodes": node_count, "replicas": len(bound_at), "took": bound_at[-1] - started,
                "rss": rss_mib(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def run(node_count):
    workdir = tempfile.mkdtemp(prefix="kite-bench-sched-")
    proc = start(workdir)
    try:
        api = client_for(workdir)
        wait_api(api)
        core = client.CoreV1Api(api)
        coord = client.CoordinationV1Api(api)
        renew = take_lease(coord)
        stop = threading.Event()

        def keep():
            while not stop.wait(2):
                renew()

        keeper = threading.Thread(target=keep, daemon=True)
        keeper.start()
        # Longer than the renew deadline: kite's scheduler has now stopped.
        time.sleep(11)

        def pod(i):
            core.create_namespaced_pod("default", {"metadata": {"name": f"p-{i:05d}"}, "spec": {
                "containers": [{"name": "c", "image": "busybox",
                                "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}})

        make_nodes(core, node_count)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(pod, range(PODS)))

        rv = core.list_namespaced_pod("default", limit=1).metadata.resource_version
        stop.set()
        keeper.join()
        released = time.monotonic()
        coord.delete_namespaced_lease("kube-scheduler", "kube-system")
        bound_at = watch_binds(core, rv, PODS)
        seen = bound_at
        rss = rss_mib(proc.pid)
        span = bound_at[-1] - bound_at[0]
        return {
            "nodes": node_count,
            "pods": len(seen),
            "release_to_last": bound_at[-1] - released,
            "rate": (len(seen) - 1) / span if span > 0 else float("inf"),
            "rss": rss,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    rows = [run(n) for n in NODE_COUNTS]
    print("| nodes | pods bound | lease release → last bind | pods bound/s (first→last bind) | RSS after |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['nodes']} | {r['pods']} | {r['release_to_last']:.1f} s | {r['rate']:.0f} | {r['rss']:.0f} MiB |")
    if REPLICAS:
        d = run_deployment(DEPLOYMENT_NODES, REPLICAS)
        print()
        print("| Deployment replicas | nodes | create → all bound | RSS after |")
        print("|---:|---:|---:|---:|")
        print(f"| {d['replicas']} | {d['nodes']} | {d['took']:.2f} s | {d['rss']:.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
