"""CustomResourceDefinitions with structural schemas: defaulting, validation,
pruning and strict field validation, multi-version serving and cleanup on
deletion, with real kubectl (1.27 and 1.33) and the Python client.

test_api.py covers serving a CRD's resources (tables, scale, explain); these
tests cover what the schema does to objects and the CRD's life cycle.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import kubectl_versions

VERSIONS = [v for v in ["1.27", "1.33"] if v in kubectl_versions()]


def no_client_validation(version):
    """kubectl 1.27 validates `-f` input against /openapi/v2 in protobuf, which kite
    does not serve yet; it then fails before sending anything. Its server-side
    checks are still exercised with client validation off."""
    return ["--validate=false"] if version == "1.27" else []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import KiteServer

    s = KiteServer(str(tmp_path_factory.mktemp("crd")))
    s.start()
    yield s
    s.stop()


def api(server, method, path, body=None, content_type="application/json"):
    """curl with the admin client certificate; returns (code, parsed body or text)."""
    d = os.path.join(server.data_dir, "server", "tls")
    cmd = ["curl", "-sS", "-X", method, "--cacert", server.ca_path,
           "--cert", os.path.join(d, "client-admin.crt"), "--key", os.path.join(d, "client-admin.key"),
           "-o", "-", "-w", "\n%{http_code}"]
    if body is not None:
        cmd += ["-H", f"Content-Type: {content_type}", "--data-binary", "@-"]
    data = body.encode() if isinstance(body, str) else body
    out = subprocess.run(cmd + [server.url + path], input=data, capture_output=True, timeout=20)
    text, _, code = out.stdout.decode().rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


def gadget_crd(group):
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [name]
            properties:
              name: {{type: string, maxLength: 10}}
              replicas: {{type: integer, minimum: 0, default: 1}}
              size: {{type: string, enum: [S, M], default: M}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {{type: string}}
                    port: {{type: integer, default: 80}}
              extra: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def established(server, name):
    server.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=20s")


@pytest.mark.parametrize("version", VERSIONS)
def test_schema_defaults_and_pruning_show_in_get(server, version):
    group = f"d{version.replace('.', '')}.example.com"
    server.kubectl("apply", *no_client_validation(version), "-f", "-", input=gadget_crd(group), version=version)
    established(server, f"gadgets.{group}")
    gadget = f"""
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: g1}}
spec:
  name: one
  ports: [{{name: http}}]
  extra: {{anything: [1, 2]}}
