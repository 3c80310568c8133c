#!/usr/bin/env python3
"""Scheduler throughput: pods bound per second with N fake nodes and P pending pods.

For each node count, a fresh `kite server` starts; the benchmark takes the
`kube-scheduler` Lease away from it (so its scheduler stops, as it would on
losing leadership), creates N Ready fake Nodes and P pods, then releases the
Lease. The scheduler re-acquires it, lists everything and binds. Reported: time
from release to the last bind, and pods/s over the span from first to last bind.

Run through tests/bench/scheduler.sh (a network namespace of its own).
"""

import concurrent.futures
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from kubernetes import client, config, watch

KITE = os.environ.get("KITE_BIN", "target/release/kite")
PODS = int(os.environ.get("PODS", "10000"))
NODE_COUNTS = [int(n) for n in os.environ.get("NODES", "100,1000").split(",")]
PORT = 6443


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

        def node(i):
            name = f"bench-{i:04d}"
            core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
            core.patch_node_status(name, {"status": {
                "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]}})

        def pod(i):
            core.create_namespaced_pod("default", {"metadata": {"name": f"p-{i:05d}"}, "spec": {
                "containers": [{"name": "c", "image": "busybox",
                                "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}})

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(node, range(node_count)))
            list(pool.map(pod, range(PODS)))

        bound_at = []
        w = watch.Watch()
        rv = core.list_namespaced_pod("default", limit=1).metadata.resource_version
        stop.set()
        keeper.join()
        released = time.monotonic()
        coord.delete_namespaced_lease("kube-scheduler", "kube-system")
        seen = set()
        for event in w.stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=600):
            pod_obj = event["object"]
            if pod_obj.spec.node_name and pod_obj.metadata.name not in seen:
                seen.add(pod_obj.metadata.name)
                bound_at.append(time.monotonic())
                if len(seen) == PODS:
                    w.stop()
        rss = 0.0
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
