"""PodDisruptionBudgets and the eviction subresource: the disruption controller's
status, evictions that spend it (429 once it is spent), and `kubectl drain`
honouring a budget with pods that really run.

Budget arithmetic runs on fake Node objects (the test writes pod readiness as a
kubelet would); the drain test uses the real node agent."""

import json
import os
import subprocess

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from test_workloads import set_pod_status, wait_for

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from conftest import fake_cluster

    with fake_cluster(tmp_path_factory, "disruption", 6447, {"node-a": {}, "node-b": {}}) as value:
        yield value


def ready_pod(core, name, labels, node="node-a", owner=None):
    meta = {"name": name, "labels": labels}
    if owner:
        meta["ownerReferences"] = [owner]
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    })
    set_pod_status(core, name, None, True)


def budget(policy, name, labels, **spec):
    policy.create_namespaced_pod_disruption_budget("default", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": labels}, **spec},
    })


def settled(policy, name, **expected):
    """Waits until the budget's status has the expected fields; returns the status."""
    def check():
        pdb = policy.read_namespaced_pod_disruption_budget(name, "default")
        status = pdb.status
        if status is None or status.observed_generation != pdb.metadata.generation:
            return None
        got = {k: getattr(status, k) for k in expected}
        return status if got == expected else None
    return wait_for(check, timeout=20, what=f"budget {name} status {expected}")


def evict(server, name, *extra):
    """POSTs an Eviction with curl as the admin; returns (code, Status body, headers)."""
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": name, "namespace": "default"}, **dict(extra)})
    tls = server.tls_dir
    out = subprocess.run(
        ["curl", "-sS", "--cacert", server.ca_path, "-D", "-", "-o", "-",
         "--cert", os.path.join(tls, "client-admin.crt"), "--key", os.path.join(tls, "client-admin.key"),
         "-H", "Content-Type: application/json",
         "-X", "POST", "--data", body,
         f"{server.url}/api/v1/namespaces/default/pods/{name}/eviction"],
        capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    # text mode has turned the CRLFs into LFs
    head, _, payload = out.stdout.partition("\n\n")
    code = int(head.split()[1])
    headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
               for line in head.splitlines()[1:] if ":" in line}
    return code, json.loads(payload), headers


