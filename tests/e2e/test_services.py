"""Services through kite's nftables proxy: a ClusterIP reaches a busybox httpd
pod from another pod, a NodePort answers on the node address, a port without
endpoints refuses at once, and `kubernetes.default` (10.43.0.1:443) reaches
the apiserver from a pod.

The node's address is on a veth of the test's own network
namespace (TEST-NET-1, with the namespace's default route on it, so nothing
can leave the namespace)."""

import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from kubernetes import client

from conftest import node_with_uplink
from test_kubelet import pod_spec, status_of, wait_for

NODE_IP = "192.0.2.10"
DUMMY = "kite-e2e0"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with node_with_uplink(tmp_path_factory, NODE_IP, DUMMY) as (server, core):
        yield server, core.api_client, core


def _web(core, name):
    body = pod_spec(name, f"mkdir -p /www && echo hello-from-{name} > /www/index.html && "
                          "exec httpd -f -p 80 -h /www")
    body["metadata"]["labels"] = {"app": "web"}
    core.create_namespaced_pod("default", body)
    return wait_for(lambda: (p := status_of(core, name)[0]) and p.status.pod_ip
                    and (status_of(core, name)[1] or None) and status_of(core, name)[1].ready and p,
                    what=f"{name} ready")


def _service_with_slice(api, core, name, endpoints, node_port=None, load_balancer_port=None,
                        spec_extra=None, node_names=None):
    """A Service without a selector and the EndpointSlice a user writes for it
    (`node_names[i]`, when given, is the node endpoint i claims to run on)."""
    port = {"name": "http", "port": load_balancer_port or 80, "targetPort": 80, "protocol": "TCP"}
    spec = {"ports": [port], **(spec_extra or {})}
    if node_port:
        spec["type"] = "NodePort"
        port["nodePort"] = node_port
    if load_balancer_port:
        spec["type"] = "LoadBalancer"
    svc = core.create_namespaced_service("default", {"metadata": {"name": name}, "spec": spec})
    slice_endpoints = [{"addresses": [ip_], "conditions": {"ready": True}} for ip_ in endpoints]
    for endpoint, node in zip(slice_endpoints, node_names or []):
        endpoint["nodeName"] = node
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", {
        "metadata": {"name": f"{name}-manual", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": slice_endpoints,
    })
    # The proxy programs it within moments; wait for that rather than race it.
    wanted = "goto svc-" if endpoints else "goto reject-chain"
    wait_for(lambda: f"{svc.spec.cluster_ip} . tcp . {port['port']} : {wanted}" in _rules(), timeout=10,
             what="service programmed")
    return svc.spec.cluster_ip


def _rules():
    return subprocess.run(["nft", "list", "table", "ip", "kite-proxy"], capture_output=True,
                          text=True).stdout


def _fetch_from_pod(core, name, url):
    """Runs wget in a new pod; returns (phase, what it fetched or printed, seconds)."""
    # Busybox's date has no sub-second format (and its wget -T crashes): time with /proc/uptime.
    core.create_namespaced_pod("default", pod_spec(
        name, f"s=$(cut -d' ' -f1 /proc/uptime); wget -q -O /tmp/out {url} 2>/tmp/err; code=$?; "
              "e=$(cut -d' ' -f1 /proc/uptime); { cat /tmp/out /tmp/err; echo took=$s:$e; } "
              "> /dev/termination-log; exit $code", restart="Never"))
    pod = wait_for(lambda: (p := status_of(core, name)[0]).status.phase in ("Succeeded", "Failed") and p,
                   timeout=40, what=f"{name} finished")
    message = status_of(core, name)[1].state.terminated.message or ""
    took = None
    if "took=" in message:
        start, end = message.rsplit("took=", 1)[1].split(":")
        took = float(end) - float(start)
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    return pod.status.phase, message, took


def test_a_cluster_ip_reaches_its_endpoints_from_a_pod(cluster):
    _, api, core = cluster
    web1 = _web(core, "web1")
    web2 = _web(core, "web2")
    cluster_ip = _service_with_slice(api, core, "web", [web1.status.pod_ip, web2.status.pod_ip])
    seen = set()
    for i in range(8):
        phase, message, _ = _fetch_from_pod(core, f"client{i}", f"http://{cluster_ip}/")
        assert phase == "Succeeded", message
        seen.add(message.split()[0])
        if seen == {"hello-from-web1", "hello-from-web2"}:
            break
    assert seen == {"hello-from-web1", "hello-from-web2"}, seen


def test_a_port_without_endpoints_refuses_at_once(cluster):
    _, api, core = cluster
    cluster_ip = _service_with_slice(api, core, "empty", [])
    phase, message, took = _fetch_from_pod(core, "client-empty", f"http://{cluster_ip}/")
    assert phase == "Failed"
    assert "refused" in message.lower(), message
    assert took is not None and took < 1.0, message
    # From the node, too.
    with socket.socket() as s:
        s.settimeout(5)
        started = time.monotonic()
        assert s.connect_ex((cluster_ip, 80)) != 0
        assert time.monotonic() - started < 1.0


