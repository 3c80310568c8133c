#!/usr/bin/env python3
"""Pod benchmark: 50 pods created at once with a cached image; prints a table
of start latency (create → Running as a watch sees it, p50/p99), kite's memory
per running pod (RSS delta of `kite server`, and the per-container monitor
processes), and the node's idle CPU with the pods running.

Run through tests/bench/pods.sh, which builds kite and runs this inside a
network namespace of its own.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../e2e"))
from conftest import KiteServer, restore_cgroup_mounts  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

PODS = int(os.environ.get("PODS", "50"))
IDLE_SECONDS = int(os.environ.get("IDLE_SECONDS", "20"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rollup_kib(pid, field):
    """A field of /proc/PID/smaps_rollup: Pss counts shared pages (the kite
    binary every monitor maps) once across all processes; Private_* are the
    process's own."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith(field))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def monitors(data_dir):
    """PIDs of the `kite runtime monitor` processes of this data dir."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"monitor" in cmd and any(data_dir.encode() in part for part in cmd):
            found.append(int(entry))
    return found


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def main():
    restore_cgroup_mounts()
    workdir = tempfile.mkdtemp(prefix="kite-bench-pods-")
    server = KiteServer(workdir)
    server.agent = True
    images = os.path.join(server.data_dir, "agent", "images")
    os.makedirs(images)
    subprocess.run([os.path.join(ROOT, "airgap/build-busybox-image.sh"),
                    os.path.join(images, "busybox.tar")], check=True, capture_output=True)
    server.start()
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        deadline = time.monotonic() + 30
        while True:
            try:
                core.read_namespaced_service_account("default", "default")
                if any(c.type == "Ready" and c.status == "True"
                       for n in core.list_node().items for c in n.status.conditions or []):
                    break
            except client.ApiException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("node never became ready")
            time.sleep(0.1)
        time.sleep(3)
        rss_before = rss_kib(server.proc.pid)

        created, running = {}, {}
        done = threading.Event()

        def watcher():
            w = watch.Watch()
            for event in w.stream(core.list_namespaced_pod, "default", timeout_seconds=120):
                pod = event["object"]
                name = pod.metadata.name
                if name not in running and pod.status.phase == "Running":
                    running[name] = time.monotonic()
                    if len(running) >= PODS:
                        w.stop()
            done.set()

        t = threading.Thread(target=watcher, daemon=True)
        t.start()
        time.sleep(0.5)
        body = lambda n: {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n},
                          "spec": {"terminationGracePeriodSeconds": 1,
                                   "containers": [{"name": "c", "image": "busybox",
                                                   "imagePullPolicy": "IfNotPresent",
                                                   "command": ["sleep", "3600"]}]}}
        start_all = time.monotonic()
        for i in range(PODS):
            name = f"bench-{i}"
            created[name] = time.monotonic()
            core.create_namespaced_pod("default", body(name))
        done.wait(180)
        all_running = time.monotonic() - start_all
        latencies = [running[n] - created[n] for n in created if n in running]
        if len(latencies) < PODS:
            raise SystemExit(f"only {len(latencies)} of {PODS} pods ran")

        time.sleep(5)
        rss_after = rss_kib(server.proc.pid)
        mons = monitors(server.data_dir)
        monitor_rss = sum(rss_kib(p) for p in mons)
        monitor_pss = sum(rollup_kib(p, "Pss:") for p in mons)
        monitor_private = sum(rollup_kib(p, "Private_") for p in mons)
        clk = os.sysconf("SC_CLK_TCK")
        pids = [server.proc.pid, *mons]
        before = sum(cpu_ticks(p) for p in pids)
        time.sleep(IDLE_SECONDS)
        after = sum(cpu_ticks(p) for p in pids)
        idle_cpu = (after - before) / clk / IDLE_SECONDS * 100

        print(f"| measure ({PODS} pods, busybox cached) | value |")
        print("|---|---|")
        print(f"| start latency p50 (create → Running) | {statistics.median(latencies) * 1000:.0f} ms |")
        print(f"| start latency p99 | {percentile(latencies, 99) * 1000:.0f} ms |")
        print(f"| start latency max | {max(latencies) * 1000:.0f} ms |")
        print(f"| all {PODS} Running after | {all_running * 1000:.0f} ms |")
        print(f"| kite server RSS before / with pods | {rss_before / 1024:.1f} MiB / {rss_after / 1024:.1f} MiB |")
        print(f"| kite server RSS per pod | {(rss_after - rss_before) / PODS:.0f} KiB |")
        n = max(1, len(mons))
        print(f"| monitor processes: count; RSS / PSS / private each | {len(mons)}; "
              f"{monitor_rss / n:.0f} / {monitor_pss / n:.0f} / {monitor_private / n:.0f} KiB |")
        print(f"| idle CPU (kite + monitors, {IDLE_SECONDS} s) | {idle_cpu:.1f} % of one core |")
    finally:
        try:
            for pod in core.list_namespaced_pod("default").items:
                core.delete_namespaced_pod(pod.metadata.name, "default", grace_period_seconds=0)
            deadline = time.monotonic() + 60
            while core.list_namespaced_pod("default").items and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            server.stop()
            with open("/proc/self/mountinfo") as f:
                mounts = [l.split()[4] for l in f if l.split()[4].startswith(workdir)]
            for m in reversed(mounts):
                subprocess.run(["umount", "-l", m])


if __name__ == "__main__":
    main()