def test_a_budget_reports_what_may_be_disrupted_and_evictions_spend_it(cluster):
    server, api = cluster
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    for name in ["web-1", "web-2", "web-3"]:
        ready_pod(core, name, {"app": "web"})
    budget(policy, "web", {"app": "web"}, minAvailable=2)
    status = settled(policy, "web", expected_pods=3, desired_healthy=2, current_healthy=3,
                     disruptions_allowed=1)
    condition = [c for c in status.conditions if c.type == "DisruptionAllowed"][0]
    assert (condition.status, condition.reason) == ("True", "SufficientPods")

    # A dry run spends nothing and deletes nothing.
    code, body, _ = evict(server, "web-1", ("deleteOptions", {"dryRun": ["All"]}))
    assert (code, body["status"]) == (201, "Success"), body
    assert core.read_namespaced_pod("web-1", "default").metadata.deletion_timestamp is None
    assert policy.read_namespaced_pod_disruption_budget("web", "default").status.disruptions_allowed == 1

    # The first eviction is allowed: the pod goes, marked as disrupted by the API.
    evicted = []

    def gone_or_going():
        try:
            pod = core.read_namespaced_pod("web-1", "default")
        except ApiException as e:
            return e.status == 404 and "deleted"
        evicted.append(pod)
        return pod.metadata.deletion_timestamp is not None and "going"

    code, body, _ = evict(server, "web-1")
    assert (code, body["status"], body["code"]) == (201, "Success", 201), body
    wait_for(gone_or_going, what="web-1 evicted")
    targets = [c for p in evicted for c in (p.status.conditions or []) if c.type == "DisruptionTarget"]
    if targets:
        assert (targets[-1].reason, targets[-1].message) == ("EvictionByEvictionAPI",
                                                             "Eviction API: evicting")

    # The budget is spent: the next eviction is refused with a retryable 429.
    settled(policy, "web", current_healthy=2, disruptions_allowed=0)
    code, body, _ = evict(server, "web-2")
    assert code == 429, body
    assert body["reason"] == "TooManyRequests" and body["message"] == VIOLATION
    assert body["details"]["causes"] == [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]
    assert core.read_namespaced_pod("web-2", "default").metadata.deletion_timestamp is None
    condition = [c for c in policy.read_namespaced_pod_disruption_budget("web", "default")
                 .status.conditions if c.type == "DisruptionAllowed"][0]
    assert (condition.status, condition.reason) == ("False", "InsufficientPods")

    # kubectl shows the budget with kube's columns.
    out = server.kubectl("get", "pdb", "web").stdout.split("\n")
    assert out[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                              "DISRUPTIONS", "AGE"], out
    assert out[1].split()[:4] == ["web", "2", "N/A", "0"], out

    # A replacement becoming Ready gives the allowance back.
    ready_pod(core, "web-4", {"app": "web"}, node="node-b")
    settled(policy, "web", current_healthy=3, disruptions_allowed=1)
    policy.delete_namespaced_pod_disruption_budget("web", "default")
    for name in ["web-2", "web-3", "web-4"]:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_max_unavailable_counts_the_controllers_scale(cluster):
    server, api = cluster
    core, policy, apps = client.CoreV1Api(api), client.PolicyV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_replica_set("default", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-a"},
                                       "containers": [{"name": "c", "image": "busybox"}]}}},
    })

    def bound_pods():
        pods = core.list_namespaced_pod("default", label_selector="app=api").items
        return len(pods) == 4 and all(p.spec.node_name for p in pods) and pods

    pods = wait_for(bound_pods, timeout=30, what="4 api pods bound")
    for pod in pods[:3]:
        set_pod_status(core, pod.metadata.name, None, True)
    budget(policy, "api", {"app": "api"}, maxUnavailable="50%")
    # 4 wanted, half may be unavailable: 2 must be healthy; 3 are.
    settled(policy, "api", expected_pods=4, desired_healthy=2, current_healthy=3,
            disruptions_allowed=1)
    apps.patch_namespaced_replica_set_scale("api", "default", {"spec": {"replicas": 6}})
    settled(policy, "api", expected_pods=6, desired_healthy=3, current_healthy=3,
            disruptions_allowed=0)
    apps.delete_namespaced_replica_set("api", "default")
    policy.delete_namespaced_pod_disruption_budget("api", "default")


def test_unmanaged_pods_and_overlapping_budgets_are_reported(cluster):
    server, api = cluster
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    ready_pod(core, "lone", {"app": "lone"})
    budget(policy, "lone-a", {"app": "lone"}, maxUnavailable=1)

    def warned():
        events = core.list_namespaced_event(
            "default", field_selector="involvedObject.name=lone-a").items
        return [e for e in events if e.reason == "UnmanagedPods"]

    event = wait_for(warned, what="UnmanagedPods event")[0]
    assert event.type == "Warning" and "were found to be unmanaged" in event.message
    assert "selector: app=lone" in event.message

    budget(policy, "lone-b", {"app": "lone"}, minAvailable=0)
    settled(policy, "lone-b", disruptions_allowed=1)
    code, body, _ = evict(server, "lone")
    assert code == 500, body
    assert body["message"] == ("This pod has more than one PodDisruptionBudget, which the "
                               "eviction subresource does not support.")
    assert core.read_namespaced_pod("lone", "default").metadata.deletion_timestamp is None

    code, body, _ = evict(server, "lone", ("metadata", {"name": "other"}))
    assert (code, body["reason"]) == (400, "BadRequest"), body
    assert body["message"] == "name in URL does not match name in Eviction object"
    code, body, _ = evict(server, "nobody")
    assert (code, body["reason"]) == (404, "NotFound"), body

    for name in ["lone-a", "lone-b"]:
        policy.delete_namespaced_pod_disruption_budget(name, "default")
    # With no budget left, eviction is a plain delete.
    code, body, _ = evict(server, "lone")
    assert code == 201, body
    wait_for(lambda: not core.list_namespaced_pod("default", label_selector="app=lone").items,
             what="lone deleted")