def test_a_node_port_answers_on_the_node_address(cluster):
    _, api, core = cluster
    web = core.read_namespaced_pod("web1", "default")
    _service_with_slice(api, core, "web-np", [web.status.pod_ip], node_port=30080)
    with urllib.request.urlopen(f"http://{NODE_IP}:30080/", timeout=5) as r:
        assert r.read().decode().strip() == "hello-from-web1"


def _external_ips(server, name):
    out = server.kubectl("get", "service", name, "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}")
    return out.stdout.split()


def test_a_load_balancer_service_gets_the_node_address_and_answers_there(cluster):
    server, api, core = cluster
    web = core.read_namespaced_pod("web1", "default")
    _service_with_slice(api, core, "web-lb", [web.status.pod_ip], load_balancer_port=8081)
    wait_for(lambda: _external_ips(server, "web-lb") == [NODE_IP], timeout=10, what="web-lb EXTERNAL-IP")
    table = server.kubectl("get", "service", "web-lb").stdout
    assert NODE_IP in table and "8081:3" in table, table
    with urllib.request.urlopen(f"http://{NODE_IP}:8081/", timeout=5) as r:
        assert r.read().decode().strip() == "hello-from-web1"

    # A second LoadBalancer on the same port cannot answer there: it stays pending.
    _service_with_slice(api, core, "web-lb2", [web.status.pod_ip], load_balancer_port=8081)
    wait_for(lambda: "SyncLoadBalancerFailed" in server.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=web-lb2").stdout, timeout=10,
        what="the port conflict reported")
    assert _external_ips(server, "web-lb2") == []
    assert "<pending>" in server.kubectl("get", "service", "web-lb2").stdout
    # Once the first goes, the second takes the port.
    server.kubectl("delete", "service", "web-lb")
    wait_for(lambda: _external_ips(server, "web-lb2") == [NODE_IP], timeout=10, what="web-lb2 EXTERNAL-IP")
    server.kubectl("delete", "service", "web-lb2")


def test_pods_reach_the_apiserver_as_kubernetes_default(cluster):
    _, _, core = cluster
    phase, message, _ = _fetch_from_pod(core, "client-api", "--no-check-certificate https://10.43.0.1/version")
    # busybox's wget offers TLS cipher suites kite's rustls does not accept, so
    # the apiserver answers the handshake with an alert: that answer (or an
    # HTTP one, from a better client) shows 10.43.0.1:443 reached it.
    reached = ("TLS error from peer" in message or "gitVersion" in message
               or "401" in message or "403" in message)
    assert reached, message
    assert "No route" not in message and "refused" not in message.lower(), message


