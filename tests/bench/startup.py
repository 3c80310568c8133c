#!/usr/bin/env python3
"""Start-up benchmark: time from exec to /readyz 200 on a fresh and an existing
data dir, and the idle RSS of `kite server`. Prints a table.

Run through tests/bench/startup.sh, which builds kite in release mode and runs
this inside a network namespace of its own.
"""

import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

KITE = os.environ.get("KITE_BIN", "target/release/kite")
RUNS = int(os.environ.get("RUNS", "10"))
PORT = 6443


def wait_ready(proc, timeout=10.0):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kite exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{PORT}/readyz", context=ctx, timeout=0.5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.002)
    raise SystemExit("kite did not become ready")


def start(data_dir, kubeconfig, config):
    started = time.monotonic()
    proc = subprocess.Popen(
        [KITE, "server", "--data-dir", data_dir, "-o", kubeconfig, "-c", config,
         "--https-listen-port", str(PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_ready(proc)
    return proc, (time.monotonic() - started) * 1000


def stop(proc):
    proc.terminate()
    proc.wait(10)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    work = tempfile.mkdtemp(prefix="kite-bench-")
    config = os.path.join(work, "empty.yaml")
    open(config, "w").close()
    kubeconfig = os.path.join(work, "kite.yaml")
    fresh, existing = [], []
    try:
        for i in range(RUNS):
            data = os.path.join(work, f"fresh-{i}")
            proc, ms = start(data, kubeconfig, config)
            fresh.append(ms)
            stop(proc)
        data = os.path.join(work, "fresh-0")
        for _ in range(RUNS):
            proc, ms = start(data, kubeconfig, config)
            existing.append(ms)
            stop(proc)
        proc, _ = start(data, kubeconfig, config)
        time.sleep(5)
        idle = rss_mb(proc.pid)
        stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def row(name, values, goal):
        values = sorted(values)
        p50 = statistics.median(values)
        print(f"| {name:<32} | {p50:8.1f} ms | {values[-1]:8.1f} ms | {goal:<9} |")

    print(f"kite server start-up, {RUNS} runs each ({KITE})")
    print(f"| {'measurement':<32} | {'p50':>11} | {'max':>11} | {'goal':<9} |")
    print(f"|{'-' * 34}|{'-' * 13}|{'-' * 13}|{'-' * 11}|")
    row("start to /readyz, fresh data dir", fresh, "< 300 ms")
    row("start to /readyz, existing data", existing, "< 300 ms")
    print(f"| {'idle RSS after 5 s':<32} | {idle:8.1f} MB | {'':>11} | {'< 40 MB':<9} |")


if __name__ == "__main__":
    sys.exit(main())
