#!/usr/bin/env python3
"""Cluster DNS benchmark: queries per second for Service names, kite's DNS
beside unbound and dnsmasq (Debian) serving the same records on the same
machine, all measured with dnsperf over UDP.

kite serves the records from its Services (SERVICES of them, created through
the API); unbound and dnsmasq get the same names and addresses as static
local data. Every query asks for the A record of a random Service by its
full name. All three listen on the node address inside the benchmark's own
network namespace; dnsperf runs alongside them on the same 2 cores, as a
pod's resolver traffic would.

Run through tests/bench/dns.sh, which builds kite and runs this inside a
network namespace of its own.
"""

import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../e2e"))
from conftest import KiteServer, add_uplink, remove_uplink  # noqa: E402
from kubernetes import client, config  # noqa: E402

SERVICES = int(os.environ.get("SERVICES", "1000"))
SECONDS = int(os.environ.get("SECONDS_PER_RUN", "10"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
NODE_IP = "192.0.2.10"
UPLINK = "kite-bench0"
KITE_DNS_PORT = 10053  # where kite's DNS listens on the node address
UNBOUND_PORT, DNSMASQ_PORT = 5301, 5302
DOMAIN = "svc.cluster.local"


def dnsperf(port, queries):
    """Runs dnsperf for SECONDS against the node address; (qps, avg ms, lost %)."""
    out = subprocess.run(
        ["dnsperf", "-s", NODE_IP, "-p", str(port), "-d", queries, "-l", str(SECONDS),
         "-c", str(CLIENTS), "-T", "2", "-q", "500"],
        capture_output=True, text=True, timeout=SECONDS + 60).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1e3
    lost = float(re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out).group(1))
    completed = re.search(r"Queries completed:\s+\d+ \(([\d.]+)%\)", out)
    noerror = re.search(r"Response codes:\s+NOERROR \d+ \(([\d.]+)%\)", out)
    assert completed and noerror and float(noerror.group(1)) == 100.0, out
    return qps, latency, lost


def wait_answer(port, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port), f"@{NODE_IP}",
                              name], capture_output=True, text=True).stdout.strip()
        if out and not out.startswith(";;"):  # ";;" lines: dig's errors
            return out
        time.sleep(0.2)
    raise AssertionError(f"no answer for {name} on port {port}: {out!r}")


def main():
    workdir = tempfile.mkdtemp(prefix="kite-bench-dns-")
    server = KiteServer(workdir)
    others = []
    rows = []
    try:
        add_uplink(NODE_IP, UPLINK)
        server.start(extra=["--node-ip", NODE_IP])
        api = config.new_client_from_config(config_file=server.kubeconfig)
        api.configuration.connection_pool_maxsize = 32
        core = client.CoreV1Api(api)

        def create(i):
            return core.create_namespaced_service("default", {
                "metadata": {"name": f"web-{i}"},
                "spec": {"ports": [{"name": "http", "port": 80}]}}).spec.cluster_ip

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            addresses = list(pool.map(create, range(SERVICES)))
        names = [f"web-{i}.default.{DOMAIN}" for i in range(SERVICES)]
        assert wait_answer(KITE_DNS_PORT, names[-1]) == addresses[-1]

        queries = os.path.join(workdir, "queries")
        rng = random.Random(1)
        with open(queries, "w") as f:
            for _ in range(100_000):
                f.write(f"{rng.choice(names)} A\n")

        # The same records for unbound and dnsmasq.
        conf = os.path.join(workdir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
  interface: {NODE_IP}@{UNBOUND_PORT}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{workdir}"
  pidfile: "{workdir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 2
  so-reuseport: yes
  access-control: 0.0.0.0/0 allow
  local-zone: "cluster.local." static
""")
            for name, address in zip(names, addresses):
                f.write(f'  local-data: "{name}. 5 IN A {address}"\n')
            f.write("remote-control:\n  control-enable: no\n")
        hosts = os.path.join(workdir, "hosts")
        with open(hosts, "w") as f:
            for name, address in zip(names, addresses):
                f.write(f"{address} {name}\n")
        log = open(os.path.join(workdir, "servers.log"), "w")
        others.append(subprocess.Popen(["unbound", "-c", conf], stdout=log, stderr=log))
        others.append(subprocess.Popen(
            ["dnsmasq", "-k", "--user=root", "--no-resolv", "--no-hosts", "--bind-interfaces",
             f"--listen-address={NODE_IP}", f"--port={DNSMASQ_PORT}", f"--addn-hosts={hosts}",
             "--local-ttl=5", "--cache-size=10000", f"--pid-file={workdir}/dnsmasq.pid"],
            stdout=log, stderr=log))
        for port in (UNBOUND_PORT, DNSMASQ_PORT):
            answer = wait_answer(port, names[-1])
            assert answer == addresses[-1], (answer, open(log.name).read())

        for name, port in [("kite", KITE_DNS_PORT), ("unbound (2 threads)", UNBOUND_PORT),
                           ("dnsmasq", DNSMASQ_PORT)]:
            rows.append((name, *dnsperf(port, queries)))
    finally:
        for proc in others:
            proc.terminate()
            proc.wait(10)
        server.stop()
        remove_uplink(UPLINK)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDNS A queries for {SERVICES} Service names, dnsperf -c {CLIENTS} -T 2, {SECONDS} s each")
    print(f"{'server':<22} {'queries/s':>10} {'avg ms':>8} {'lost %':>7}")
    for name, qps, latency, lost in rows:
        print(f"{name:<22} {qps:>10.0f} {latency:>8.3f} {lost:>7.2f}")


if __name__ == "__main__":
    main()
