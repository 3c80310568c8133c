"""CertificateSigningRequests with real kubectl and openssl: kubelet client
requests are approved automatically after a SubjectAccessReview and signed by
the client CA (the certificate then authenticates as the node); kubelet
serving requests wait for `kubectl certificate approve` and are signed by the
server CA; denied requests get no certificate."""

import base64
import json
import os
import subprocess

import pytest

from test_workloads import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    server = KiteServer(str(tmp_path_factory.mktemp("certificates")), port=6449)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_request(workdir, name, subject, san=None):
    key = os.path.join(workdir, f"{name}.key")
    csr = os.path.join(workdir, f"{name}.csr")
    cmd = ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", key, "-out", csr, "-subj", subject]
    if san:
        cmd += ["-addext", f"subjectAltName={san}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return key, open(csr, "rb").read()


def submit(server, name, request, signer, usages):
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": signer,
                     "usages": usages, "expirationSeconds": 3600,
                     "username": "forged-user"}}
    server.kubectl("create", "-f", "-", input=json.dumps(body))


def read(server, name):
    return json.loads(server.kubectl("get", "csr", name, "-o", "json").stdout)


def certificate(server, name):
    status = read(server, name).get("status", {})
    return status.get("certificate") and base64.b64decode(status["certificate"])


def verify(workdir, ca, cert):
    path = os.path.join(workdir, "issued.crt")
    open(path, "wb").write(cert)
    return subprocess.run(["openssl", "verify", "-CAfile", ca, path], capture_output=True, text=True)


def test_a_kubelet_client_request_is_approved_signed_and_authenticates(server):
    workdir = server.workdir
    key, request = make_request(workdir, "node", "/CN=system:node:edge-1/O=system:nodes")
    submit(server, "node-client", request, "kubernetes.io/kube-apiserver-client-kubelet",
           ["digital signature", "client auth"])
    cert = wait_for(lambda: certificate(server, "node-client"), timeout=20, what="signed")
    csr = read(server, "node-client")
    # The requester is who asked, whatever the body said.
    assert csr["spec"]["username"] == "system:admin", csr["spec"]
    approved = [c for c in csr["status"]["conditions"] if c["type"] == "Approved"][0]
    assert (approved["reason"], approved["message"]) == (
        "AutoApproved", "Auto approving kubelet client certificate after SubjectAccessReview.")
    ok = verify(workdir, os.path.join(server.tls_dir, "client-ca.crt"), cert)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-startdate"],
                          input=cert, capture_output=True).stdout.decode()
    assert "notAfter" in text

    out = server.kubectl("get", "csr", "node-client").stdout.splitlines()
    assert out[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION",
                              "CONDITION"], out
    assert out[1].split()[2:] == ["kubernetes.io/kube-apiserver-client-kubelet", "system:admin",
                                  "60m", "Approved,Issued"], out

    # The certificate is the node's identity.
    cert_path = os.path.join(workdir, "node.crt")
    open(cert_path, "wb").write(cert)
    r = subprocess.run(["curl", "-sS", "--cacert", server.ca_path, "--cert", cert_path, "--key", key,
                        "-H", "Content-Type: application/json", "-X", "POST", "--data",
                        '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
                        f"{server.url}/apis/authentication.k8s.io/v1/selfsubjectreviews"],
                       capture_output=True, text=True, timeout=20)
    user = json.loads(r.stdout)["status"]["userInfo"]
    assert user["username"] == "system:node:edge-1" and "system:nodes" in user["groups"], r.stdout


def test_a_serving_request_waits_for_an_admin_then_the_server_ca_signs_it(server):
    workdir = server.workdir
    _, request = make_request(workdir, "serving", "/CN=system:node:edge-1/O=system:nodes",
                              san="IP:10.0.0.7,DNS:edge-1")
    submit(server, "node-serving", request, "kubernetes.io/kubelet-serving",
           ["digital signature", "key encipherment", "server auth"])
    out = server.kubectl("get", "csr", "node-serving").stdout
    assert "Pending" in out, out
    assert not read(server, "node-serving").get("status", {}).get("conditions")

    server.kubectl("certificate", "approve", "node-serving")
    cert = wait_for(lambda: certificate(server, "node-serving"), timeout=20, what="signed")
    approved = [c for c in read(server, "node-serving")["status"]["conditions"]
                if c["type"] == "Approved"][0]
    assert approved["reason"] == "KubectlApprove", approved
    ok = verify(workdir, os.path.join(server.tls_dir, "server-ca.crt"), cert)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    sans = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                          input=cert, capture_output=True).stdout.decode()
    assert "IP Address:10.0.0.7" in sans and "DNS:edge-1" in sans, sans


def test_a_denied_request_gets_no_certificate(server):
    workdir = server.workdir
    _, request = make_request(workdir, "jane", "/CN=jane/O=developers")
    submit(server, "jane", request, "kubernetes.io/kube-apiserver-client",
           ["digital signature", "client auth"])
    server.kubectl("certificate", "deny", "jane")
    csr = wait_for(lambda: (c := read(server, "jane")).get("status", {}).get("conditions") and c,
                   what="denied")
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Denied"]
    assert "Denied" in server.kubectl("get", "csr", "jane").stdout
    # The signer leaves denied requests alone.
    assert not csr["status"].get("certificate")
