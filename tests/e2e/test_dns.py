"""Cluster DNS: the `kube-system/kube-dns` Service at 10.43.0.10, answers
from pods (nslookup, and wget through the search path to a Service), and
direct queries for NXDOMAIN vs NODATA, SRV, TCP, forwarding and SERVFAIL
upstream, headless Services, PTR, ExternalName and pod names.

Same network setup as test_services.py: the node address 192.0.2.10 is on a
veth of the test's own namespace, so nothing leaves it. The node's resolver
(`--resolv-conf`) is a stub the test runs on 192.0.2.53 in that namespace."""

import collections
import os
import socket
import struct
import subprocess
import threading

import pytest
from kubernetes import client

from conftest import node_with_uplink
from test_kubelet import pod_spec, status_of, wait_for

NODE_IP = "192.0.2.10"
DNS_PORT = 10053
DUMMY = "kite-e2e1"
UPSTREAM = "192.0.2.53"
EXTERNAL_IP = "198.51.100.7"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

A, SRV, AAAA, TXT = 1, 33, 28, 16
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


class StubUpstream:
    """The node's resolver: answers `db.example.test` with EXTERNAL_IP, never
    answers `silent.example.test`, and says NXDOMAIN to every other name;
    counts the questions it gets."""

    def __init__(self, address):
        self.asked = collections.Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, 53))
        self._sock.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stopped.is_set():
            try:
                msg, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            pos, labels = 12, []
            while msg[pos]:
                labels.append(msg[pos + 1:pos + 1 + msg[pos]].decode().lower())
                pos += msg[pos] + 1
            qtype = struct.unpack(">H", msg[pos + 1:pos + 3])[0]
            question, name = msg[12:pos + 5], ".".join(labels)
            self.asked[name] += 1
            if name == "silent.example.test":
                continue
            answer, rcode, count = b"", NXDOMAIN, 0
            if name == "db.example.test":
                rcode = NOERROR
                if qtype == A:
                    answer = b"\xc0\x0c" + struct.pack(">HHIH", A, 1, 30, 4) + socket.inet_aton(EXTERNAL_IP)
                    count = 1
            head = struct.pack(">HHHHHH", struct.unpack(">H", msg[:2])[0], 0x8180 | rcode, 1, count, 0, 0)
            self._sock.sendto(head + question + answer, peer)

    def close(self):
        self._stopped.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    resolv = tmp_path_factory.mktemp("node-resolv") / "resolv.conf"
    resolv.write_text(f"search corp.example.test\nnameserver {UPSTREAM}\n")
    with node_with_uplink(tmp_path_factory, NODE_IP, DUMMY,
                          extra=["--resolv-conf", str(resolv)]) as (server, core):
        yield server, core.api_client, core


@pytest.fixture(scope="module", autouse=True)
def upstream(cluster):
    ip("addr", "add", f"{UPSTREAM}/32", "dev", DUMMY)
    stub = StubUpstream(UPSTREAM)
    yield stub
    stub.close()


def _query(name, qtype, server=(NODE_IP, DNS_PORT), tcp=False, source=None, timeout=8):
    """Sends one query (from `source` if given); returns (rcode, flags, [(type, rdata bytes)])."""
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    if tcp:
        with socket.create_connection(server, timeout=5, source_address=(source, 0) if source else None) as s:
            s.sendall(struct.pack(">H", len(q)) + q)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                chunk = s.recv(4096)
                assert chunk, "connection closed"
                data += chunk
            msg = data[2:]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            if source:
                s.bind((source, 0))
            s.settimeout(timeout)
            s.sendto(q, server)
            msg, _ = s.recvfrom(4096)
    ident, flags, qd, an = struct.unpack(">HHHH", msg[:8])
    assert ident == 0x4242
    pos = 12
    for _ in range(qd):
        pos = _skip_name(msg, pos) + 4
    answers = []
    for _ in range(an):
        pos = _skip_name(msg, pos)
        rtype, _, _, length = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        answers.append((rtype, msg[pos:pos + length]))
        pos += length
    return flags & 0xF, flags, answers


def _skip_name(msg, pos):
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            return pos + 2
        if n == 0:
            return pos + 1
        pos += n + 1


