"""Server-side apply: managedFields, conflicts, pruning, with kubectl, the Python client and kpt."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import kubectl_versions
from test_api import api

VERSIONS = [v for v in ["1.27", "1.30", "1.33"] if v in kubectl_versions()]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    s = KiteServer(str(tmp_path_factory.mktemp("apply")))
    s.start()
    yield s
    s.stop()


def deployment(name, replicas=2, labels=None, ports=True):
    labels = labels or {"app": name}
    container = {"name": "web", "image": "busybox"}
    if ports:
        container["ports"] = [{"containerPort": 80}]
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    })


def get(server, kind, name):
    return json.loads(server.kubectl("get", kind, name, "-o", "json", "--show-managed-fields").stdout)


def managers(obj):
    return {(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])}


@pytest.mark.parametrize("version", VERSIONS)
def test_server_side_apply_conflicts_with_client_side_apply_until_forced(server, version):
    name = f"ssa-{version.replace('.', '')}"
    server.kubectl("apply", "-f", "-", input=deployment(name), version=version)
    created = get(server, "deployment", name)
    assert ("kubectl-client-side-apply", "Update") in managers(created)

    out = server.kubectl("apply", "--server-side", "-f", "-", input=deployment(name, replicas=3),
                         version=version, check=False)
    assert out.returncode != 0
    assert 'conflict with "kubectl-client-side-apply"' in out.stderr, out.stderr
    assert ".spec.replicas" in out.stderr, out.stderr
    assert get(server, "deployment", name)["spec"]["replicas"] == 2, "a refused apply writes nothing"

    server.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=deployment(name, replicas=3),
                   version=version)
    forced = get(server, "deployment", name)
    assert forced["spec"]["replicas"] == 3
    assert ("kubectl", "Apply") in managers(forced)
    assert forced["spec"]["template"]["metadata"]["labels"] == {"app": name}


def test_fields_dropped_from_an_applied_configuration_are_removed(server):
    name = "ssa-prune"
    body = deployment(name, labels={"app": name, "tier": "web"})
    server.kubectl("apply", "--server-side", "--field-manager=team-a", "-f", "-", input=body)
    assert get(server, "deployment", name)["spec"]["template"]["spec"]["containers"][0]["ports"]

    server.kubectl("apply", "--server-side", "--field-manager=team-a", "-f", "-",
                   input=deployment(name, labels={"app": name}, ports=False))
    obj = get(server, "deployment", name)
    assert obj["metadata"]["labels"] == {"app": name}
    assert "ports" not in obj["spec"]["template"]["spec"]["containers"][0]
    # Server defaults the applier never set stay.
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"
    entry = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "team-a")
    assert entry["operation"] == "Apply"
    assert "f:tier" not in entry["fieldsV1"]["f:metadata"]["f:labels"]


def test_a_field_another_manager_also_applied_survives(server):
    cm = lambda data: json.dumps({"apiVersion": "v1", "kind": "ConfigMap",  # noqa: E731
                                  "metadata": {"name": "shared"}, "data": data})
    server.kubectl("apply", "--server-side", "--field-manager=a", "-f", "-", input=cm({"x": "1", "y": "2"}))
    server.kubectl("apply", "--server-side", "--field-manager=b", "-f", "-", input=cm({"y": "2"}))
    server.kubectl("apply", "--server-side", "--field-manager=a", "-f", "-", input=cm({"x": "1"}))
    assert get(server, "configmap", "shared")["data"] == {"x": "1", "y": "2"}
    server.kubectl("apply", "--server-side", "--field-manager=b", "-f", "-", input=cm({}))
    assert get(server, "configmap", "shared")["data"] == {"x": "1"}


def test_imperative_commands_record_their_managers(server):
    server.kubectl("create", "configmap", "imperative", "--from-literal=a=1")
    server.kubectl("label", "configmap", "imperative", "team=blue")
    obj = get(server, "configmap", "imperative")
    fields = {e["manager"]: e["fieldsV1"] for e in obj["metadata"]["managedFields"]}
    assert fields["kubectl-create"] == {"f:data": {".": {}, "f:a": {}}}
    assert fields["kubectl-label"] == {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}
    assert all(e["operation"] == "Update" and e["time"] for e in obj["metadata"]["managedFields"])


def test_apply_requests_are_checked(server):
    path = "/api/v1/namespaces/default/configmaps/checked"
    body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"checked"}}'
    code, status = api(server, "PATCH", path, body, "application/apply-patch+yaml")
    assert code == 422 and "fieldManager: Required value" in status["message"], status

    with_managed = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"checked",'
                    '"managedFields":[{"manager":"x","operation":"Apply"}]}}')
    code, status = api(server, "PATCH", path + "?fieldManager=me", with_managed, "application/apply-patch+yaml")
    assert code == 400 and status["reason"] == "BadRequest", status

    code, status = api(server, "PATCH", path + "?fieldManager=me", body, "application/apply-patch+yaml")
    assert code == 201, status
    code, status = api(server, "PATCH", path + "?force=true", '{"data":{"a":"b"}}', "application/merge-patch+json")
    assert code == 422 and "force: Forbidden" in status["message"], status

    code, status = api(server, "PATCH", path + "?fieldManager=other", '{"data":{"k":"v"}}',
                       "application/merge-patch+json")
    assert code == 200, status
    conflict = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"checked"},"data":{"k":"w"}}')
    code, status = api(server, "PATCH", path + "?fieldManager=me", conflict, "application/apply-patch+yaml")
    assert code == 409 and status["reason"] == "Conflict", status
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "other" using v1', "field": ".data.k"}]


def test_python_client_server_side_apply(server):
    from kubernetes import client, config
    from kubernetes.dynamic import DynamicClient

    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    dyn = DynamicClient(api_client)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa", "namespace": "default"},
            "data": {"a": "1"}}
    created = cms.server_side_apply(body=body, name="py-ssa", namespace="default", field_manager="py")
    assert created.data.a == "1"
    body["data"] = {"a": "2"}
    updated = cms.server_side_apply(body=body, name="py-ssa", namespace="default", field_manager="py")
    assert updated.data.a == "2"
    entries = client.CoreV1Api(api_client).read_namespaced_config_map("py-ssa", "default").metadata.managed_fields
    assert [(e.manager, e.operation) for e in entries] == [("py", "Apply")]


@pytest.mark.skipif(shutil.which("kpt") is None, reason="kpt is not installed")
def test_kpt_live_apply_reports_the_package_current(server, tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "Kptfile").write_text("apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: pkg\n")
    (pkg / "resources.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kpt-config\n  namespace: default\ndata:\n  a: '1'\n"
        "---\n" + deployment("kpt-web").replace('"metadata": {', '"metadata": {"namespace": "default", ', 1))
    env = dict(os.environ, KUBECONFIG=server.kubeconfig, HOME=str(tmp_path))
    run = lambda *args: subprocess.run(["kpt", "live", *args], capture_output=True, text=True,  # noqa: E731
                                       env=env, timeout=120)
    init = run("init", str(pkg))
    assert init.returncode == 0, init.stderr
    applied = run("apply", str(pkg), "--server-side", "--reconcile-timeout=1s", "--output=events")
    assert applied.returncode in (0, 3), applied.stdout + applied.stderr
    assert "configmap/kpt-config apply successful" in applied.stdout, applied.stdout
    assert "deployment.apps/kpt-web apply successful" in applied.stdout, applied.stdout
    assert "apply result: 2 attempted, 2 successful" in applied.stdout, applied.stdout
    status = run("status", str(pkg))
    assert "configmap/default/kpt-config is Current" in status.stdout, status.stdout
    cm = get(server, "configmap", "kpt-config")
    assert cm["metadata"]["annotations"]["config.k8s.io/owning-inventory"]
    assert ("kubectl", "Apply") in managers(cm)
