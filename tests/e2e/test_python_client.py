"""The official Python `kubernetes` client against kite: CRUD, watch, patch, dynamic client."""

import threading

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api_client(tmp_path_factory):
    from conftest import KiteServer

    server = KiteServer(str(tmp_path_factory.mktemp("py")))
    server.start()
    yield config.new_client_from_config(config_file=server.kubeconfig)
    server.stop()


def test_configmap_crud(api_client):
    core = client.CoreV1Api(api_client)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"app": "py"}), data={"a": "1"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.resource_version
    got = core.read_namespaced_config_map("py-cm", "default")
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("py-cm", "default", got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    listed = core.list_namespaced_config_map("default", label_selector="app=py")
    assert [c.metadata.name for c in listed.items] == ["py-cm"]
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("py-cm", "default", got)  # stale resourceVersion
    assert conflict.value.status == 409
    core.delete_namespaced_config_map("py-cm", "default")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("py-cm", "default")
    assert missing.value.status == 404


def test_patches(api_client):
    apps = client.AppsV1Api(api_client)
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "py-web"},
        "spec": {"selector": {"matchLabels": {"app": "py-web"}},
                 "template": {"metadata": {"labels": {"app": "py-web"}},
                              "spec": {"containers": [{"name": "web", "image": "busybox:1.35"},
                                                      {"name": "side", "image": "busybox:1.35"}]}}},
    }
    apps.create_namespaced_deployment("default", dep)
    # Strategic merge: the container list merges by name.
    patched = apps.patch_namespaced_deployment(
        "py-web", "default", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]}}}})
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"web": "busybox:1.36", "side": "busybox:1.35"}
    assert patched.spec.replicas == 1 and patched.spec.strategy.type == "RollingUpdate"
    scaled = apps.patch_namespaced_deployment_scale("py-web", "default", {"spec": {"replicas": 3}})
    assert scaled.spec.replicas == 3
    apps.delete_namespaced_deployment("py-web", "default")


def test_watch_from_a_resource_version(api_client):
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen = []

    def consume():
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
            # Only this test's object: the controllers may still be writing
            # their kube-root-ca.crt into a namespace this young.
            if event["object"].metadata.name == "w1":
                seen.append((event["type"], event["object"].metadata.name))
            if len(seen) >= 3:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    core.patch_namespaced_config_map("w1", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w1", "default")
    t.join(15)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_dynamic_client(api_client):
    dyn = dynamic.DynamicClient(api_client)
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    secrets.create(body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dyn"},
                         "stringData": {"k": "v"}}, namespace="default")
    got = secrets.get(name="dyn", namespace="default")
    assert got.type == "Opaque"
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced
    secrets.delete(name="dyn", namespace="default")