"""
    server.kubectl("apply", *no_client_validation(version), "-f", "-", input=gadget, version=version)
    got = server.kubectl("get", f"gadgets.{group}", "g1", "-o", "yaml", version=version).stdout
    assert "replicas: 1" in got and "size: M" in got and "port: 80" in got, got
    obj = json.loads(server.kubectl("get", f"gadgets.{group}", "g1", "-o", "json", version=version).stdout)
    assert obj["spec"]["extra"] == {"anything": [1, 2]}
    # An unknown field sent without strict validation is pruned, with a warning.
    code, body = api(server, "POST", f"/apis/{group}/v1/namespaces/default/gadgets",
                     json.dumps({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g2"},
                                 "spec": {"name": "two", "bogus": True}}))
    assert code == 201 and "bogus" not in body["spec"] and body["spec"]["replicas"] == 1, body


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_objects_are_rejected_with_kube_messages(server, version):
    group = f"v{version.replace('.', '')}.example.com"
    server.kubectl("apply", *no_client_validation(version), "-f", "-", input=gadget_crd(group), version=version)
    established(server, f"gadgets.{group}")
    bad = f"""
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: bad}}
spec: {{replicas: "three", size: XL}}
"""
    result = server.kubectl("apply", *no_client_validation(version), "-f", "-", input=bad, version=version, check=False)
    assert result.returncode != 0
    err = result.stderr
    assert f'The Gadget "bad" is invalid' in err, err
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"' in err, err
    assert 'spec.size: Unsupported value: "XL": supported values: "S", "M"' in err, err
    assert "spec.name: Required value" in err, err
    # Nothing was written.
    assert server.kubectl("get", f"gadgets.{group}", "bad", version=version, check=False).returncode != 0
    dup = f"""
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: dup}}
spec: {{name: d, ports: [{{name: a}}, {{name: a, port: 81}}]}}
"""
    result = server.kubectl("create", *no_client_validation(version), "-f", "-", input=dup, version=version, check=False)
    assert result.returncode != 0 and "spec.ports[1]: Duplicate value" in result.stderr, result.stderr


def test_invalid_object_status_has_one_cause_per_field(server):
    group = "status.example.com"
    server.kubectl("apply", "-f", "-", input=gadget_crd(group))
    established(server, f"gadgets.{group}")
    code, status = api(server, "POST", f"/apis/{group}/v1/namespaces/default/gadgets",
                       json.dumps({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "s"},
                                   "spec": {"name": "far-too-long-name", "replicas": -1}}))
    assert code == 422 and status["reason"] == "Invalid", status
    causes = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert causes == {("spec.name", "FieldValueTooLong"), ("spec.replicas", "FieldValueInvalid")}, status
    assert status["message"] == (
        f'Gadget.{group} "s" is invalid: [spec.name: Too long: may not be more than 10 bytes, '
        'spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0]')
    # An update is validated too, and a merge patch.
    api(server, "POST", f"/apis/{group}/v1/namespaces/default/gadgets",
        json.dumps({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "ok"}, "spec": {"name": "ok"}}))
    code, status = api(server, "PATCH", f"/apis/{group}/v1/namespaces/default/gadgets/ok",
                       json.dumps({"spec": {"size": "XXL"}}), "application/merge-patch+json")
    assert code == 422 and status["details"]["causes"][0]["reason"] == "FieldValueNotSupported", status


# --validate=strict needs kubectl's own schema fetch, which 1.27 does over protobuf.
@pytest.mark.parametrize("version", [v for v in VERSIONS if v != "1.27"])
def test_unknown_fields_fail_strict_validation(server, version):
    group = f"s{version.replace('.', '')}.example.com"
    server.kubectl("apply", *no_client_validation(version), "-f", "-", input=gadget_crd(group), version=version)
    established(server, f"gadgets.{group}")
    unknown = f"""
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: strict}}
spec: {{name: s, bogus: 1}}
"""
    result = server.kubectl("apply", "--validate=strict", "-f", "-", input=unknown, version=version, check=False)
    assert result.returncode != 0 and 'unknown field "spec.bogus"' in result.stderr, result.stderr
    assert server.kubectl("get", f"gadgets.{group}", "strict", version=version, check=False).returncode != 0
    # Warn (the default) accepts it, pruned.
    result = server.kubectl("apply", "--validate=warn", "-f", "-", input=unknown, version=version, check=False)
    assert result.returncode == 0, result.stderr
    assert 'unknown field "spec.bogus"' in result.stderr


MULTI = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: engines.multi.example.com
spec:
  group: multi.example.com
  scope: Cluster
  names: {plural: engines, singular: engine, kind: Engine}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {power: {type: integer, default: 5}, old: {type: string}}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {power: {type: integer, default: 10}}}
  - name: v1alpha1
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_every_served_version_answers(server, version):
    server.kubectl("apply", *no_client_validation(version), "-f", "-", input=MULTI, version=version)
    established(server, "engines.multi.example.com")
    name = f"e{version.replace('.', '')}"
    server.kubectl("apply", *no_client_validation(version), "-f", "-", version=version, input=f"""
