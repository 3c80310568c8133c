"""Cluster DNS: the `kube-system/kube-dns` Service at 10.43.0.10, answers
from pods (nslookup, and wget through the search path to a Service), and
direct queries for NXDOMAIN vs NODATA, SRV, TCP, SERVFAIL upstream, headless
Services, PTR, ExternalName and pod names.

Same network setup as test_services.py: the node address 192.0.2.10 is on a
veth of the test's own namespace, so nothing leaves it (and no upstream
resolver answers)."""

import os
import socket
import struct
import subprocess

import pytest
from kubernetes import client

from conftest import node_with_uplink
from test_kubelet import pod_spec, status_of, wait_for

NODE_IP = "192.0.2.10"
DNS_PORT = 10053
DUMMY = "kite-e2e1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

A, SRV, AAAA, TXT = 1, 33, 28, 16
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with node_with_uplink(tmp_path_factory, NODE_IP, DUMMY) as (server, core):
        yield server, core.api_client, core


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


def test_names_outside_the_cluster_fail_without_upstreams(cluster):
    rc, _, answers = _query("example.com", A)
    assert (rc, answers) == (SERVFAIL, [])


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