def _web(core):
    body = pod_spec("web1", "mkdir -p /www && echo hello-from-web1 > /www/index.html && "
                            "exec httpd -f -p 80 -h /www")
    core.create_namespaced_pod("default", body)
    return wait_for(lambda: (p := status_of(core, "web1")[0]) and p.status.pod_ip
                    and (status_of(core, "web1")[1] or None) and status_of(core, "web1")[1].ready
                    and p, what="web1 ready")


def _run_in_pod(core, name, command):
    """Runs a shell command in a new pod; returns (phase, its output)."""
    core.create_namespaced_pod("default", pod_spec(
        name, f"{{ {command} ; }} > /tmp/out 2>&1; code=$?; cat /tmp/out > /dev/termination-log; "
              "exit $code", restart="Never"))
    pod = wait_for(lambda: (p := status_of(core, name)[0]).status.phase in ("Succeeded", "Failed") and p,
                   timeout=60, what=f"{name} finished")
    message = status_of(core, name)[1].state.terminated.message or ""
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    return pod.status.phase, message


@pytest.fixture(scope="module")
def web(cluster):
    """A busybox httpd behind the selector-less Service `web` with a manual slice."""
    _, api, core = cluster
    pod = _web(core)
    svc = core.create_namespaced_service("default", {"metadata": {"name": "web"}, "spec": {
        "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]}})
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
        "metadata": {"name": "web-manual", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [pod.status.pod_ip], "conditions": {"ready": True}}],
    })
    cluster_ip = svc.spec.cluster_ip
    wait_for(lambda: _query("web.default.svc.cluster.local", A)[2], timeout=10, what="web in DNS")
    return cluster_ip


def test_kube_dns_is_a_service_at_the_cluster_dns_address(cluster):
    _, _, core = cluster
    svc = wait_for(lambda: _get_or_none(core), timeout=20, what="kube-dns Service")
    assert svc.spec.cluster_ip == "10.43.0.10"
    assert {(p.name, p.port, p.protocol) for p in svc.spec.ports} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")}
    server = cluster[0]
    out = server.kubectl("get", "svc", "-n", "kube-system")
    line = next(l for l in out.stdout.splitlines() if l.startswith("kube-dns"))
    assert "10.43.0.10" in line and "53/UDP,53/TCP" in line, out.stdout


def _get_or_none(core):
    try:
        return core.read_namespaced_service("kube-dns", "kube-system")
    except client.exceptions.ApiException:
        return None


def test_direct_queries_tell_nxdomain_from_nodata(cluster, web):
    rc, flags, answers = _query("web.default.svc.cluster.local", A)
    assert rc == NOERROR and flags & 0x0400, "authoritative"
    assert answers == [(A, socket.inet_aton(web))]
    assert _query("WEB.default.svc.cluster.local", A)[2] == answers
    rc, _, answers = _query("web.default.svc.cluster.local", AAAA)
    assert (rc, answers) == (NOERROR, [])
    rc, _, answers = _query("nope.default.svc.cluster.local", A)
    assert (rc, answers) == (NXDOMAIN, [])
    rc, _, answers = _query("dns-version.cluster.local", TXT)
    assert answers == [(TXT, b"\x051.1.0")]


def test_named_ports_have_srv_records_over_udp_and_tcp(cluster, web):
    for tcp in (False, True):
        rc, _, answers = _query("_http._tcp.web.default.svc.cluster.local", SRV, tcp=tcp)
        assert rc == NOERROR and len(answers) == 1
        priority, weight, port = struct.unpack(">HHH", answers[0][1][:6])
        assert port == 80
        assert b"\x03web\x07default\x03svc" in answers[0][1]


def test_the_cluster_ip_answers_through_the_proxy(cluster, web):
    rc, _, answers = _query("web.default.svc.cluster.local", A, server=("10.43.0.10", 53))
    assert (rc, answers) == (NOERROR, [(A, socket.inet_aton(web))])


