"""Admission of pods: ServiceAccount (account, API-access volume) and LimitRanger, through kubectl."""

import json
import time

import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    s = KiteServer(str(tmp_path_factory.mktemp("admission")))
    s.start()
    s.kubectl("create", "namespace", "adm")
    # The ServiceAccount controller gives every namespace its `default` account.
    deadline = time.time() + 10
    while s.kubectl("get", "serviceaccount", "default", "-n", "adm", check=False).returncode != 0:
        assert time.time() < deadline, "no default ServiceAccount in a new namespace"
        time.sleep(0.2)
    yield s
    s.stop()


def pod(name, **spec):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "adm"},
            "spec": {"containers": [{"name": "web", "image": "busybox"}], **spec}}
    return json.dumps(body)


def create(server, body, check=True):
    return server.kubectl("create", "-f", "-", "-o", "json", input=body, check=check)


def test_pods_run_as_default_with_the_api_access_volume(server):
    created = json.loads(create(server, pod("sa-default")).stdout)
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default"
    volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"expirationSeconds": 3607, "path": "token"}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]


def test_automount_off_means_no_volume(server):
    created = json.loads(create(server, pod("sa-off", automountServiceAccountToken=False)).stdout)
    assert "volumes" not in created["spec"]
    assert "volumeMounts" not in created["spec"]["containers"][0]


def test_a_missing_service_account_is_forbidden(server):
    out = create(server, pod("sa-missing", serviceAccountName="ghost"), check=False)
    assert out.returncode != 0
    assert ('pods "sa-missing" is forbidden: error looking up service account adm/ghost: '
            'serviceaccount "ghost" not found') in out.stderr, out.stderr
    assert server.kubectl("get", "pod", "sa-missing", "-n", "adm", check=False).returncode != 0


def test_limit_ranges_default_and_bound_containers(server):
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds", "namespace": "adm"},
              "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
                                   "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}}
    server.kubectl("apply", "-f", "-", input=json.dumps(limits))
    created = json.loads(create(server, pod("limited")).stdout)
    assert created["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web")

    greedy = json.loads(pod("greedy"))
    greedy["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}}
    out = create(server, json.dumps(greedy), check=False)
    assert 'pods "greedy" is forbidden: maximum cpu usage per Container is 1, but limit is 2' in out.stderr, out.stderr
    server.kubectl("delete", "limitrange", "bounds", "-n", "adm")
