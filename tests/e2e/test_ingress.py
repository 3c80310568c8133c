"""kite's Ingress controller: Ingresses of class `kite` (the default class) are
served on the node's ports 80 and 443 by host and path, with TLS by SNI from
Secrets (renewed without a restart), HTTP/2, keep-alive, X-Forwarded-*
headers, 404/502/503 pages, and the node address in status.loadBalancer.

Backends are busybox httpd pods; a CGI script prints the request headers it
saw. The node address is on a veth of the test's own network namespace (as
in test_services.py)."""

import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import threading

import pytest
from kubernetes import client

from conftest import node_with_uplink
from test_kubelet import pod_spec, status_of, wait_for

NODE_IP = "192.0.2.10"
DUMMY = "kite-e2e0"
# Paths every backend serves (busybox httpd serves directories' index.html).
DIRS = ["foo", "foo/bar", "foobar", "exact"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with node_with_uplink(tmp_path_factory, NODE_IP, DUMMY) as (server, core):
        api = core.api_client
        for name in ("alpha", "beta"):
            _web(core, name)
            _service(core, name, {"app": name})
        _service(core, "empty", {"app": "nothing"})
        yield server, api, core


def _web(core, name):
    index = " && ".join(f"mkdir -p /www/{d} && echo hello-from-{name} > /www/{d}/index.html" for d in DIRS)
    script = ("#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
              f"echo name={name}\\n"
              "echo xff=$HTTP_X_FORWARDED_FOR\\necho proto=$HTTP_X_FORWARDED_PROTO\\n"
              "echo xhost=$HTTP_X_FORWARDED_HOST\\necho host=$HTTP_HOST\\n")
    command = (f"mkdir -p /www/cgi-bin && echo hello-from-{name} > /www/index.html && {index} && "
               f"printf '{script}' > /www/cgi-bin/env && chmod +x /www/cgi-bin/env && "
               "exec httpd -f -p 80 -h /www")
    body = pod_spec(name, command)
    body["metadata"]["labels"] = {"app": name}
    core.create_namespaced_pod("default", body)
    return wait_for(lambda: (p := status_of(core, name)[0]) and p.status.pod_ip
                    and (status_of(core, name)[1] or None) and status_of(core, name)[1].ready and p,
                    what=f"{name} ready")


def _service(core, name, selector):
    core.create_namespaced_service("default", {
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}})


def _path(path, service, kind="Prefix", port=None):
    port = port or {"number": 80}
    return {"path": path, "pathType": kind, "backend": {"service": {"name": service, "port": port}}}


def _ingress(api, name, rules, class_name="kite", tls=None, default_backend=None):
    spec = {"rules": [{"host": host, "http": {"paths": paths}} if host else {"http": {"paths": paths}}
                      for host, paths in rules]}
    if class_name:
        spec["ingressClassName"] = class_name
    if tls:
        spec["tls"] = tls
    if default_backend:
        spec["defaultBackend"] = default_backend
    client.NetworkingV1Api(api).create_namespaced_ingress(
        "default", {"metadata": {"name": name}, "spec": spec})