def test_a_deployment_behind_a_selector_service_is_balanced_and_scaling_to_zero_refuses(cluster):
    """The EndpointSlice controller, the proxy, cluster DNS and the kubelet
    together: 30 requests from a client pod, by the Service's short and full
    names, reach all 3 replicas; with 0 replicas a request fails at once."""
    _, api, core = cluster
    apps = client.AppsV1Api(api)
    template = pod_spec("unused", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")
    template["metadata"] = {"labels": {"app": "web3"}}
    template["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 80}, "periodSeconds": 1}
    apps.create_namespaced_deployment("default", {
        "metadata": {"name": "web3"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web3"}},
                 "template": {"metadata": template["metadata"], "spec": template["spec"]}}})
    svc = core.create_namespaced_service("default", {
        "metadata": {"name": "web3"},
        "spec": {"selector": {"app": "web3"}, "ports": [{"port": 80, "targetPort": 80}]}})
    ip_ = svc.spec.cluster_ip

    def ready_endpoints():
        slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=web3").items
        return sum(1 for s in slices for e in (s.endpoints or []) if e.conditions.ready)

    wait_for(lambda: ready_endpoints() == 3, timeout=60, what="3 ready endpoints")
    wait_for(lambda: _rules().count("dnat to 10.42.") >= 3 + 2, timeout=10, what="endpoints programmed")
    core.create_namespaced_pod("default", pod_spec(
        "client-web3", "for i in $(seq 15); do wget -q -O - http://web3/; "
                       "wget -q -O - http://web3.default.svc.cluster.local/; done", restart="Never"))
    done = wait_for(lambda: (p := status_of(core, "client-web3")[0]).status.phase in ("Succeeded", "Failed")
                    and p, timeout=60, what="client-web3 finished")
    answers = core.read_namespaced_pod_log("client-web3", "default").split()
    core.delete_namespaced_pod("client-web3", "default", grace_period_seconds=0)
    assert done.status.phase == "Succeeded", answers
    pods = {p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=web3").items}
    assert len(answers) == 30 and set(answers) == pods, (answers, pods)

    apps.patch_namespaced_deployment_scale("web3", "default", {"spec": {"replicas": 0}})
    wait_for(lambda: f"{ip_} . tcp . 80 : goto reject-chain" in _rules(), timeout=30,
             what="service without endpoints")
    phase, message, took = _fetch_from_pod(core, "client-web3-none", "http://web3/")
    assert phase == "Failed" and "refused" in message.lower(), message
    assert took is not None and took < 1.0, message
    apps.delete_namespaced_deployment("web3", "default")


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode().strip()


def test_client_ip_session_affinity_keeps_a_client_on_one_endpoint(cluster):
    _, api, core = cluster
    web1 = core.read_namespaced_pod("web1", "default")
    web2 = core.read_namespaced_pod("web2", "default")
    both = [web1.status.pod_ip, web2.status.pod_ip]
    plain = _service_with_slice(api, core, "no-affinity", both)
    sticky = _service_with_slice(api, core, "sticky", both, spec_extra={
        "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}})
    # Without affinity 20 requests reach both pods (a 2^-19 chance of a false failure)...
    assert {_get(f"http://{plain}/") for _ in range(20)} == {"hello-from-web1", "hello-from-web2"}
    # ...with it, every request of this client reaches the first one it was sent to.
    assert len({_get(f"http://{sticky}/") for _ in range(20)}) == 1
    assert "timeout 1m" in _rules() and "update @aff-" in _rules()
    core.delete_namespaced_service("no-affinity", "default")
    core.delete_namespaced_service("sticky", "default")


def test_external_traffic_policy_local_uses_only_this_nodes_endpoints(cluster):
    """Endpoint 2 claims another node: a NodePort with the Local policy never
    sends there, while the ClusterIP (internal traffic, Cluster policy) does."""
    _, api, core = cluster
    web1 = core.read_namespaced_pod("web1", "default")
    web2 = core.read_namespaced_pod("web2", "default")
    node = web1.spec.node_name
    cluster_ip = _service_with_slice(
        api, core, "local", [web1.status.pod_ip, web2.status.pod_ip], node_port=30081,
        spec_extra={"externalTrafficPolicy": "Local"}, node_names=[node, "another-node"])
    assert {_get(f"http://{NODE_IP}:30081/") for _ in range(20)} == {"hello-from-web1"}
    assert {_get(f"http://{cluster_ip}/") for _ in range(20)} == {"hello-from-web1", "hello-from-web2"}
    core.delete_namespaced_service("local", "default")


def test_each_node_component_reports_in_readyz(cluster):
    server, _, _ = cluster
    code, body, _ = server.curl("/readyz?verbose")
    assert code == 200, body
    for component in ["kubelet", "kube-proxy", "cluster-dns", "kube-controller-manager"]:
        assert f"[+]{component} ok" in body, body


def _rule_lines(text):
    """A ruleset without handles or counters, as a set of lines."""
    return {line.strip() for line in text.splitlines() if line.strip()}


def test_a_restart_rebuilds_the_rules_without_stale_ones_and_keeps_pod_ips_unique(cluster):
    """Runs last: kill -9 of kite, rules left in the table that no Service
    has, then a restart. The table is rewritten to exactly what the Services
    say, and a new pod gets an address no running pod has."""
    server, api, core = cluster
    web1 = core.read_namespaced_pod("web1", "default")
    _service_with_slice(api, core, "kept", [web1.status.pod_ip])
    before = _rule_lines(_rules())
    server.stop(signal.SIGKILL)
    # What a crash in the middle of an update, or a Service deleted by another
    # server while this one was down, would leave behind.
    subprocess.run(["nft", "add", "chain", "ip", "kite-proxy", "svc-stale"], check=True)
    subprocess.run(["nft", "add", "element", "ip", "kite-proxy", "service-ips",
                    "{ 10.43.250.250 . tcp . 80 : goto svc-stale }"], check=True)
    assert "svc-stale" in _rules()
    server.start(extra=["--node-ip", NODE_IP])
    wait_for(lambda: "svc-stale" not in _rules(), timeout=20, what="the stale chain removed")
    assert _rule_lines(_rules()) == before
    # The cluster DNS finds its Service from the first run instead of retrying to create it.
    time.sleep(1)
    assert "cannot publish the kube-dns Service" not in server.read_log()
    assert _get(f"http://{core.read_namespaced_service('kept', 'default').spec.cluster_ip}/") \
        == "hello-from-web1"

    running = {p.status.pod_ip for p in core.list_namespaced_pod("default").items if p.status.pod_ip}
    assert {web1.status.pod_ip} <= running
    fresh = []
    for i in range(3):
        fresh.append(_web(core, f"after-restart{i}").status.pod_ip)
    assert len(set(fresh)) == 3 and not set(fresh) & running, (fresh, running)
    for i in range(3):
        core.delete_namespaced_pod(f"after-restart{i}", "default", grace_period_seconds=0)
    core.delete_namespaced_service("kept", "default")