def test_a_budget_that_is_not_yet_observed_asks_to_retry(cluster):
    server, api = cluster
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    ready_pod(core, "fresh", {"app": "fresh"})
    # Written straight into the spec and status together, so the controller
    # has not caught up with generation 2 when the eviction arrives.
    budget(policy, "fresh", {"app": "fresh"}, minAvailable=0)
    settled(policy, "fresh", disruptions_allowed=1)
    policy.patch_namespaced_pod_disruption_budget("fresh", "default", {"spec": {"minAvailable": 1}})
    code, body, headers = evict(server, "fresh")
    if code == 429:
        assert body["message"] == VIOLATION
        causes = body["details"]["causes"][0]["message"]
        assert causes in ("The disruption budget fresh is still being processed by the server.",
                          "The disruption budget fresh needs 1 healthy pods and has 1 currently")
        if "still being processed" in causes:
            assert body["details"]["retryAfterSeconds"] == 10 and headers["retry-after"] == "10"
    else:
        raise AssertionError(f"eviction against minAvailable 1 of 1 succeeded: {code} {body}")
    policy.delete_namespaced_pod_disruption_budget("fresh", "default")
    core.delete_namespaced_pod("fresh", "default", grace_period_seconds=0)


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_kubectl_drain_honours_a_budget(tmp_path_factory, version):
    """A Deployment of 2 with `maxUnavailable: 1` on the only node: drain evicts
    one pod, then (the replacement cannot be scheduled on the cordoned node) is
    refused the second and says why; without the budget it finishes."""
    from conftest import node_agent

    with node_agent(tmp_path_factory) as (server, core):
        api = core.api_client
        apps, policy = client.AppsV1Api(api), client.PolicyV1Api(api)
        node = wait_for(lambda: core.list_node().items, what="node")[0].metadata.name
        apps.create_namespaced_deployment("default", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "web", "image": "busybox",
                                                           "command": ["sleep", "3600"]}]}}},
        })
        budget(policy, "web", {"app": "web"}, maxUnavailable=1)
        settled(policy, "web", expected_pods=2, current_healthy=2, disruptions_allowed=1)
        before = {p.metadata.name for p in core.list_namespaced_pod("default").items}

        drain = server.kubectl("drain", node, "--ignore-daemonsets", "--timeout=12s",
                               version=version, check=False, timeout=60)
        assert drain.returncode != 0, drain.stdout
        assert "Cannot evict pod as it would violate the pod's disruption budget" in drain.stderr, \
            drain.stderr
        assert f"node/{node} cordoned" in drain.stdout
        pods = core.list_namespaced_pod("default").items
        survivors = {p.metadata.name for p in pods if p.metadata.name in before}
        assert len(survivors) == 1, (before, [p.metadata.name for p in pods])
        replacement = [p for p in pods if p.metadata.name not in before]
        assert replacement and all(p.status.phase == "Pending" for p in replacement)

        # Without a budget the drain goes through.
        policy.delete_namespaced_pod_disruption_budget("web", "default")
        drain = server.kubectl("drain", node, "--ignore-daemonsets", "--timeout=40s",
                               version=version, check=False, timeout=90)
        assert drain.returncode == 0, drain.stderr
        assert f"node/{node} drained" in drain.stdout
        assert not [p for p in core.list_namespaced_pod("default").items
                    if p.metadata.name in survivors]
        server.kubectl("uncordon", node)
        apps.delete_namespaced_deployment("web", "default")
        wait_for(lambda: not core.list_namespaced_pod("default").items, timeout=30,
                 what="the Deployment's pods removed")
