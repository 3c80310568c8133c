"""Issue "Kubernetes API server": real kubectl and raw HTTP against the resource API."""

import json
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import kubectl_versions

VERSIONS = [v for v in ["1.27", "1.30", "1.33"] if v in kubectl_versions()]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    s = KiteServer(str(tmp_path_factory.mktemp("api")))
    s.start()
    yield s
    s.stop()


def api(server, method, path, body=None, content_type="application/json", extra=()):
    """curl with the admin client certificate; returns (code, parsed body or text)."""
    d = os.path.join(server.data_dir, "server", "tls")
    cmd = ["curl", "-sS", "-X", method, "--cacert", server.ca_path,
           "--cert", os.path.join(d, "client-admin.crt"), "--key", os.path.join(d, "client-admin.key"),
           "-o", "-", "-w", "\n%{http_code}", *extra]
    if body is not None:
        cmd += ["-H", f"Content-Type: {content_type}", "--data-binary", "@-"]
    out = subprocess.run(cmd + [server.url + path], input=body if isinstance(body, (bytes, type(None))) else body.encode(),
                         capture_output=True, timeout=20)
    text, _, code = out.stdout.decode().rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


@pytest.mark.parametrize("version", VERSIONS)
def test_api_resources_and_versions_list_every_group(server, version):
    out = server.kubectl("api-resources", version=version).stdout
    for line in ["deployments", "deploy", "apps/v1", "customresourcedefinitions", "horizontalpodautoscalers",
                 "leases", "endpointslices", "priorityclasses", "tokenreviews"]:
        assert line in out, line
    versions = server.kubectl("api-versions", version=version).stdout.split()
    for gv in ["v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "rbac.authorization.k8s.io/v1",
               "networking.k8s.io/v1", "storage.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
               "events.k8s.io/v1", "policy/v1", "certificates.k8s.io/v1", "scheduling.k8s.io/v1", "node.k8s.io/v1",
               "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "authentication.k8s.io/v1",
               "authorization.k8s.io/v1"]:
        assert gv in versions, gv