def test_only_pods_and_the_node_may_query(cluster):
    """The server listens on the node address: another host of the node's network
    (here a second address on the uplink) gets no answer, so kite is no open resolver."""
    stranger = "192.0.2.77"
    ip("addr", "add", f"{stranger}/24", "dev", DUMMY)
    try:
        assert _query("kubernetes.default.svc.cluster.local", A, source=NODE_IP)[0] == NOERROR
        with pytest.raises(socket.timeout):
            _query("kubernetes.default.svc.cluster.local", A, source=stranger, timeout=1)
        with pytest.raises((AssertionError, ConnectionError)):
            _query("kubernetes.default.svc.cluster.local", A, source=stranger, tcp=True)
    finally:
        ip("addr", "del", f"{stranger}/24", "dev", DUMMY)


def test_names_outside_the_cluster_are_forwarded_and_cached(cluster, upstream):
    rc, _, answers = _query("db.example.test", A)
    assert (rc, answers) == (NOERROR, [(A, socket.inet_aton(EXTERNAL_IP))])
    asked = upstream.asked["db.example.test"]
    assert _query("DB.example.test", A)[2] == answers
    assert upstream.asked["db.example.test"] == asked, "answered from the cache"
    assert _query("nothing.example.test", A)[:1] == (NXDOMAIN,)


def test_an_upstream_that_does_not_answer_gives_servfail(cluster, upstream):
    rc, _, answers = _query("silent.example.test", A)
    assert (rc, answers) == (SERVFAIL, [])
    assert upstream.asked["silent.example.test"] >= 1


def test_pods_resolve_services_by_full_and_short_name(cluster, web):
    _, _, core = cluster
    # busybox's nslookup tries every search domain and exits 1 when any of
    # them is NXDOMAIN, so only the first lookup's status counts.
    phase, out = _run_in_pod(core, "dns-lookup", "nslookup web.default.svc.cluster.local && "
                                                 "{ echo ----; nslookup web; true; }")
    assert phase == "Succeeded", out
    full, short = out.split("----")
    assert f"Name:\tweb.default.svc.cluster.local\nAddress: {web}" in full, out
    assert f"Name:\tweb.default.svc.cluster.local\nAddress: {web}" in short, out
    assert "NXDOMAIN" not in full, out


def test_a_pod_reaches_a_service_by_its_short_name(cluster, web):
    _, _, core = cluster
    phase, out = _run_in_pod(core, "dns-wget", "wget -q -O - http://web/")
    assert phase == "Succeeded", out
    assert "hello-from-web1" in out, out


PTR, CNAME = 12, 5


def _labels(*names):
    return b"".join(bytes([len(l)]) + l.encode() for n in names for l in n.split(".")) + b"\0"


def test_headless_external_name_ptr_and_pod_records(cluster, web):
    _, api, core = cluster
    core.create_namespaced_service("default", {"metadata": {"name": "db"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}})
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
        "metadata": {"name": "db-manual", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.42.0.200"], "hostname": "db-0",
                       "conditions": {"ready": True}},
                      {"addresses": ["10.42.0.201"], "conditions": {"ready": False}}],
    })
    core.create_namespaced_service("default", {"metadata": {"name": "ext"}, "spec": {
        "type": "ExternalName", "externalName": "example.com"}})
    wait_for(lambda: _query("db.default.svc.cluster.local", A)[2], timeout=10, what="db in DNS")
    assert _query("db.default.svc.cluster.local", A)[2] == [(A, socket.inet_aton("10.42.0.200"))]
    assert _query("db-0.db.default.svc.cluster.local", A)[2] == [(A, socket.inet_aton("10.42.0.200"))]
    rc, _, answers = _query("_pg._tcp.db.default.svc.cluster.local", SRV)
    assert rc == NOERROR and answers[0][1][6:] == _labels("db-0.db.default.svc.cluster.local")
    assert _query("200.0.42.10.in-addr.arpa", PTR)[2] == [
        (PTR, _labels("db-0.db.default.svc.cluster.local"))]
    reverse = ".".join(reversed(web.split("."))) + ".in-addr.arpa"
    assert _query(reverse, PTR)[2] == [(PTR, _labels("web.default.svc.cluster.local"))]
    wait_for(lambda: _query("ext.default.svc.cluster.local", A)[2], timeout=10, what="ext in DNS")
    assert _query("ext.default.svc.cluster.local", A)[2] == [(CNAME, _labels("example.com"))]
    assert _query("10-42-0-9.default.pod.cluster.local", A)[2] == [
        (A, socket.inet_aton("10.42.0.9"))]