def get(host, path="/", port=80, headers=None):
    """(status, body) of a plain-HTTP request to the node with `host`."""
    conn = http.client.HTTPConnection(NODE_IP, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def routes(cluster):
    _, api, core = cluster
    _ingress(api, "routes", [
        ("a.example", [_path("/", "alpha")]),
        ("b.example", [_path("/", "alpha"), _path("/foo", "beta"), _path("/exact/", "beta", "Exact"),
                       _path("/foo/bar", "alpha", "ImplementationSpecific")]),
        ("*.wild.example", [_path("/", "beta", port={"name": "http"})]),
        ("empty.example", [_path("/", "empty")]),
    ])
    wait_for(lambda: get("a.example")[0] == 200, timeout=60, what="the first route served")
    return cluster


def test_the_kite_class_exists_and_is_the_default(cluster):
    _, api, _ = cluster
    cls = wait_for(lambda: next((c for c in client.NetworkingV1Api(api).list_ingress_class().items
                                 if c.metadata.name == "kite"), None), what="IngressClass kite")
    assert cls.spec.controller == "kite.io/ingress-controller"
    assert cls.metadata.annotations["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_hosts_and_paths_follow_kubernetes_precedence(routes):
    cases = [
        ("a.example", "/", 200, "alpha"),
        ("A.Example:80", "/foo/", 200, "alpha"),
        ("b.example", "/", 200, "alpha"),
        ("b.example", "/foo/", 200, "beta"),         # the longer prefix
        ("b.example", "/foo/bar/", 200, "alpha"),    # the longest prefix (ImplementationSpecific)
        ("b.example", "/foobar/", 200, "alpha"),     # /foo is no prefix of /foobar by element
        ("b.example", "/exact/", 200, "beta"),       # Exact beats the / prefix
        ("x.wild.example", "/", 200, "beta"),        # a wildcard covers one label
        ("y.x.wild.example", "/", 404, None),
        ("nobody.example", "/", 404, None),
        ("empty.example", "/", 503, None),
    ]
    for host, path, status, name in cases:
        got_status, body = get(host, path)
        assert got_status == status, (host, path, body)
        if name:
            assert body.strip() == f"hello-from-{name}", (host, path, body)


def test_served_ingresses_show_the_node_address(routes):
    server, _, _ = routes
    wait_for(lambda: NODE_IP in server.kubectl("get", "ingress", "routes").stdout, timeout=20,
             what="ADDRESS in kubectl get ingress")
    out = server.kubectl("get", "ingress", "routes", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
    assert out.stdout.strip() == NODE_IP


def test_an_ingress_without_a_class_is_served_by_the_default_class(cluster):
    _, api, _ = cluster
    _ingress(api, "classless", [("classless.example", [_path("/", "beta")])], class_name=None)
    _ingress(api, "other-class", [("other.example", [_path("/", "beta")])], class_name="nginx")
    wait_for(lambda: get("classless.example")[0] == 200, timeout=20, what="classless ingress served")
    assert get("classless.example")[1].strip() == "hello-from-beta"
    assert get("other.example")[0] == 404
    # Moved to another class: no longer served, and the address is taken away.
    networking = client.NetworkingV1Api(api)
    wait_for(lambda: (networking.read_namespaced_ingress("classless", "default").status.load_balancer.ingress
                      or [None])[0], timeout=20, what="classless ingress address")
    networking.patch_namespaced_ingress("classless", "default", {"spec": {"ingressClassName": "nginx"}})
    wait_for(lambda: get("classless.example")[0] == 404, timeout=20, what="classless no longer served")
    wait_for(lambda: not networking.read_namespaced_ingress("classless", "default").status.load_balancer.ingress,
             timeout=20, what="the address removed")
    other = networking.read_namespaced_ingress("other-class", "default").status
    assert other is None or other.load_balancer is None or not other.load_balancer.ingress


def test_the_backend_sees_x_forwarded_headers(routes):
    status, body = get("a.example", "/cgi-bin/env", headers={"X-Forwarded-For": "6.6.6.6"})
    assert status == 200, body
    lines = dict(line.split("=", 1) for line in body.strip().splitlines())
    assert lines["name"] == "alpha"
    assert lines["xff"] == NODE_IP
    assert lines["proto"] == "http"
    assert lines["xhost"] == "a.example"
    assert lines["host"] == "a.example"


def test_requests_are_balanced_and_refused_endpoints_are_skipped(cluster):
    _, api, core = cluster
    alpha = core.read_namespaced_pod("alpha", "default").status.pod_ip
    beta = core.read_namespaced_pod("beta", "default").status.pod_ip
    core.create_namespaced_service("default", {"metadata": {"name": "manual"},
                                               "spec": {"ports": [{"name": "http", "port": 80}]}})
    slices = client.DiscoveryV1Api(api)
    for name, port, addresses in [("refusing", 1, [NODE_IP]), ("serving", 80, [alpha, beta])]:
        slices.create_namespaced_endpoint_slice("default", {
            "metadata": {"name": f"manual-{name}", "labels": {"kubernetes.io/service-name": "manual"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        })
    core.create_namespaced_service("default", {"metadata": {"name": "dead"},
                                               "spec": {"ports": [{"name": "http", "port": 80}]}})
    slices.create_namespaced_endpoint_slice("default", {
        "metadata": {"name": "dead-1", "labels": {"kubernetes.io/service-name": "dead"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 1, "protocol": "TCP"}],
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
    })
    _ingress(api, "manual", [("manual.example", [_path("/", "manual")]),
                             ("dead.example", [_path("/", "dead")])])
    wait_for(lambda: get("manual.example")[0] == 200, timeout=20, what="manual ingress served")
    seen = []
    for _ in range(9):
        status, body = get("manual.example")
        assert status == 200, body
        seen.append(body.strip())
    assert set(seen) == {"hello-from-alpha", "hello-from-beta"}, seen
    status, body = get("dead.example")
    assert status == 502, body


def test_connections_are_kept_alive(routes):
    conn = http.client.HTTPConnection(NODE_IP, 80, timeout=10)
    try:
        first = None
        for _ in range(3):
            conn.request("GET", "/", headers={"Host": "a.example"})
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            first = first or conn.sock
            assert conn.sock is first, "the connection was not reused"
    finally:
        conn.close()


def test_http2_with_prior_knowledge_and_by_alpn(tls_routes):
    out = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
               "-H", "Host: a.example", f"http://{NODE_IP}/")
    assert out == "2 200", out
    out = curl("--http2", "-k", "--resolve", f"a.example:443:{NODE_IP}", "-w", " %{http_version}",
               "https://a.example/")
    assert out == "hello-from-alpha\n 2", out


def _make_cert(directory, name, hosts):
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    san = ",".join(f"DNS:{h}" for h in hosts)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", f"/CN={hosts[0]}", "-addext",
                    f"subjectAltName={san}"], check=True, capture_output=True)
    return open(crt).read(), open(key).read(), crt


def _tls_secret(core, name, crt, key, replace=False):
    body = {"metadata": {"name": name}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": crt, "tls.key": key}}
    if replace:
        core.replace_namespaced_secret(name, "default", body)
    else:
        core.create_namespaced_secret("default", body)


def served_fingerprint(server_name):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((NODE_IP, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def fingerprint_of(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.fixture(scope="module")
def tls_routes(routes, tmp_path_factory):
    _, api, core = routes
    directory = str(tmp_path_factory.mktemp("certs"))
    crt, key, crt_path = _make_cert(directory, "ab", ["a.example", "b.example"])
    wild_crt, wild_key, wild_path = _make_cert(directory, "wild", ["*.wild.example"])
    _tls_secret(core, "ab-tls", crt, key)
    _tls_secret(core, "wild-tls", wild_crt, wild_key)
    client.NetworkingV1Api(api).patch_namespaced_ingress("routes", "default", {"spec": {"tls": [
        {"hosts": ["a.example", "b.example"], "secretName": "ab-tls"},
        {"hosts": ["*.wild.example"], "secretName": "wild-tls"},
    ]}})
    wait_for(lambda: served_fingerprint("a.example") == fingerprint_of(crt), timeout=20,
             what="the a.example certificate served")
    return routes, directory, crt_path, wild_path


def test_tls_is_served_by_sni_and_routes_by_host(tls_routes):
    _, _, crt_path, wild_path = tls_routes
    out = curl("--cacert", crt_path, "--resolve", f"a.example:443:{NODE_IP}", "https://a.example/")
    assert out.strip() == "hello-from-alpha"
    out = curl("--cacert", crt_path, "--resolve", f"b.example:443:{NODE_IP}", "https://b.example/foo/")
    assert out.strip() == "hello-from-beta"
    out = curl("--cacert", wild_path, "--resolve", f"x.wild.example:443:{NODE_IP}",
               "https://x.wild.example/")
    assert out.strip() == "hello-from-beta"
    out = curl("--cacert", crt_path, "--resolve", f"a.example:443:{NODE_IP}",
               "https://a.example/cgi-bin/env")
    assert "proto=https" in out, out
    # A name no Secret covers gets the default (cluster PKI) certificate.
    assert served_fingerprint("nobody.example") not in (served_fingerprint("a.example"),
                                                         served_fingerprint("x.wild.example"))


def test_a_renewed_secret_is_served_without_a_restart(tls_routes):
    (_, _, core), directory, _, _ = tls_routes
    before = served_fingerprint("a.example")
    crt, key, crt_path = _make_cert(directory, "ab2", ["a.example", "b.example"])
    _tls_secret(core, "ab-tls", crt, key, replace=True)
    wait_for(lambda: served_fingerprint("a.example") == fingerprint_of(crt), timeout=20,
             what="the renewed certificate served")
    assert fingerprint_of(crt) != before
    out = curl("--cacert", crt_path, "--resolve", f"a.example:443:{NODE_IP}", "https://a.example/")
    assert out.strip() == "hello-from-alpha"


def _upgrade_server():
    """A backend on the node that answers an Upgrade with 101 and then echoes."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((NODE_IP, 0))
    listener.listen()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            if b"upgrade: echo" not in data.lower():
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            while chunk := conn.recv(4096):
                conn.sendall(chunk)

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_an_upgrade_is_passed_through(cluster):
    _, api, core = cluster
    listener = _upgrade_server()
    try:
        port = listener.getsockname()[1]
        core.create_namespaced_service("default", {"metadata": {"name": "echo"},
                                                   "spec": {"ports": [{"name": "ws", "port": 80}]}})
        client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
            "metadata": {"name": "echo-1", "labels": {"kubernetes.io/service-name": "echo"}},
            "addressType": "IPv4", "ports": [{"name": "ws", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        })
        _ingress(api, "echo", [("echo.example", [_path("/", "echo")])])
        # A plain request reaches the backend, which refuses it with 400.
        wait_for(lambda: get("echo.example")[0] == 400, timeout=20, what="echo route")
        # The backend closes each connection after its answer without saying
        # so; the ingress must not answer 502 when it reuses one just closed.
        assert [get("echo.example")[0] for _ in range(30)] == [400] * 30
        with socket.create_connection((NODE_IP, 80), timeout=10) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: echo.example\r\nConnection: Upgrade\r\n"
                      b"Upgrade: echo\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 101"), head
            s.sendall(b"ping over the upgraded connection")
            echoed = b""
            while len(echoed) < len(b"ping over the upgraded connection"):
                echoed += s.recv(4096)
            assert echoed == b"ping over the upgraded connection"
    finally:
        listener.close()



def test_the_controller_reports_as_ingress_in_readyz(cluster):
    server, _, _ = cluster
    code, body, _ = server.curl("/readyz?verbose")
    assert code == 200 and "[+]ingress ok" in body, body


def test_a_default_backend_takes_what_no_rule_matches(routes):
    _, api, _ = routes
    networking = client.NetworkingV1Api(api)
    # Last in this file: while it exists, nothing is a 404.
    networking.create_namespaced_ingress("default", {
        "metadata": {"name": "fallback"},
        "spec": {"ingressClassName": "kite",
                 "defaultBackend": {"service": {"name": "beta", "port": {"name": "http"}}}}})
    try:
        wait_for(lambda: get("nobody.example")[0] == 200, timeout=20, what="default backend served")
        assert get("nobody.example", "/foo/")[1].strip() == "hello-from-beta"
        assert get("a.example")[1].strip() == "hello-from-alpha"  # rules still come first
    finally:
        networking.delete_namespaced_ingress("fallback", "default")
    wait_for(lambda: get("nobody.example")[0] == 404, timeout=20, what="404 again")
