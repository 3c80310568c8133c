"""The API server under load and with untyped input: max-in-flight (429) and field validation.

One server for the module, started with one read and one write slot so that a single
request held open fills a pool deterministically: a POST whose body is still being sent
holds its write slot, as in kube-apiserver, where the limit is taken before the body is read.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import KiteServer


@pytest.fixture(scope="module")
def server():
    workdir = tempfile.mkdtemp(prefix="kite-e2e-limits-")
    s = KiteServer(workdir)
    try:
        s.start(extra=["--max-requests-inflight=1", "--max-mutating-requests-inflight=1"])
        deadline = time.monotonic() + 20
        while s.kubectl("get", "serviceaccount", "default", check=False).returncode != 0:
            assert time.monotonic() < deadline, "no default service account"
            time.sleep(0.2)
        s.kubectl("create", "rolebinding", "sa-edit", "--clusterrole=edit",
                  "--serviceaccount=default:default")
        yield s
    finally:
        s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def token(server):
    """A bearer token of a user outside system:masters (the limit exempts masters)."""
    return server.kubectl("create", "token", "default").stdout.strip()


def connect(server):
    context = ssl.create_default_context(cafile=server.ca_path)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def request_head(method, path, token, length):
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n").encode()


def read_response(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    code = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return code, headers, body


def call(server, method, path, token, body=b""):
    sock = connect(server)
    try:
        sock.sendall(request_head(method, path, token, len(body)) + body)
        return read_response(sock)
    finally:
        sock.close()


def configmap(name):
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).encode()


def test_requests_beyond_the_in_flight_limit_get_429_and_retry_after(server, token):
    path = "/api/v1/namespaces/default/configmaps"
    held = connect(server)
    body = configmap("held")
    try:
        # Headers and half the body: the request holds the only write slot.
        held.sendall(request_head("POST", path, token, len(body)) + body[:10])
        deadline = time.monotonic() + 10
        while True:
            code, headers, refused = call(server, "POST", path, token, configmap("refused"))
            if code == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert code == 429, refused
        assert headers.get("retry-after") == "1"
        status = json.loads(refused)
        assert status["kind"] == "Status" and status["reason"] == "TooManyRequests" and status["code"] == 429
        assert status["message"] == "Too many requests, please try again later."
        assert status["details"]["retryAfterSeconds"] == 1
        # Reads have their own pool; masters and watches are never limited.
        assert call(server, "GET", path, token)[0] == 200
        assert server.kubectl("create", "configmap", "by-admin").returncode == 0
        watch = connect(server)
        try:
            watch.sendall(f"GET {path}?watch=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
                          .encode())
            assert call(server, "GET", path, token)[0] == 200
        finally:
            watch.close()

        held.sendall(body[10:])
        assert read_response(held)[0] == 201
    finally:
        held.close()
    # The slot is free again, and the refused request wrote nothing.
    assert call(server, "POST", path, token, configmap("after"))[0] == 201
    assert server.kubectl("get", "configmap", "refused", check=False).returncode != 0


def test_client_go_retries_a_429_until_it_succeeds(server, token):
    """kubectl (client-go) honours Retry-After: a request refused once goes through."""
    path = "/api/v1/namespaces/default/configmaps"
    held = connect(server)
    body = configmap("held-again")
    cfg = os.path.join(server.workdir, "sa-kubeconfig")
    with open(cfg, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config",
                   "clusters": [{"name": "k", "cluster": {"server": server.url,
                                                          "certificate-authority": server.ca_path}}],
                   "users": [{"name": "u", "user": {"token": token}}],
                   "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                   "current-context": "c"}, f)
    from conftest import kubectl_path
    try:
        held.sendall(request_head("POST", path, token, len(body)) + body[:10])
        time.sleep(0.3)
        proc = subprocess.Popen([kubectl_path("1.33"), "--kubeconfig", cfg, "create", "configmap", "retried"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        held.sendall(body[10:])
        assert read_response(held)[0] == 201
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        held.close()
    assert server.kubectl("get", "configmap", "retried").returncode == 0


def test_unknown_fields_warn_and_are_dropped_without_strict(server):
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "loose"}, "data": {"a": "b"}, "bogus": {"x": 1}})
    out = server.kubectl("create", "--validate=warn", "-f", "-", input=manifest)
    assert 'unknown field "bogus"' in out.stderr
    stored = json.loads(server.kubectl("get", "configmap", "loose", "-o", "json").stdout)
    assert "bogus" not in stored and stored["data"] == {"a": "b"}


def patch(server, name, content_type, body, validation):
    """PATCH a default-namespace ConfigMap as the admin; returns (code, parsed body, warnings)."""
    tls = os.path.join(server.data_dir, "server", "tls")
    out = subprocess.run(
        ["curl", "-sS", "-X", "PATCH", "--cacert", server.ca_path, "-D", "-",
         "--cert", os.path.join(tls, "client-admin.crt"), "--key", os.path.join(tls, "client-admin.key"),
         "-H", f"Content-Type: {content_type}", "--data-binary", body,
         f"{server.url}/api/v1/namespaces/default/configmaps/{name}?fieldValidation={validation}"],
        capture_output=True, text=True, timeout=20,
    )
    assert out.returncode == 0, out.stderr
    head, _, text = out.stdout.partition("\n\n")  # text mode has turned CRLF into LF
    code = int(head.split()[1])
    warnings = [line.split(":", 1)[1].strip() for line in head.split("\n") if line.lower().startswith("warning:")]
    return code, json.loads(text), warnings


def test_strict_patches_refuse_unknown_fields_with_422(server):
    """As kube-apiserver: 422 Invalid on the field `patch`, nothing written; kubectl patch
    itself asks for no validation, so the server's default (Warn) applies to it."""
    server.kubectl("create", "configmap", "patched", "--from-literal=a=1")
    before = json.loads(server.kubectl("get", "configmap", "patched", "-o", "json").stdout)
    for content_type, body in [("application/merge-patch+json", '{"bogus": 1}'),
                               ("application/strategic-merge-patch+json", '{"data": {"b": "2"}, "bogus": 1}'),
                               ("application/json-patch+json", '[{"op": "add", "path": "/bogus", "value": 1}]')]:
        code, status, _ = patch(server, "patched", content_type, body, "Strict")
        assert code == 422 and status["reason"] == "Invalid", (content_type, status)
        assert 'strict decoding error: unknown field "bogus"' in status["message"], status
        assert status["details"]["causes"][0]["field"] == "patch", status
    after = json.loads(server.kubectl("get", "configmap", "patched", "-o", "json").stdout)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    code, patched, warnings = patch(server, "patched", "application/merge-patch+json",
                                    '{"data": {"b": "2"}, "bogus": 1}', "Warn")
    assert code == 200 and warnings == ['299 - "unknown field \\"bogus\\""'], warnings
    assert patched["data"] == {"a": "1", "b": "2"} and "bogus" not in patched
    out = server.kubectl("patch", "configmap", "patched", "--type", "merge", "-p", '{"bogus": 2}')
    assert 'unknown field "bogus"' in out.stderr
    assert "bogus" not in json.loads(server.kubectl("get", "configmap", "patched", "-o", "json").stdout)
