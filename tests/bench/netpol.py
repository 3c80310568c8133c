#!/usr/bin/env python3
"""Network policy benchmark: how long a change takes to reach the kernel's
rules (table `ip kite-netpol`), with few and with many peer pods.

One real busybox pod on the node is the policies' target; N fake pods bound
to a fake second node (status patched with an address, labels role=peer)
are peers, so the model and the sets hold N addresses. Two changes are
timed from the API call's return until `nft` shows the result (polled every
few milliseconds; each poll is one `nft` process):

- policy: a NetworkPolicy selecting the target, allowing from role=client,
  is created until the target's chain exists (a full table rewrite), then
  deleted until it is gone;
- relabel: one peer pod is relabelled role=client until its address is in
  the policy's peer set (a set-element update).

Run through tests/bench/netpol.sh (builds kite, runs this in a network
namespace of its own)."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../e2e"))
from conftest import node_agent, add_uplink, remove_uplink  # noqa: E402
from kubernetes import client  # noqa: E402

SIZES = [int(n) for n in os.environ.get("PEERS", "0,1000").split(",")]
CHANGES = int(os.environ.get("CHANGES", "10"))
NODE_IP = "192.0.2.10"
UPLINK = "kite-bench0"


class Tmp:
    def mktemp(self, name):
        return tempfile.mkdtemp(prefix=f"kite-bench-{name}-")


def nft(*args):
    return subprocess.run(["nft", *args], capture_output=True, text=True)


def until(check, timeout=30):
    """Seconds from now until `check()` holds."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out")
        time.sleep(0.002)
    return time.monotonic() - started


def fake_peers(core, count):
    core.create_node({"metadata": {"name": "elsewhere"}})
    for i in range(count):
        name = f"peer-{i}"
        core.create_namespaced_pod("default", {
            "metadata": {"name": name, "labels": {"role": "peer"}},
            "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "busybox"}]}})
        address = f"10.42.{100 + i // 250}.{1 + i % 250}"
        core.patch_namespaced_pod_status(name, "default", {"status": {
            "phase": "Running", "podIP": address, "podIPs": [{"ip": address}]}})


def main():
    add_uplink(NODE_IP, UPLINK)
    rows = []
    try:
        for size in SIZES:
            with node_agent(Tmp(), extra=["--node-ip", NODE_IP]) as (server, core):
                net = client.NetworkingV1Api(core.api_client)
                core.create_namespaced_pod("default", {
                    "metadata": {"name": "target", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox",
                                             "command": ["sleep", "3600"]}]}})
                target = None
                deadline = time.monotonic() + 60
                while not target:
                    assert time.monotonic() < deadline, "target pod never got an address"
                    target = core.read_namespaced_pod("target", "default").status.pod_ip
                    time.sleep(0.1)
                fake_peers(core, size)
                chain = f"ingress-{target}"
                creates, deletes, relabels = [], [], []
                for n in range(CHANGES):
                    net.create_namespaced_network_policy("default", {
                        "metadata": {"name": "allow"},
                        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                                 "ingress": [{"from": [{"podSelector":
                                                        {"matchLabels": {"role": "client"}}}]}]}})
                    creates.append(until(lambda: nft("list", "chain", "ip", "kite-netpol",
                                                      chain).returncode == 0))
                    if size:
                        peer = f"peer-{n}"
                        address = core.read_namespaced_pod(peer, "default").status.pod_ip
                        table = lambda: nft("list", "table", "ip", "kite-netpol").stdout  # noqa: E731
                        core.patch_namespaced_pod(peer, "default",
                                                  {"metadata": {"labels": {"role": "client"}}})
                        relabels.append(until(lambda: address in table()))
                    net.delete_namespaced_network_policy("allow", "default")
                    deletes.append(until(lambda: nft("list", "chain", "ip", "kite-netpol",
                                                     chain).returncode != 0))
                rows.append((size, creates, deletes, relabels))
    finally:
        remove_uplink(UPLINK)

    def ms(values):
        if not values:
            return "-"
        values = sorted(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        return f"{statistics.median(values) * 1000:.0f} / {p90 * 1000:.0f}"

    print(f"{'peer pods':>9} | {'policy created (ms p50/p90)':>27} | "
          f"{'policy deleted':>14} | {'peer relabelled':>15}")
    for size, creates, deletes, relabels in rows:
        print(f"{size:>9} | {ms(creates):>27} | {ms(deletes):>14} | {ms(relabels):>15}")


if __name__ == "__main__":
    main()
