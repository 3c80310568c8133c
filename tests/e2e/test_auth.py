"""Authentication, RBAC and the review APIs with real kubectl.

One server for the module (starting one per test would cost more than the tests):
the admin (system:masters), a user `jane` with a client certificate from the
client CA bound to `view` in one namespace, and a service-account token from
`kubectl create token`.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import KiteServer, kubectl_path, kubectl_versions

NS = "team"


@pytest.fixture(scope="module")
def cluster():
    workdir = tempfile.mkdtemp(prefix="kite-e2e-auth-")
    server = KiteServer(workdir)
    try:
        server.start()
        server.kubectl("create", "namespace", NS)
        server.kubectl("create", "rolebinding", "jane-view", "--clusterrole=view", "--user=jane", "-n", NS)
        yield server
    finally:
        server.stop(signal.SIGKILL if server.proc and server.proc.poll() is None else signal.SIGTERM)
        shutil.rmtree(workdir, ignore_errors=True)


def write_kubeconfig(server, path, user_fields):
    """A kubeconfig for `server` with the given `users[0].user` fields (YAML-safe JSON)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kite", "cluster": {"server": server.url, "certificate-authority": server.ca_path}}],
        "users": [{"name": "u", "user": user_fields}],
        "contexts": [{"name": "c", "context": {"cluster": "kite", "user": "u"}}],
        "current-context": "c",
    }
    with open(path, "w") as f:
        json.dump(config, f)
    return path


@pytest.fixture(scope="module")
def jane(cluster):
    """A kubeconfig for user jane (group devs), signed by the cluster's client CA."""
    d = os.path.join(cluster.workdir, "jane")
    os.makedirs(d)
    key, csr, crt, ext = (os.path.join(d, n) for n in ("jane.key", "jane.csr", "jane.crt", "ext.cnf"))
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-subj", "/CN=jane/O=devs", "-out", csr],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(cluster.tls_dir, "client-ca.crt"),
         "-CAkey", os.path.join(cluster.tls_dir, "client-ca.key"), "-CAcreateserial", "-days", "1",
         "-extfile", ext, "-out", crt],
        check=True, capture_output=True,
    )
    return write_kubeconfig(cluster, os.path.join(d, "kubeconfig"), {"client-certificate": crt, "client-key": key})


def kubectl_as(kubeconfig, *args, version="1.33", input=None):
    cmd = [kubectl_path(version), "--kubeconfig", kubeconfig, *args]
    return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=30)


@pytest.mark.parametrize("version", [v for v in ["1.27", "1.30", "1.33"] if v in kubectl_versions()])
def test_admin_is_system_admin_in_system_masters(cluster, version):
    # kubectl 1.27 asks authentication.k8s.io/v1beta1, later ones v1.
    out = cluster.kubectl("auth", "whoami", "-o", "json", version=version)
    info = json.loads(out.stdout)["status"]["userInfo"]
    assert info["username"] == "system:admin"
    assert "system:masters" in info["groups"] and "system:authenticated" in info["groups"]


@pytest.mark.parametrize("version", [v for v in ["1.27", "1.33"] if v in kubectl_versions()])
def test_jane_can_read_but_not_delete_in_her_namespace(cluster, jane, version):
    assert kubectl_as(jane, "auth", "can-i", "get", "pods", "-n", NS, version=version).stdout.strip() == "yes"
    denied = kubectl_as(jane, "auth", "can-i", "delete", "pods", "-n", NS, version=version)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    assert kubectl_as(jane, "auth", "can-i", "get", "pods", "-n", "default", version=version).stdout.strip() == "no"
    assert kubectl_as(jane, "auth", "can-i", "get", "secrets", "-n", NS, version=version).stdout.strip() == "no"


def test_jane_gets_the_kube_apiserver_403(cluster, jane):
    assert kubectl_as(jane, "get", "pods", "-n", NS).returncode == 0
    out = kubectl_as(jane, "delete", "pod", "web", "-n", NS)
    assert out.returncode != 0
    assert (
        'Error from server (Forbidden): pods "web" is forbidden: User "jane" cannot delete resource "pods" '
        'in API group "" in the namespace "team"'
    ) in out.stderr
    listed = kubectl_as(jane, "get", "configmaps", "-n", "default")
    assert (
        'configmaps is forbidden: User "jane" cannot list resource "configmaps" in API group "" '
        'in the namespace "default"'
    ) in listed.stderr


