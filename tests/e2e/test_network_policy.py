"""NetworkPolicy enforcement (table `ip kite-netpol`): busybox httpd pods as
targets, long-running busybox pods as clients (`kubectl exec ... timeout 2
wget`), on a node whose address is on a veth of the test's own network
namespace (as in test_services.py).

Covered: a default deny isolates only the selected pods; allowing by pod
label, by namespace label (relabelling the namespace too), by ipBlock with
an exception (an IPv6 one is reported by an event), by port (port range,
named port); an egress deny with a named port, the cluster DNS kept open;
relabelling a client changes the verdict; deleting the policy restores
traffic; `--disable network-policy` removes the table."""

import os
import subprocess
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import node_with_uplink
from test_kubelet import pod_spec, wait_for

NODE_IP = "192.0.2.10"
DUMMY = "kite-e2e0"
TABLE = "kite-netpol"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def _ready_pod(core, namespace, name, command, labels, ports=()):
    body = pod_spec(name, command, container={"ports": list(ports)})
    body["metadata"]["labels"] = labels
    core.create_namespaced_pod(namespace, body)

    def ready():
        pod = core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        return pod.status.pod_ip and statuses and statuses[0].ready and pod

    return wait_for(ready, timeout=60, what=f"{namespace}/{name} ready")


HTTPD = ("mkdir -p /www && echo hello-from-{name} > /www/index.html && "
         "httpd -p 8080 -h /www && exec httpd -f -p 80 -h /www")


# Named, for the policies' named ports.
WEB_PORTS = [{"name": "http", "containerPort": 80}, {"name": "alt", "containerPort": 8080}]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with node_with_uplink(tmp_path_factory, NODE_IP, DUMMY) as (server, core):
        core.create_namespace({"metadata": {"name": "team", "labels": {"team": "blue"}}})

        def sa_ready():
            try:
                return core.read_namespaced_service_account("default", "team")
            except ApiException:
                return None

        wait_for(sa_ready, timeout=30, what="team's default service account")
        pods = {
            "web": _ready_pod(core, "default", "web", HTTPD.format(name="web"), {"app": "web"},
                              ports=WEB_PORTS),
            "open": _ready_pod(core, "default", "open", HTTPD.format(name="open"), {"app": "open"}),
            "client": _ready_pod(core, "default", "client", "exec sleep 3600", {"role": "client"}),
            "stranger": _ready_pod(core, "default", "stranger", "exec sleep 3600", {"role": "none"}),
            "remote": _ready_pod(core, "team", "remote", "exec sleep 3600", {"role": "none"}),
        }
        ips = {name: pod.status.pod_ip for name, pod in pods.items()}
        yield server, core, client.NetworkingV1Api(core.api_client), ips


def _reaches(server, client_pod, url, namespace="default"):
    """Whether `client_pod` fetches `url` within 2 seconds."""
    out = server.kubectl("exec", "-n", namespace, client_pod, "--",
                         "timeout", "2", "wget", "-q", "-O", "-", url, check=False, timeout=30)
    return out.returncode == 0 and "hello-from-" in out.stdout


def _expect(server, client_pod, url, allowed, namespace="default", timeout=10):
    """Waits until the verdict for `client_pod` → `url` is `allowed` (policies
    take effect within moments, not at once), then checks it holds."""
    wait_for(lambda: _reaches(server, client_pod, url, namespace) == allowed, timeout=timeout,
             what=f"{namespace}/{client_pod} -> {url} {'allowed' if allowed else 'blocked'}")


def _policy(net, name, spec, namespace="default"):
    net.create_namespaced_network_policy(namespace, {"metadata": {"name": name}, "spec": spec})


def _delete_policies(net, namespace="default"):
    for p in net.list_namespaced_network_policy(namespace).items:
        net.delete_namespaced_network_policy(p.metadata.name, namespace)


def _table():
    return subprocess.run(["nft", "list", "table", "ip", TABLE], capture_output=True, text=True)


DENY_WEB = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}


def test_pods_are_unrestricted_without_policies(cluster):
    server, _, _, ips = cluster
    assert _table().returncode == 0, "the table is built at start"
    assert _reaches(server, "client", f"http://{ips['web']}/")
    assert _reaches(server, "stranger", f"http://{ips['open']}:8080/")


def test_a_default_deny_blocks_only_the_selected_pods_and_deleting_it_restores(cluster):
    server, _, net, ips = cluster
    _policy(net, "deny-web", DENY_WEB)
    try:
        _expect(server, "client", f"http://{ips['web']}/", allowed=False)
        assert _reaches(server, "client", f"http://{ips['open']}/"), "other pods stay reachable"
        assert f"ingress-{ips['web']}" in _table().stdout
        # The node itself (kubelet probes) still reaches the isolated pod.
        with urllib.request.urlopen(f"http://{ips['web']}/", timeout=5) as r:
            assert r.read().decode().strip() == "hello-from-web"
    finally:
        _delete_policies(net)
    _expect(server, "client", f"http://{ips['web']}/", allowed=True)


