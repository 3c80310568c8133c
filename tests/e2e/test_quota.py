"""ResourceQuota: the controller's status.used and the admission check, through kubectl."""

import json
import time

import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    s = KiteServer(str(tmp_path_factory.mktemp("quota")))
    s.start()
    s.kubectl("create", "namespace", "q")
    deadline = time.time() + 10
    while s.kubectl("get", "serviceaccount", "default", "-n", "q", check=False).returncode != 0:
        assert time.time() < deadline, "no default ServiceAccount in a new namespace"
        time.sleep(0.2)
    yield s
    s.stop()


def pod(name, cpu="250m"):
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "q"},
                       "spec": {"containers": [{"name": "web", "image": "busybox", "resources": resources}]}})


def create(server, body, check=True):
    return server.kubectl("create", "-f", "-", input=body, check=check)


def used(server):
    out = server.kubectl("get", "quota", "q1", "-n", "q", "-o", "json")
    return json.loads(out.stdout).get("status", {}).get("used", {})


def wait_used(server, expected, timeout=10):
    deadline = time.time() + timeout
    while True:
        now = used(server)
        if all(now.get(k) == v for k, v in expected.items()):
            return now
        assert time.time() < deadline, f"used is {now}, wanted {expected}"
        time.sleep(0.2)


def test_quota_usage_and_admission(server):
    server.kubectl("create", "quota", "q1", "-n", "q", "--hard=pods=2,requests.cpu=1,count/configmaps=3")
    # The namespace's kube-root-ca.crt ConfigMap is counted.
    wait_used(server, {"pods": "0", "requests.cpu": "0", "count/configmaps": "1"})
    described = server.kubectl("describe", "quota", "q1", "-n", "q").stdout
    assert "requests.cpu" in described and "pods" in described, described

    create(server, pod("p1"))
    create(server, pod("p2", cpu="500m"))
    # Admission charged both at once; the controller agrees.
    assert used(server)["pods"] == "2"
    wait_used(server, {"pods": "2", "requests.cpu": "750m"})

    out = create(server, pod("p3"), check=False)
    assert out.returncode != 0
    assert ('pods "p3" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2'
            in out.stderr), out.stderr

    out = create(server, pod("nocpu", cpu=None), check=False)
    assert out.returncode != 0
    assert 'pods "nocpu" is forbidden: failed quota: q1: must specify requests.cpu for: web' in out.stderr, out.stderr

    # A dry run is checked but charges nothing.
    server.kubectl("delete", "pod", "p2", "-n", "q")
    wait_used(server, {"pods": "1", "requests.cpu": "250m"})
    server.kubectl("create", "-f", "-", "--dry-run=server", input=pod("dry"))
    assert used(server)["pods"] == "1"

    out = create(server, pod("big", cpu="800m"), check=False)
    assert ("exceeded quota: q1, requested: requests.cpu=800m, used: requests.cpu=250m, limited: requests.cpu=1"
            in out.stderr), out.stderr
    create(server, pod("p4"))
    assert used(server)["pods"] == "2"

    server.kubectl("create", "configmap", "c1", "-n", "q")
    server.kubectl("create", "configmap", "c2", "-n", "q")
    out = server.kubectl("create", "configmap", "c3", "-n", "q", check=False)
    assert out.returncode != 0
    assert ('configmaps "c3" is forbidden: exceeded quota: q1, requested: count/configmaps=1, '
            'used: count/configmaps=3, limited: count/configmaps=3') in out.stderr, out.stderr
    server.kubectl("delete", "configmap", "c1", "-n", "q")
    wait_used(server, {"count/configmaps": "2"})
    server.kubectl("create", "configmap", "c3", "-n", "q")
    wait_used(server, {"count/configmaps": "3", "pods": "2", "requests.cpu": "500m"})