apiVersion: multi.example.com/v1beta1
kind: Engine
metadata: {{name: {name}-beta}}
spec: {{old: yes-please}}
---
apiVersion: multi.example.com/v1
kind: Engine
metadata: {{name: {name}-v1}}
spec: {{}}
""")
    # Written as v1beta1: its default applies; stored as v1, whose schema prunes `old`.
    beta = json.loads(server.kubectl("get", f"engines.v1beta1.multi.example.com/{name}-beta", "-o", "json",
                                     version=version).stdout)
    assert beta["apiVersion"] == "multi.example.com/v1beta1" and beta["spec"] == {"power": 5}, beta
    code, v1 = api(server, "GET", f"/apis/multi.example.com/v1/engines/{name}-beta")
    assert code == 200 and v1["apiVersion"] == "multi.example.com/v1" and v1["spec"] == {"power": 5}, v1
    # Written as v1 with v1's default; read as v1beta1, only apiVersion changes.
    code, beta = api(server, "GET", f"/apis/multi.example.com/v1beta1/engines/{name}-v1")
    assert code == 200 and beta["apiVersion"] == "multi.example.com/v1beta1" and beta["spec"] == {"power": 10}, beta
    code, listed = api(server, "GET", "/apis/multi.example.com/v1beta1/engines")
    assert code == 200 and all(i["apiVersion"] == "multi.example.com/v1beta1" for i in listed["items"])
    code, cached = api(server, "GET", "/apis/multi.example.com/v1/engines?resourceVersion=0")
    assert code == 200 and {i["apiVersion"] for i in cached["items"]} == {"multi.example.com/v1"}
    code, events = api(server, "GET", "/apis/multi.example.com/v1beta1/engines?watch=1&timeoutSeconds=1")
    lines = [json.loads(line) for line in events.splitlines() if line.strip()] if isinstance(events, str) else [events]
    assert code == 200 and lines and all(e["object"]["apiVersion"] == "multi.example.com/v1beta1" for e in lines)
    code, _ = api(server, "GET", f"/apis/multi.example.com/v1alpha1/engines/{name}-v1")
    assert code == 404
    crd = json.loads(server.kubectl("get", "crd", "engines.multi.example.com", "-o", "json", version=version).stdout)
    assert crd["status"]["storedVersions"] == ["v1"]
    versions = server.kubectl("api-versions", version=version).stdout.split()
    assert "multi.example.com/v1" in versions and "multi.example.com/v1beta1" in versions
    assert "multi.example.com/v1alpha1" not in versions


def test_non_structural_schema_is_rejected(server):
    crd = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: loose.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: loose, kind: Loose}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {properties: {a: {type: string}}}
"""
    result = server.kubectl("apply", "-f", "-", input=crd, check=False)
    assert result.returncode != 0
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: "
            "must not be empty for specified object fields") in result.stderr, result.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_deleting_a_crd_removes_its_objects_and_resource(server, version):
    group = f"x{version.replace('.', '')}.example.com"
    server.kubectl("apply", *no_client_validation(version), "-f", "-", input=gadget_crd(group), version=version)
    established(server, f"gadgets.{group}")
    for name in ["a", "b"]:
        server.kubectl("apply", *no_client_validation(version), "-f", "-", version=version, input=f"""
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: {name}, finalizers: {['example.com/hold'] if name == 'b' else []}}}
spec: {{name: {name}}}
""")
    server.kubectl("delete", "crd", f"gadgets.{group}", "--wait=false", version=version)
    # The finalizer on b holds the CRD: Terminating, its objects being deleted.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        crd = json.loads(server.kubectl("get", "crd", f"gadgets.{group}", "-o", "json", version=version).stdout)
        code, _ = api(server, "GET", f"/apis/{group}/v1/namespaces/default/gadgets/a")
        if code == 404:
            break
        time.sleep(0.2)
    assert code == 404
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    assert any(c["type"] == "Terminating" and c["status"] == "True" for c in crd["status"]["conditions"])
    b = json.loads(server.kubectl("get", f"gadgets.{group}", "b", "-o", "json", version=version).stdout)
    assert "deletionTimestamp" in b["metadata"]
    server.kubectl("patch", f"gadgets.{group}", "b", "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                   version=version)
    server.kubectl("wait", "--for=delete", f"crd/gadgets.{group}", "--timeout=20s", version=version)
    resources = server.kubectl("api-resources", f"--api-group={group}", version=version, check=False).stdout
    assert "gadgets" not in resources
    code, _ = api(server, "GET", f"/apis/{group}/v1/namespaces/default/gadgets")
    assert code == 404


def test_python_client_sees_defaults_and_validation(server):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    group = "py.example.com"
    server.kubectl("apply", "-f", "-", input=gadget_crd(group))
    established(server, f"gadgets.{group}")
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=server.kubeconfig))
    body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "p"}, "spec": {"name": "p"}}
    created = custom.create_namespaced_custom_object(group, "v1", "default", "gadgets", body)
    assert created["spec"] == {"name": "p", "replicas": 1, "size": "M"}
    with pytest.raises(ApiException) as invalid:
        custom.patch_namespaced_custom_object(group, "v1", "default", "gadgets", "p", {"spec": {"replicas": -2}})
    assert invalid.value.status == 422
    status = json.loads(invalid.value.body)
    assert status["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.replicas",
        "message": "Invalid value: -2: spec.replicas in body should be greater than or equal to 0"}]
    assert custom.get_namespaced_custom_object(group, "v1", "default", "gadgets", "p")["spec"]["replicas"] == 1