def test_large_udp_answers_are_truncated_and_complete_over_tcp(cluster):
    _, api, core = cluster
    core.create_namespaced_service("default", {"metadata": {"name": "many"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "x", "port": 1, "protocol": "TCP"}]}})
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
        "metadata": {"name": "many-manual", "labels": {"kubernetes.io/service-name": "many"}},
        "addressType": "IPv4",
        "ports": [{"name": "x", "port": 1, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.42.1.{i}"], "conditions": {"ready": True}}
                      for i in range(1, 61)],
    })
    wait_for(lambda: len(_query("many.default.svc.cluster.local", A, tcp=True)[2]) == 60,
             timeout=10, what="60 addresses over TCP")
    _, flags, answers = _query("many.default.svc.cluster.local", A)
    assert flags & 0x0200, "TC bit"
    assert len(answers) < 60


def _sections(output):
    """Splits the output of `echo '=== NAME'; command` runs by NAME."""
    sections = {}
    for part in output.split("=== ")[1:]:
        name, _, text = part.partition("\n")
        sections[name.strip()] = text
    return sections


def test_nslookup_from_a_pod_finds_every_kind_of_name(cluster, web, upstream):
    _, api, core = cluster
    core.create_namespaced_service("default", {"metadata": {"name": "trio"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    trio = ["10.42.0.221", "10.42.0.222", "10.42.0.223"]
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
        "metadata": {"name": "trio-manual", "labels": {"kubernetes.io/service-name": "trio"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in trio],
    })
    core.create_namespaced_service("default", {"metadata": {"name": "out"}, "spec": {
        "type": "ExternalName", "externalName": "db.example.test"}})
    wait_for(lambda: len(_query("trio.default.svc.cluster.local", A)[2]) == 3, timeout=10,
             what="trio in DNS")
    wait_for(lambda: _query("out.default.svc.cluster.local", A)[2], timeout=10, what="out in DNS")
    lookups = {
        "a": "web.default.svc.cluster.local",
        "headless": "trio.default.svc.cluster.local",
        "srv": "-type=srv _http._tcp.web.default.svc.cluster.local",
        "ptr": web,
        "cname": "out.default.svc.cluster.local",
        "kubernetes": "kubernetes.default.svc.cluster.local",
        "external": "db.example.test",
    }
    script = "".join(f"echo '=== {k}'; nslookup {arg}; " for k, arg in lookups.items())
    # busybox's nslookup takes a dotted name as it is; its ping resolves the
    # way applications do, through the search path.
    script += "echo '=== search'; ping -c 1 -W 1 kubernetes.default; "
    core.create_namespaced_pod("default", pod_spec(
        "dns-kinds", script + "echo '=== resolv'; cat /etc/resolv.conf", restart="Never"))
    wait_for(lambda: status_of(core, "dns-kinds")[0].status.phase in ("Succeeded", "Failed"),
             timeout=60, what="dns-kinds finished")
    out = core.read_namespaced_pod_log("dns-kinds", "default")
    core.delete_namespaced_pod("dns-kinds", "default", grace_period_seconds=0)
    found = _sections(out)
    assert f"Name:\tweb.default.svc.cluster.local\nAddress: {web}" in found["a"], out
    for address in trio:
        assert f"Address: {address}\n" in found["headless"], out
    assert "service = 0 100 80 web.default.svc.cluster.local" in found["srv"], out
    assert "name = web.default.svc.cluster.local" in found["ptr"], out
    assert "canonical name = db.example.test" in found["cname"], out
    assert f"Address: {EXTERNAL_IP}" in found["cname"], out
    assert "Name:\tkubernetes.default.svc.cluster.local\nAddress: 10.43.0.1\n" in found["kubernetes"], out
    assert "PING kubernetes.default (10.43.0.1)" in found["search"], out
    assert f"Name:\tdb.example.test\nAddress: {EXTERNAL_IP}" in found["external"], out
    resolv = found["resolv"]
    assert "search default.svc.cluster.local svc.cluster.local cluster.local corp.example.test" in resolv, out
    assert "nameserver 10.43.0.10" in resolv and "options ndots:5" in resolv, out