def test_an_allow_by_pod_label_admits_only_the_labelled_client_and_follows_relabels(cluster):
    server, core, net, ips = cluster
    _policy(net, "deny-web", DENY_WEB)
    _policy(net, "allow-clients", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    url = f"http://{ips['web']}/"
    try:
        _expect(server, "stranger", url, allowed=False)
        assert _reaches(server, "client", url)
        assert not _reaches(server, "remote", url, namespace="team"), "podSelector alone is this namespace"
        # Relabelling changes the verdict; nothing is recreated.
        core.patch_namespaced_pod("stranger", "default", {"metadata": {"labels": {"role": "client"}}})
        _expect(server, "stranger", url, allowed=True)
        core.patch_namespaced_pod("stranger", "default", {"metadata": {"labels": {"role": "none"}}})
        _expect(server, "stranger", url, allowed=False)
    finally:
        core.patch_namespaced_pod("stranger", "default", {"metadata": {"labels": {"role": "none"}}})
        _delete_policies(net)


def test_a_namespace_selector_admits_a_client_of_another_namespace(cluster):
    server, core, net, ips = cluster
    _policy(net, "allow-team", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]})
    url = f"http://{ips['web']}/"
    try:
        _expect(server, "client", url, allowed=False)
        assert _reaches(server, "remote", url, namespace="team")
        # Relabelling the namespace changes the verdict too.
        core.patch_namespace("team", {"metadata": {"labels": {"team": "red"}}})
        _expect(server, "remote", url, allowed=False, namespace="team")
        core.patch_namespace("team", {"metadata": {"labels": {"team": "blue"}}})
        _expect(server, "remote", url, allowed=True, namespace="team")
    finally:
        core.patch_namespace("team", {"metadata": {"labels": {"team": "blue"}}})
        _delete_policies(net)


def test_an_ip_block_with_an_exception(cluster):
    server, _, net, ips = cluster
    _policy(net, "allow-block", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.42.0.0/16", "except": [f"{ips['client']}/32"]}}]}]})
    url = f"http://{ips['web']}/"
    try:
        _expect(server, "client", url, allowed=False)
        assert _reaches(server, "stranger", url)
        # An IPv6 block cannot apply to this IPv4 pod network: a Warning event says so,
        # and the rest keeps working.
        _policy(net, "v6-block", {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/64"}}]}]})
        wait_for(lambda: "NotEnforced" in server.kubectl(
            "get", "events", "--field-selector", "involvedObject.name=v6-block").stdout,
            timeout=10, what="the NotEnforced event")
        assert _reaches(server, "stranger", url)
    finally:
        _delete_policies(net)


def test_port_rules_allow_those_ports_only(cluster):
    server, _, net, ips = cluster
    _policy(net, "allow-8080", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"ports": [{"protocol": "TCP", "port": 8000, "endPort": 8100}]}]})
    try:
        _expect(server, "client", f"http://{ips['web']}/", allowed=False)
        assert _reaches(server, "client", f"http://{ips['web']}:8080/")
    finally:
        _delete_policies(net)
    # A named port: the number is the target pod's containerPort of that name.
    _policy(net, "allow-http", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"ports": [{"port": "http"}]}]})
    try:
        _expect(server, "client", f"http://{ips['web']}:8080/", allowed=False)
        assert _reaches(server, "client", f"http://{ips['web']}/")
    finally:
        _delete_policies(net)


def test_an_egress_deny_blocks_the_pods_outgoing_connections(cluster):
    server, _, net, ips = cluster
    _policy(net, "client-egress", {
        "podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
        # "alt" is the peer's (web's) name for 8080.
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "alt"}]}]})
    try:
        _expect(server, "client", f"http://{ips['open']}/", allowed=False)
        assert _reaches(server, "client", f"http://{ips['web']}:8080/"), "the allowed peer and port"
        assert not _reaches(server, "client", f"http://{ips['web']}/")
        assert _reaches(server, "stranger", f"http://{ips['open']}/"), "other pods are not isolated"
        # The cluster DNS on the node stays open (see policy/ruleset.rs).
        out = server.kubectl("exec", "client", "--", "timeout", "5", "nslookup",
                             "kubernetes.default.svc.cluster.local", check=False, timeout=30)
        assert "10.43.0.1" in out.stdout, out.stdout + out.stderr
        # Other traffic to the node is egress like any other: the API server's port is closed.
        def connects(pod):
            return server.kubectl("exec", pod, "--", "timeout", "2", "nc", NODE_IP, "6443",
                                  check=False, timeout=30).returncode == 0
        assert connects("stranger") and not connects("client")
        # Ingress to the client is not restricted by an egress-only policy.
        assert f"ingress-{ips['client']}" not in _table().stdout
    finally:
        _delete_policies(net)
    _expect(server, "client", f"http://{ips['open']}/", allowed=True)


def test_disabling_network_policy_removes_the_table(cluster):
    server, _, net, ips = cluster
    _policy(net, "deny-web", DENY_WEB)
    _expect(server, "client", f"http://{ips['web']}/", allowed=False)
    server.stop()
    server.start(extra=["--node-ip", NODE_IP, "--disable", "network-policy"])
    try:
        wait_for(lambda: _table().returncode != 0, timeout=10, what="the table removed")
        _expect(server, "client", f"http://{ips['web']}/", allowed=True, timeout=30)
        readyz = server.kubectl("get", "--raw", "/readyz?verbose").stdout
        assert "network-policy" not in readyz, readyz
    finally:
        _delete_policies(net)
    server.stop()
    server.start(extra=["--node-ip", NODE_IP])
    wait_for(lambda: _table().returncode == 0, timeout=20, what="the table rebuilt")
    readyz = server.kubectl("get", "--raw", "/readyz?verbose").stdout
    assert "network-policy" in readyz, readyz