def test_jane_lists_her_rules(cluster, jane):
    out = kubectl_as(jane, "auth", "can-i", "--list", "-n", NS)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:1] == ["pods"] and "[get list watch]" in line for line in lines), out.stdout
    assert any(line.startswith("selfsubjectaccessreviews.authorization.k8s.io") for line in lines), out.stdout


def test_service_account_token_authenticates(cluster):
    if cluster.kubectl("get", "serviceaccount", "default", check=False).returncode != 0:
        cluster.kubectl("create", "serviceaccount", "default")
    token = cluster.kubectl("create", "token", "default").stdout.strip()
    assert token.count(".") == 2
    cfg = write_kubeconfig(cluster, os.path.join(cluster.workdir, "sa-kubeconfig"), {"token": token})
    out = kubectl_as(cfg, "auth", "whoami", "-o", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:default:default"
    assert set(info["groups"]) == {"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}
    forbidden = kubectl_as(cfg, "get", "secrets")
    assert 'User "system:serviceaccount:default:default" cannot list resource "secrets"' in forbidden.stderr

    review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    out = cluster.kubectl("create", "-f", "-", "-o", "json", input=review)
    status = json.loads(out.stdout)["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:default:default"
    assert "https://kubernetes.default.svc.cluster.local" in status["audiences"]

    bad = write_kubeconfig(cluster, os.path.join(cluster.workdir, "bad-kubeconfig"), {"token": token[:-4] + "AAAA"})
    out = kubectl_as(bad, "get", "pods")
    assert out.returncode != 0 and "Unauthorized" in out.stderr


def test_token_review_of_garbage_is_unauthenticated(cluster):
    review = "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: not-a-token\n"
    out = cluster.kubectl("create", "--validate=false", "-f", "-", "-o", "yaml", input=review)
    assert "authenticated: true" not in out.stdout
    assert "error: invalid bearer token" in out.stdout


def test_metrics_need_a_binding_while_discovery_is_open_to_all(cluster, jane):
    assert kubectl_as(jane, "api-versions").returncode == 0
    assert kubectl_as(jane, "explain", "pods").returncode == 0
    denied = kubectl_as(jane, "get", "--raw", "/metrics")
    assert 'forbidden: User "jane" cannot get path "/metrics"' in denied.stderr, denied.stderr

    cluster.kubectl("get", "configmaps", "-n", NS)
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    assert "# TYPE apiserver_request_total counter" in text
    assert 'apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",' \
           'scope="namespace",subresource="",verb="LIST",version="v1"}' in text, text[:2000]
    assert 'apiserver_request_duration_seconds_bucket{' in text
    assert 'etcd_request_duration_seconds_count{operation="list",type="/registry/core/configmaps"}' in text
    assert 'apiserver_storage_objects{resource="namespaces"}' in text

    # The monitoring group may scrape, as in Kubernetes.
    cluster.kubectl("create", "clusterrolebinding", "jane-monitoring", "--clusterrole=system:monitoring", "--user=jane")
    assert "apiserver_request_total" in kubectl_as(jane, "get", "--raw", "/metrics").stdout


def test_impersonation_needs_the_impersonate_verb(cluster, jane):
    # The admin may act as jane, and then has only jane's rights.
    who = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", "--as=jane", "--as-group=devs").stdout)
    assert who["status"]["userInfo"]["username"] == "jane"
    assert set(who["status"]["userInfo"]["groups"]) == {"devs", "system:authenticated"}
    assert cluster.kubectl("get", "pods", "-n", NS, "--as=jane").returncode == 0
    denied = cluster.kubectl("get", "secrets", "-n", "default", "--as=jane", check=False)
    assert 'User "jane" cannot list resource "secrets"' in denied.stderr, denied.stderr
    sa = json.loads(cluster.kubectl("auth", "whoami", "-o", "json",
                                    "--as=system:serviceaccount:team:builder").stdout)["status"]["userInfo"]
    assert set(sa["groups"]) == {"system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"}

    # jane may not impersonate anyone.
    out = kubectl_as(jane, "get", "pods", "-n", NS, "--as=bob")
    assert ('users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API group "" '
            'at the cluster scope') in out.stderr, out.stderr