def test_system_namespaces_and_kubernetes_service_exist(server):
    names = server.kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names)
    svc = json.loads(server.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443
    ep = json.loads(server.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout)
    assert ep["subsets"][0]["ports"][0]["port"] == server.port


@pytest.mark.parametrize("version", VERSIONS)
def test_configmap_crud_with_kubectl(server, version):
    name = "cm-" + version.replace(".", "-")
    server.kubectl("create", "configmap", name, "--from-literal=a=1", version=version)
    obj = json.loads(server.kubectl("get", "cm", name, "-o", "json", version=version).stdout)
    assert obj["data"] == {"a": "1"} and obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
    server.kubectl("label", "cm", name, "tier=web", version=version)
    server.kubectl("annotate", "cm", name, "note=hi", version=version)
    listed = server.kubectl("get", "cm", "-l", "tier=web", "-o", "name", version=version).stdout.split()
    assert f"configmap/{name}" in listed
    server.kubectl("patch", "cm", name, "--type=merge", "-p", '{"data":{"b":"2"}}', version=version)
    server.kubectl("patch", "cm", name, "--type=json", "-p", '[{"op":"remove","path":"/data/a"}]', version=version)
    obj = json.loads(server.kubectl("get", "cm", name, "-o", "json", version=version).stdout)
    assert obj["data"] == {"b": "2"}
    assert obj["metadata"]["labels"] == {"tier": "web"} and obj["metadata"]["annotations"]["note"] == "hi"
    out = server.kubectl("delete", "cm", name, version=version).stdout
    assert f'configmap "{name}" deleted' in out
    assert server.kubectl("get", "cm", name, check=False, version=version).returncode != 0


def test_replace_with_a_stale_resource_version_conflicts(server, workdir):
    server.kubectl("create", "configmap", "stale", "--from-literal=a=1")
    obj = json.loads(server.kubectl("get", "cm", "stale", "-o", "json").stdout)
    server.kubectl("patch", "cm", "stale", "--type=merge", "-p", '{"data":{"a":"2"}}')
    obj["data"]["a"] = "3"
    path = os.path.join(workdir, "stale.json")
    with open(path, "w") as f:
        json.dump(obj, f)
    out = server.kubectl("replace", "-f", path, check=False)
    assert out.returncode != 0
    assert "Operation cannot be fulfilled on configmaps \"stale\": the object has been modified" in out.stderr


def test_chunked_list_returns_everything(server):
    for i in range(10):
        server.kubectl("create", "configmap", f"chunk-{i}", "-n", "kube-public", "--from-literal=i=" + str(i))
    out = server.kubectl("get", "cm", "-n", "kube-public", "--chunk-size=2", "-o", "name").stdout.split()
    assert sorted(n for n in out if "chunk-" in n) == sorted(f"configmap/chunk-{i}" for i in range(10))
    code, page = api(server, "GET", "/api/v1/namespaces/kube-public/configmaps?limit=3")
    assert code == 200 and len(page["items"]) == 3 and page["metadata"]["continue"]
    assert page["metadata"]["remainingItemCount"] >= 7


def test_watch_streams_changes(server):
    proc = subprocess.Popen(server.kubectl_cmd("get", "cm", "-n", "default", "-w", "-o", "name",
                                               "--request-timeout=5s"), stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    server.kubectl("create", "configmap", "watched", "--from-literal=a=1")
    server.kubectl("delete", "configmap", "watched")
    out, _ = proc.communicate(timeout=15)
    assert out.count("configmap/watched") >= 2


def test_finalizer_keeps_a_deleted_object_terminating(server):
    server.kubectl("create", "configmap", "held")
    server.kubectl("patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    server.kubectl("delete", "cm", "held", "--wait=false")
    obj = json.loads(server.kubectl("get", "cm", "held", "-o", "json").stdout)
    assert obj["metadata"]["deletionTimestamp"]
    server.kubectl("patch", "cm", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    assert server.kubectl("get", "cm", "held", check=False).returncode != 0


def test_deleting_a_namespace_removes_its_content(server):
    server.kubectl("create", "namespace", "doomed")
    for i in range(3):
        server.kubectl("create", "configmap", f"c{i}", "-n", "doomed")
    server.kubectl("create", "secret", "generic", "s", "-n", "doomed", "--from-literal=k=v")
    server.kubectl("delete", "namespace", "doomed", "--timeout=20s")
    assert server.kubectl("get", "ns", "doomed", check=False).returncode != 0
    code, _ = api(server, "GET", "/api/v1/namespaces/doomed/configmaps/c0")
    assert code == 404


def test_scale_subresource(server):
    manifest = json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "scaled"},
        "spec": {"selector": {"matchLabels": {"app": "s"}},
                 "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    })
    server.kubectl("create", "-f", "-", input=manifest)
    server.kubectl("scale", "deployment", "scaled", "--replicas=4")
    obj = json.loads(server.kubectl("get", "deploy", "scaled", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 4 and obj["metadata"]["generation"] == 2
    code, scale = api(server, "GET", "/apis/apps/v1/namespaces/default/deployments/scaled/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert scale["status"]["selector"] == "app=s"


BAD = [
    ("POST", "/api/v1/namespaces/default/configmaps", b"{not json", "application/json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}',
     "application/json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b"metadata: [", "application/yaml", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}', "application/json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_Valid"}}', "application/json", 422, "Invalid"),
    ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt?fieldValidation=Strict", b'{"bogus":1}',
     "application/merge-patch+json", 422, "Invalid"),
    ("GET", "/api/v1/namespaces/default/nosuchthings", None, None, 404, "NotFound"),
    ("GET", "/apis/nosuch.example.com/v1/things", None, None, 404, "NotFound"),
    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews/x", b"{}", "application/json", 405, "MethodNotAllowed"),
    ("GET", "/api/v1/namespaces/default/configmaps/does-not-exist", None, None, 404, "NotFound"),
    ("POST", "/api/v1/namespaces/nope/configmaps", b'{"metadata":{"name":"x"}}', "application/json", 404, "NotFound"),
]


@pytest.mark.parametrize("method,path,body,ctype,code,reason", BAD, ids=[f"{b[0]} {b[1]} {b[4]}" for b in BAD])
def test_bad_requests_get_a_status_and_write_nothing(server, method, path, body, ctype, code, reason):
    def configmaps():
        # The list's own resourceVersion is the cluster's revision, which leases move.
        items = api(server, "GET", "/api/v1/configmaps")[1]["items"]
        return sorted((i["metadata"]["namespace"], i["metadata"]["name"], i["metadata"]["resourceVersion"])
                      for i in items)

    before = configmaps()
    got, status = api(server, method, path, body, ctype or "application/json")
    assert got == code, status
    assert status["kind"] == "Status" and status["reason"] == reason and status["code"] == code, status
    assert configmaps() == before


def test_oversized_bodies_are_rejected_with_413(server):
    big = b'{"metadata":{"name":"big"},"data":{"a":"' + b"x" * (3 * 1024 * 1024 + 10) + b'"}}'
    code, status = api(server, "POST", "/api/v1/namespaces/default/configmaps", big)
    assert code == 413 and status["reason"] == "RequestEntityTooLarge"


def test_unknown_verb_on_a_resource_is_405(server):
    code, status = api(server, "DELETE", "/apis/authentication.k8s.io/v1/tokenreviews")
    assert code == 405 and status["reason"] == "MethodNotAllowed"


def test_dry_run_writes_nothing(server):
    out = server.kubectl("create", "configmap", "dry", "--dry-run=server", "-o", "json")
    assert json.loads(out.stdout)["metadata"]["name"] == "dry"
    assert server.kubectl("get", "cm", "dry", check=False).returncode != 0


def test_generate_name_creates_a_unique_name(server):
    body = b'{"metadata":{"generateName":"gen-"}}'
    code, obj = api(server, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert code == 201 and obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9


def test_aggregated_discovery_is_served(server):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, doc = api(server, "GET", "/apis", extra=("-H", f"Accept: {accept}"))
    assert code == 200 and doc["kind"] == "APIGroupDiscoveryList"
    groups = {item["metadata"].get("name") for item in doc["items"]}
    assert {"apps", "batch", "rbac.authorization.k8s.io"} <= groups


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}, scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: string}
              replicas: {type: integer}
"""

WIDGET = """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: large, replicas: 1}
"""


def test_custom_resource_definitions_serve_their_resources(server):
    server.kubectl("apply", "-f", "-", input=CRD)
    server.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")
    assert "widgets" in server.kubectl("api-resources", "--api-group=example.com").stdout
    server.kubectl("apply", "-f", "-", input=WIDGET)
    table = server.kubectl("get", "wd").stdout.splitlines()
    # Declared printer columns replace the default AGE, as in Kubernetes.
    assert table[0].split() == ["NAME", "SIZE"] and table[1].split() == ["w1", "large"]
    assert "widget.example.com/w1" in server.kubectl("get", "all", "-o", "name").stdout
    server.kubectl("scale", "widget", "w1", "--replicas=3")
    obj = json.loads(server.kubectl("get", "widget", "w1", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3 and obj["metadata"]["generation"] == 2
    explained = server.kubectl("explain", "widgets.spec").stdout
    assert "size" in explained
    server.kubectl("delete", "crd", "widgets.example.com")
    assert server.kubectl("get", "widgets", check=False).returncode != 0
    code, _ = api(server, "GET", "/apis/example.com/v1/namespaces/default/widgets/w1")
    assert code == 404


@pytest.mark.parametrize("version", VERSIONS)
def test_create_only_kinds_pass_client_side_validation(server, version):
    # kubectl validates against OpenAPI (v2 in protobuf up to 1.28) before creating.
    out = server.kubectl("create", "-f", "-", "-o", "json", version=version,
                         input='{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}')
    assert json.loads(out.stdout)["status"].get("authenticated") in (None, False)


def test_openapi_v2_is_served_in_protobuf(server):
    d = os.path.join(server.data_dir, "server", "tls")
    out = subprocess.run(
        ["curl", "-sS", "--cacert", server.ca_path, "--cert", os.path.join(d, "client-admin.crt"),
         "--key", os.path.join(d, "client-admin.key"), "-D", "-", "-o", "/dev/null",
         "-H", "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json",
         server.url + "/openapi/v2"], capture_output=True, text=True, timeout=20)
    assert "content-type: application/com.github.proto-openapi.spec.v2.v1.0+protobuf" in out.stdout.lower()


@pytest.mark.parametrize("version", VERSIONS)
def test_cluster_info_and_describe(server, version):
    out = re.sub(r"\x1b\[[0-9;]*m", "", server.kubectl("cluster-info", version=version).stdout)
    assert f"Kubernetes control plane is running at {server.url}" in out, out
    server.kubectl("create", "configmap", f"described-{version}", "--from-literal=key=value", version=version)
    out = server.kubectl("describe", "configmap", f"described-{version}", version=version).stdout
    for line in [f"Name:         described-{version}", "Namespace:    default", "key:", "value"]:
        assert line in out, out
    out = server.kubectl("describe", "namespace", "default", version=version).stdout
    assert re.search(r"Status:\s+Active", out) and "No resource quota." in out, out
