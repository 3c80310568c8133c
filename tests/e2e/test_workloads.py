"""Workload controllers inside `kite server`: EndpointSlices and Endpoints for
Services, Jobs, DaemonSets, StatefulSets and CronJobs, driven by real kubectl and
the Python client. Pods are placed on fake Node objects whose status the tests
write themselves (as a kubelet would), so every code path that needs a pod IP or
readiness is exercised without a pod network."""

import json
import os
import subprocess
import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


def wait_for(check, timeout=20, interval=0.1, what="condition"):
    """Polls `check` until it returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def make_node(core, name, labels=None, taints=None, ready="True"):
    core.create_node({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
    })
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
    core.patch_node_status(name, {"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                        "message": "fake node for tests"}],
    }})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from conftest import FakeKubelets, KiteServer

    server = KiteServer(str(tmp_path_factory.mktemp("workloads")))
    server.start()
    kubelets = None
    try:
        api = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api)
        for name in ["node-a", "node-b"]:
            make_node(core, name)
        kubelets = FakeKubelets(api, ["node-a", "node-b", "node-c", "node-d",
                                     "edge-1", "edge-2", "edge-3", "core-1"])
        wait_for(lambda: core.list_namespaced_service_account(
            "default", field_selector="metadata.name=default").items, what="default SA")
        yield server, api
    finally:
        if kubelets:
            kubelets.stop()
        server.stop()


def running_pod(core, name, labels, ip, ready=True, node="node-a", ports=None, **spec):
    """Creates a pod bound to a fake node and writes the status its kubelet would."""
    container = {"name": "c", "image": "busybox"}
    if ports:
        container["ports"] = ports
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [container], **spec},
    })
    set_pod_status(core, name, ip, ready)


def set_pod_status(core, name, ip, ready):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"phase": "Running",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                              "lastTransitionTime": now}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    core.patch_namespaced_pod_status(name, "default", {"status": status})


def slices_of(discovery, service):
    return discovery.list_namespaced_endpoint_slice(
        "default", label_selector=f"kubernetes.io/service-name={service}").items


def endpoints_by_ip(slices):
    return {addr: e for s in slices for e in (s.endpoints or []) for addr in e.addresses}


def conditions(e):
    return (e.conditions.ready, e.conditions.serving, e.conditions.terminating)


def test_a_service_gets_endpoint_slices_and_endpoints_of_its_pods(cluster):
    server, api = cluster
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    http = [{"name": "http", "containerPort": 8080}]
    running_pod(core, "web-1", {"app": "web"}, "10.42.0.11", ports=http)
    running_pod(core, "web-2", {"app": "web"}, "10.42.0.12", ready=False, node="node-b", ports=http)
    running_pod(core, "web-3", {"app": "web"}, None, ports=http)  # no IP yet: no endpoint
    running_pod(core, "other", {"app": "other"}, "10.42.0.13", ports=http)
    service = core.create_namespaced_service("default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    })

    def two_endpoints():
        slices = slices_of(discovery, "web")
        return len(endpoints_by_ip(slices)) == 2 and slices

    slices = wait_for(two_endpoints, what="slice with two endpoints")
    assert len(slices) == 1
    s = slices[0]
    assert s.metadata.name.startswith("web-") and s.metadata.name != "web-"
    assert s.metadata.labels == {"kubernetes.io/service-name": "web", "team": "blue",
                                 MANAGED_BY: "endpointslice-controller.k8s.io"}
    owner = s.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Service", "web", service.metadata.uid, True)
    assert TRIGGER in s.metadata.annotations
    assert s.address_type == "IPv4"
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "TCP")]
    eps = endpoints_by_ip(slices)
    assert conditions(eps["10.42.0.11"]) == (True, True, False)
    assert conditions(eps["10.42.0.12"]) == (False, False, False)
    assert eps["10.42.0.11"].node_name == "node-a" and eps["10.42.0.12"].node_name == "node-b"
    ref = eps["10.42.0.11"].target_ref
    assert (ref.kind, ref.name, ref.namespace) == ("Pod", "web-1", "default")

    ep = wait_for(lambda: (e := core.read_namespaced_endpoints("web", "default")).subsets and e,
                  what="Endpoints")
    assert [a.ip for a in ep.subsets[0].addresses] == ["10.42.0.11"]
    assert [a.ip for a in ep.subsets[0].not_ready_addresses] == ["10.42.0.12"]
    assert [(p.name, p.port) for p in ep.subsets[0].ports] == [("http", 8080)]
    assert ep.subsets[0].addresses[0].target_ref.name == "web-1"
    assert ep.metadata.labels == {"team": "blue"}
    assert TRIGGER in ep.metadata.annotations
    out = server.kubectl("get", "endpoints", "web", "--no-headers").stdout
    assert "10.42.0.11:8080" in out

    # web-2 becomes ready, web-3 gets an IP: both appear as ready.
    set_pod_status(core, "web-2", "10.42.0.12", True)
    set_pod_status(core, "web-3", "10.42.0.14", True)
    wait_for(lambda: sorted(ip for ip, e in endpoints_by_ip(slices_of(discovery, "web")).items()
                            if e.conditions.ready) == ["10.42.0.11", "10.42.0.12", "10.42.0.14"],
             what="three ready endpoints")
    wait_for(lambda: sorted(a.ip for a in core.read_namespaced_endpoints("web", "default")
                            .subsets[0].addresses or []) == ["10.42.0.11", "10.42.0.12", "10.42.0.14"],
             what="three ready addresses")
    assert len(slices_of(discovery, "web")) == 1  # updated in place, not replaced


def test_terminating_pods_stay_in_slices_but_leave_endpoints(cluster):
    server, api = cluster
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    core.create_namespaced_service("default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "drain"},
        "spec": {"selector": {"app": "drain"}, "ports": [{"port": 80, "targetPort": 9376}]},
    })
    running_pod(core, "drain-1", {"app": "drain"}, "10.42.1.1")
    # A finalizer keeps the pod terminating after its (fake) kubelet lets go.
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "drain-2", "labels": {"app": "drain"}, "finalizers": ["kite.test/hold"]},
        "spec": {"nodeName": "node-c", "containers": [{"name": "c", "image": "busybox"}]},
    })
    set_pod_status(core, "drain-2", "10.42.1.2", True)
    wait_for(lambda: len(endpoints_by_ip(slices_of(discovery, "drain"))) == 2, what="two endpoints")
    core.delete_namespaced_pod("drain-2", "default")
    eps = wait_for(lambda: (e := endpoints_by_ip(slices_of(discovery, "drain")))
                   and e["10.42.1.2"].conditions.terminating and e, what="terminating endpoint")
    assert conditions(eps["10.42.1.2"]) == (False, True, True)
    ports = slices_of(discovery, "drain")[0].ports
    assert [(p.name, p.port) for p in ports] == [("", 9376)]
    wait_for(lambda: [a.ip for s in core.read_namespaced_endpoints("drain", "default").subsets
                      for a in s.addresses or []] == ["10.42.1.1"], what="Endpoints without it")
    core.patch_namespaced_pod("drain-2", "default", {"metadata": {"finalizers": None}})
    wait_for(lambda: list(endpoints_by_ip(slices_of(discovery, "drain"))) == ["10.42.1.1"],
             what="endpoint removed with the pod")


def test_headless_service_publishes_hostnames_and_not_ready_addresses(cluster):
    server, api = cluster
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    core.create_namespaced_service("default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "pg"},
        "spec": {"clusterIP": "None", "selector": {"app": "pg"}, "publishNotReadyAddresses": True,
                 "ports": [{"name": "pg", "port": 5432}]},
    })
    running_pod(core, "pg-0", {"app": "pg"}, "10.42.2.1", ready=False, hostname="pg-0", subdomain="pg")
    running_pod(core, "pg-x", {"app": "pg"}, "10.42.2.2", hostname="pg-x", subdomain="elsewhere")
    eps = wait_for(lambda: (e := endpoints_by_ip(slices_of(discovery, "pg"))) and len(e) == 2 and e,
                   what="two endpoints")
    assert eps["10.42.2.1"].hostname == "pg-0"
    assert eps["10.42.2.2"].hostname is None
    assert conditions(eps["10.42.2.1"]) == (True, False, False)
    s = slices_of(discovery, "pg")[0]
    assert s.metadata.labels["service.kubernetes.io/headless"] == ""
    ep = wait_for(lambda: (e := core.read_namespaced_endpoints("pg", "default")).subsets and e,
                  what="Endpoints")
    addresses = {a.ip: a for a in ep.subsets[0].addresses}
    assert set(addresses) == {"10.42.2.1", "10.42.2.2"}
    assert not ep.subsets[0].not_ready_addresses
    assert addresses["10.42.2.1"].hostname == "pg-0"
    assert ep.metadata.labels["service.kubernetes.io/headless"] == ""


def test_a_service_without_pods_has_a_placeholder_and_cleanup_follows_deletion(cluster):
    server, api = cluster
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    server.kubectl("create", "service", "clusterip", "lonely", "--tcp=80:8080")
    slices = wait_for(lambda: slices_of(discovery, "lonely"), what="placeholder slice")
    assert len(slices) == 1 and not slices[0].endpoints
    ep = wait_for(lambda: core.list_namespaced_endpoints(
        "default", field_selector="metadata.name=lonely").items, what="empty Endpoints")
    assert not ep[0].subsets
    server.kubectl("delete", "service", "lonely")
    wait_for(lambda: not slices_of(discovery, "lonely"), what="slices garbage-collected")
    wait_for(lambda: not core.list_namespaced_endpoints(
        "default", field_selector="metadata.name=lonely").items, what="Endpoints deleted")


def test_selectorless_services_are_left_to_their_owner(cluster):
    server, api = cluster
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    core.create_namespaced_service("default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
        "spec": {"ports": [{"port": 80}]},
    })
    core.create_namespaced_endpoints("default", {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}],
    })
    time.sleep(1)
    ep = core.read_namespaced_endpoints("external", "default")
    assert [a.ip for a in ep.subsets[0].addresses] == ["192.0.2.1"]
    assert not [s for s in slices_of(discovery, "external")
                if (s.metadata.labels or {}).get(MANAGED_BY) == "endpointslice-controller.k8s.io"]


def test_the_kubernetes_service_points_at_the_apiserver(cluster):
    server, api = cluster
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == "10.43.0.1" and svc.spec.ports[0].port == 443
    ep = core.read_namespaced_endpoints("kubernetes", "default")
    assert ep.subsets[0].ports[0].port == server.port
    slices = slices_of(discovery, "kubernetes")
    assert len(slices) == 1 and slices[0].metadata.name == "kubernetes"
    assert slices[0].ports[0].port == server.port
    assert slices[0].endpoints[0].addresses == [a.ip for a in ep.subsets[0].addresses]


# ---------------------------------------------------------------- Jobs

def job_body(name, command="true", **spec):
    template = spec.pop("template", {})
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "busybox",
                                                       "command": ["sh", "-c", command]}],
                                       **template}},
                 **spec},
    }


def job_pods(core, name):
    return core.list_namespaced_pod("default", label_selector=f"batch.kubernetes.io/job-name={name}").items


def job_condition(batch, name, type_):
    job = batch.read_namespaced_job(name, "default")
    found = [c for c in job.status.conditions or [] if c.type == type_ and c.status == "True"]
    return found and (job, found[0])


def finish_pod(core, pod, phase):
    core.patch_namespaced_pod_status(pod.metadata.name, "default", {"status": {"phase": phase}})


def job_events(core, name):
    return [(e.reason, e.message) for e in core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}").items]


def test_an_indexed_job_completes_when_every_index_succeeded(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body(
        "idx", completions=3, parallelism=2, completionMode="Indexed"))
    pods = wait_for(lambda: (p := job_pods(core, "idx")) and len(p) == 2 and p, what="two pods")
    indexes = sorted(p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1"]
    for pod in pods:
        i = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == i
        assert pod.metadata.name.startswith(f"idx-{i}-")
        assert pod.spec.hostname == f"idx-{i}"
        assert "batch.kubernetes.io/job-tracking" in pod.metadata.finalizers
        env = pod.spec.containers[0].env[0]
        assert env.name == "JOB_COMPLETION_INDEX"
        assert env.value_from.field_ref.field_path == \
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("Job", "idx", True)
    job = wait_for(lambda: (j := batch.read_namespaced_job("idx", "default")).status.active == 2 and j,
                   what="status.active")
    assert job.status.start_time is not None
    zero = next(p for p in pods if p.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "0")
    finish_pod(core, zero, "Succeeded")
    # Index 2 starts in its place; the counted pod loses its finalizer but stays.
    wait_for(lambda: "2" in [p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
                             for p in job_pods(core, "idx")], what="index 2 started")
    wait_for(lambda: not core.read_namespaced_pod(zero.metadata.name, "default").metadata.finalizers,
             what="finalizer removed")
    job = wait_for(lambda: (j := batch.read_namespaced_job("idx", "default")).status.succeeded == 1 and j,
                   what="one succeeded")
    assert job.status.completed_indexes == "0"
    for pod in job_pods(core, "idx"):
        if pod.status.phase != "Succeeded":
            finish_pod(core, pod, "Succeeded")
    job, complete = wait_for(lambda: job_condition(batch, "idx", "Complete"), what="Complete")
    assert complete.reason == "CompletionsReached"
    assert job.status.succeeded == 3 and job.status.active == 0
    assert job.status.completed_indexes == "0-2"
    assert job.status.completion_time is not None
    assert "SuccessCriteriaMet" in [c.type for c in job.status.conditions]
    wait_for(lambda: ("Completed", "Job completed") in job_events(core, "idx"), what="Completed event")
    created = [m for r, m in job_events(core, "idx") if r == "SuccessfulCreate"]
    assert len(created) == 3 and all(m.startswith("Created pod: idx-") for m in created)
    out = server.kubectl("get", "job", "idx", "--no-headers").stdout
    assert "Complete" in out and "3/3" in out


def test_a_suspended_job_starts_no_pods_until_resumed(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("later", suspend=True, parallelism=2, completions=2))
    job, suspended = wait_for(lambda: job_condition(batch, "later", "Suspended"), what="Suspended")
    assert suspended.reason == "JobSuspended" and suspended.message == "Job suspended"
    assert not job_pods(core, "later") and job.status.start_time is None
    batch.patch_namespaced_job("later", "default", {"spec": {"suspend": False}})
    wait_for(lambda: len(job_pods(core, "later")) == 2, what="pods after resume")
    job = batch.read_namespaced_job("later", "default")
    cond = next(c for c in job.status.conditions if c.type == "Suspended")
    assert (cond.status, cond.reason) == ("False", "JobResumed")
    assert job.status.start_time is not None
    # Suspending again stops the pods.
    batch.patch_namespaced_job("later", "default", {"spec": {"suspend": True}})
    wait_for(lambda: not job_pods(core, "later"), what="pods removed on suspend")
    assert ("Suspended", "Job suspended") in job_events(core, "later")
    assert ("Resumed", "Job resumed") in job_events(core, "later")


def test_a_job_past_its_active_deadline_fails(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("slow", activeDeadlineSeconds=2))
    wait_for(lambda: job_pods(core, "slow"), what="a pod")
    job, failed = wait_for(lambda: job_condition(batch, "slow", "Failed"), timeout=30, what="Failed")
    assert (failed.reason, failed.message) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    assert "FailureTarget" in [c.type for c in job.status.conditions]
    assert job.status.active == 0 and job.status.failed == 1
    wait_for(lambda: not job_pods(core, "slow"), what="pod deleted")
    assert ("DeadlineExceeded", "Job was active longer than specified deadline") in job_events(core, "slow")


def test_failed_pods_are_replaced_until_the_backoff_limit(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("flaky", backoffLimit=0))
    pod = wait_for(lambda: job_pods(core, "flaky"), what="a pod")[0]
    finish_pod(core, pod, "Failed")
    job, failed = wait_for(lambda: job_condition(batch, "flaky", "Failed"), what="Failed")
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert job.status.failed == 1 and job.status.succeeded == 0
    assert len(job_pods(core, "flaky")) == 1  # no replacement


def fail_pod_with(core, pod, exit_code, conditions=()):
    core.patch_namespaced_pod_status(pod.metadata.name, "default", {"status": {
        "phase": "Failed",
        "conditions": [{"type": t, "status": "True"} for t in conditions],
        "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": False,
                               "restartCount": 0, "state": {"terminated": {"exitCode": exit_code}}}]}})


def test_a_pod_failure_policy_ignores_disruptions_and_fails_on_a_fatal_exit_code(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    policy = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
    ]}
    batch.create_namespaced_job("default", job_body("picky", backoffLimit=3, podFailurePolicy=policy))
    first = wait_for(lambda: job_pods(core, "picky"), what="a pod")[0]
    # A disrupted pod is replaced and not counted against the backoff limit.
    fail_pod_with(core, first, 137, conditions=["DisruptionTarget"])
    second = wait_for(lambda: [p for p in job_pods(core, "picky")
                               if p.metadata.uid != first.metadata.uid], what="a replacement")[0]
    job = batch.read_namespaced_job("picky", "default")
    assert not job.status.failed, job.status
    # Exit code 42 is fatal: the Job fails at once, whatever backoffLimit says.
    fail_pod_with(core, second, 42)
    job, failed = wait_for(lambda: job_condition(batch, "picky", "Failed"), what="Failed")
    assert failed.reason == "PodFailurePolicy"
    assert failed.message == ("Container c for pod default/" + second.metadata.name +
                              " failed with exit code 42 matching FailJob rule at index 1")
    assert job.status.failed == 1


INDEX = "batch.kubernetes.io/job-completion-index"


def active_of_index(core, name, index):
    return [p for p in job_pods(core, name) if p.metadata.annotations[INDEX] == str(index)
            and p.status.phase not in ("Failed", "Succeeded") and not p.metadata.deletion_timestamp]


def test_backoff_limit_per_index_fails_indexes_one_by_one(cluster):
    """backoffLimitPerIndex 1: index 0 gets one more try, then fails; exit 42
    fails index 1 at once (FailIndex); index 2 succeeds; the Job then fails
    with FailedIndexes. Pods carry their index's failure count."""
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    policy = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]}
    batch.create_namespaced_job("default", job_body(
        "perindex", completions=3, parallelism=3, completionMode="Indexed", backoffLimitPerIndex=1,
        podFailurePolicy=policy))
    first = wait_for(lambda: active_of_index(core, "perindex", 0), what="index 0")[0]
    assert first.metadata.annotations["batch.kubernetes.io/job-index-failure-count"] == "0"
    # The pods are created before the status that goes with them is written.
    job = wait_for(lambda: (j := batch.read_namespaced_job("perindex", "default")).status.failed_indexes == ""
                   and j, what="failedIndexes")
    assert job.spec.backoff_limit == 2147483647
    fail_pod_with(core, first, 1)
    retry = wait_for(lambda: [p for p in active_of_index(core, "perindex", 0)
                              if p.metadata.uid != first.metadata.uid], what="index 0 retried")[0]
    assert retry.metadata.annotations["batch.kubernetes.io/job-index-failure-count"] == "1"
    fail_pod_with(core, retry, 1)
    wait_for(lambda: batch.read_namespaced_job("perindex", "default").status.failed_indexes == "0",
             what="index 0 failed")
    fail_pod_with(core, wait_for(lambda: active_of_index(core, "perindex", 1), what="index 1")[0], 42)
    wait_for(lambda: batch.read_namespaced_job("perindex", "default").status.failed_indexes == "0,1",
             what="index 1 failed by FailIndex")
    # Failed indexes get no new pods.
    time.sleep(0.5)
    assert not active_of_index(core, "perindex", 0) and not active_of_index(core, "perindex", 1)
    finish_pod(core, wait_for(lambda: active_of_index(core, "perindex", 2), what="index 2")[0], "Succeeded")
    job, failed = wait_for(lambda: job_condition(batch, "perindex", "Failed"), what="Failed")
    assert (failed.reason, failed.message) == ("FailedIndexes", "Job has failed indexes")
    assert job.status.completed_indexes == "2" and job.status.failed_indexes == "0,1"
    assert job.status.failed == 3 and job.status.succeeded == 1


def test_more_failed_indexes_than_max_failed_indexes_fail_the_job_at_once(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body(
        "fewfail", completions=3, parallelism=3, completionMode="Indexed", backoffLimitPerIndex=0,
        maxFailedIndexes=0))
    fail_pod_with(core, wait_for(lambda: active_of_index(core, "fewfail", 1), what="index 1")[0], 1)
    job, failed = wait_for(lambda: job_condition(batch, "fewfail", "Failed"), what="Failed")
    assert (failed.reason, failed.message) == (
        "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
    assert job.status.failed_indexes == "1"
    # The other indexes are stopped.
    wait_for(lambda: not active_of_index(core, "fewfail", 0) and not active_of_index(core, "fewfail", 2),
             what="the rest stopped")


def test_a_finished_job_is_deleted_after_its_ttl(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("brief", ttlSecondsAfterFinished=3))
    pod = wait_for(lambda: job_pods(core, "brief"), what="a pod")[0]
    finish_pod(core, pod, "Succeeded")
    wait_for(lambda: job_condition(batch, "brief", "Complete"), what="Complete")
    wait_for(lambda: not batch.list_namespaced_job("default", field_selector="metadata.name=brief").items,
             what="job deleted by TTL")
    wait_for(lambda: not job_pods(core, "brief"), what="pods deleted with it")


# ---------------------------------------------------------------- DaemonSets

def ds_pods(core, name):
    return [p for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items
            if not p.metadata.deletion_timestamp]


def make_ready(core, pods):
    for pod in pods:
        if pod.spec.node_name and not any(c.type == "Ready" and c.status == "True"
                                          for c in pod.status.conditions or []):
            set_pod_status(core, pod.metadata.name, None, True)


def test_a_daemonset_runs_one_pod_per_eligible_node_and_rolls_updates(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    make_node(core, "edge-1", labels={"role": "edge"})
    make_node(core, "edge-2", labels={"role": "edge"},
              taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
    make_node(core, "edge-3", labels={"role": "edge"},
              taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    make_node(core, "core-1", labels={"role": "core"})
    apps.create_namespaced_daemon_set("default", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"nodeSelector": {"role": "edge"},
                                       "containers": [{"name": "c", "image": "busybox"}]}}},
    })
    pods = wait_for(lambda: (p := ds_pods(core, "agent")) and len(p) == 2
                    and all(x.spec.node_name for x in p) and p, what="two bound daemon pods")
    assert sorted(p.spec.node_name for p in pods) == ["edge-1", "edge-2"]
    revisions = client.AppsV1Api(api).list_namespaced_controller_revision("default").items
    rev = [r for r in revisions if r.metadata.owner_references[0].name == "agent"]
    assert len(rev) == 1 and rev[0].revision == 1
    first_hash = rev[0].metadata.labels["controller-revision-hash"]
    assert rev[0].metadata.name == f"agent-{first_hash}"
    for pod in pods:
        assert pod.metadata.labels["controller-revision-hash"] == first_hash
        assert pod.metadata.labels["pod-template-generation"] == "1"
        term = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
            .node_selector_terms[0]
        assert [(f.key, f.operator, f.values) for f in term.match_fields] == \
            [("metadata.name", "In", [pod.spec.node_name])]
        keys = {(t.key, t.effect) for t in pod.spec.tolerations}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
        assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    # The status follows the pods the cache has seen.
    wait_for(lambda: (st := apps.read_namespaced_daemon_set("agent", "default").status)
             and (st.desired_number_scheduled, st.current_number_scheduled, st.number_ready) == (2, 2, 0),
             what="status counts the two pods")
    make_ready(core, pods)
    wait_for(lambda: apps.read_namespaced_daemon_set("agent", "default").status.number_available == 2,
             what="two available")

    # A node that starts to qualify gets a pod.
    core.patch_node("core-1", {"metadata": {"labels": {"role": "edge"}}})
    wait_for(lambda: "core-1" in [p.spec.node_name for p in ds_pods(core, "agent")], what="pod on core-1")
    make_ready(core, ds_pods(core, "agent"))

    # A new template rolls out node by node.
    apps.patch_namespaced_daemon_set("agent", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})
    most_unavailable = 0

    def rolled():
        nonlocal most_unavailable
        pods = ds_pods(core, "agent")
        make_ready(core, pods)
        ds = apps.read_namespaced_daemon_set("agent", "default")
        most_unavailable = max(most_unavailable, ds.status.number_unavailable or 0)
        images = [p.spec.containers[0].image for p in pods]
        return (len(pods) == 3 and images == ["busybox:2"] * 3
                and ds.status.updated_number_scheduled == 3 and ds.status.number_available == 3
                and ds.status.observed_generation == ds.metadata.generation and ds)

    ds = wait_for(rolled, timeout=30, what="rolled out")
    assert most_unavailable <= 1
    revs = sorted((r.revision, r.metadata.name) for r in
                  apps.list_namespaced_controller_revision("default").items
                  if r.metadata.owner_references[0].name == "agent")
    assert [n for n, _ in revs] == [1, 2]
    new_hash = revs[1][1].rsplit("-", 1)[1]
    assert all(p.metadata.labels["controller-revision-hash"] == new_hash for p in ds_pods(core, "agent"))
    out = server.kubectl("rollout", "history", "daemonset/agent").stdout
    assert "1" in out and "2" in out
    events = [(e.reason, e.message) for e in core.list_namespaced_event(
        "default", field_selector="involvedObject.name=agent").items]
    assert any(r == "SuccessfulCreate" and m.startswith("Created pod: agent-") for r, m in events)
    assert any(r == "SuccessfulDelete" for r, _ in events)

    # A node that stops qualifying loses its pod.
    core.patch_node("core-1", {"metadata": {"labels": {"role": "core"}}})
    wait_for(lambda: "core-1" not in [p.spec.node_name for p in ds_pods(core, "agent")],
             what="pod removed from core-1")
    apps.delete_namespaced_daemon_set("agent", "default")
    wait_for(lambda: not ds_pods(core, "agent"), what="daemon pods collected")


# ---------------------------------------------------------------- StatefulSets

def sts_body(name, replicas, command="sleep 3600", **spec):
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"serviceName": name, "replicas": replicas,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "busybox",
                                                       "command": ["sh", "-c", command]}]}},
                 **spec},
    }


def ordinals(core, name):
    return sorted(int(p.metadata.labels["apps.kubernetes.io/pod-index"])
                  for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items)


def test_a_statefulset_creates_pods_in_order_with_claims_and_scales_down_from_the_top(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_stateful_set("default", sts_body("db", 3, volumeClaimTemplates=[{
        "metadata": {"name": "data", "labels": {"tier": "storage"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]))
    seen = []
    for ordinal in range(3):
        wait_for(lambda: ordinals(core, "db") == list(range(ordinal + 1)), what=f"pod {ordinal}")
        time.sleep(0.3)
        # The next pod waits for this one to be ready.
        assert ordinals(core, "db") == list(range(ordinal + 1))
        pod = wait_for(lambda: (p := core.read_namespaced_pod(f"db-{ordinal}", "default")).spec.node_name
                       and p, what="bound")
        seen.append(pod)
        set_pod_status(core, f"db-{ordinal}", None, True)
    pod = seen[1]
    labels = pod.metadata.labels
    assert labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert labels["apps.kubernetes.io/pod-index"] == "1"
    assert labels["controller-revision-hash"].startswith("db-")
    assert (pod.spec.hostname, pod.spec.subdomain) == ("db-1", "db")
    claim = [v for v in pod.spec.volumes if v.name == "data"][0].persistent_volume_claim.claim_name
    assert claim == "data-db-1"
    pvcs = {c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim("default").items}
    assert {"data-db-0", "data-db-1", "data-db-2"} <= set(pvcs)
    assert pvcs["data-db-0"].metadata.labels == {"tier": "storage", "app": "db"}
    sts = wait_for(lambda: (x := apps.read_namespaced_stateful_set("db", "default")).status.ready_replicas == 3
                   and x, what="3 ready")
    assert sts.status.replicas == 3 and sts.status.updated_replicas == 3
    assert sts.status.current_revision == sts.status.update_revision == labels["controller-revision-hash"]
    events = [(e.reason, e.message) for e in core.list_namespaced_event(
        "default", field_selector="involvedObject.name=db").items]
    assert ("SuccessfulCreate", "create Pod db-0 in StatefulSet db successful") in events
    assert ("SuccessfulCreate", "create Claim data-db-0 Pod db-0 in StatefulSet db success") in events

    # A rolling update with partition 1 replaces db-2, then db-1, never db-0.
    apps.patch_namespaced_stateful_set("db", "default", {"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"metadata": {"annotations": {"v": "2"}}}}})

    def updated():
        pods = {p.metadata.name: p for p in core.list_namespaced_pod("default", label_selector="app=db").items}
        for name, p in pods.items():
            if p.spec.node_name and not p.metadata.deletion_timestamp and not any(
                    c.type == "Ready" and c.status == "True" for c in p.status.conditions or []):
                set_pod_status(core, name, None, True)
        sts = apps.read_namespaced_stateful_set("db", "default")
        return sts.status.updated_replicas == 2 and sts.status.ready_replicas == 3 and (sts, pods)

    sts, pods = wait_for(updated, timeout=30, what="two pods updated")
    assert sts.status.update_revision != sts.status.current_revision
    assert pods["db-0"].metadata.labels["controller-revision-hash"] == sts.status.current_revision
    assert pods["db-2"].metadata.labels["controller-revision-hash"] == sts.status.update_revision
    assert (pods["db-0"].metadata.annotations or {}).get("v") is None

    # Scale down removes db-2 before db-1; claims stay.
    apps.patch_namespaced_stateful_set("db", "default", {"spec": {"replicas": 1}})
    orders = []
    wait_for(lambda: (o := ordinals(core, "db")) and (orders.append(o) or o == [0]),
             interval=0.05, what="scaled to 1")
    # Never a gap: db-2 goes before db-1.
    assert all(o in ([0, 1, 2], [0, 1], [0]) for o in orders), orders
    pvcs = [c.metadata.name for c in core.list_namespaced_persistent_volume_claim("default").items]
    assert "data-db-2" in pvcs
    apps.delete_namespaced_stateful_set("db", "default")
    wait_for(lambda: not ordinals(core, "db"), what="pods collected")


def test_a_parallel_statefulset_creates_all_pods_at_once(cluster):
    server, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_stateful_set("default", sts_body("par", 3, podManagementPolicy="Parallel"))
    wait_for(lambda: ordinals(core, "par") == [0, 1, 2], what="three pods")
    apps.delete_namespaced_stateful_set("par", "default")
    wait_for(lambda: not ordinals(core, "par"), what="pods collected")


# ---------------------------------------------------------------- CronJobs

def cronjob_body(name, schedule="* * * * *", **spec):
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": {
            "metadata": {"labels": {"cron": name}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox", "command": ["true"]}]}}}}, **spec},
    }


def minutes_ago(n):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60 * n))


def test_a_cronjob_runs_its_missed_time_and_keeps_its_history_limit(cluster):
    server, api = cluster
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_cron_job("default", cronjob_body(
        "tick", concurrencyPolicy="Forbid", successfulJobsHistoryLimit=0))
    # As if the controller had last run it three minutes ago: the latest missed
    # time (this minute) runs now.
    batch.patch_namespaced_cron_job_status("tick", "default", {"status": {"lastScheduleTime": minutes_ago(3)}})
    jobs = wait_for(lambda: batch.list_namespaced_job("default", label_selector="cron=tick").items,
                    what="a job")
    assert len(jobs) == 1
    job = jobs[0]
    minute = int(time.time()) // 60
    assert job.metadata.name in (f"tick-{minute}", f"tick-{minute - 1}")
    scheduled = int(job.metadata.name.rsplit("-", 1)[1]) * 60
    assert job.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(scheduled))
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("CronJob", "tick", True)
    cj = wait_for(lambda: (c := batch.read_namespaced_cron_job("tick", "default")).status.active and c,
                  what="status.active")
    assert [a.name for a in cj.status.active] == [job.metadata.name]
    assert int(cj.status.last_schedule_time.timestamp()) == scheduled
    events = lambda: [(e.reason, e.message) for e in core.list_namespaced_event(
        "default", field_selector="involvedObject.name=tick").items]
    wait_for(lambda: ("SuccessfulCreate", f"Created job {job.metadata.name}") in events(),
             what="SuccessfulCreate event")
    out = server.kubectl("get", "cronjob", "tick", "--no-headers").stdout
    assert "* * * * *" in out

    # The job finishes: the controller sees it, records the success and, with a
    # history limit of 0, deletes it.
    pod = wait_for(lambda: job_pods(core, job.metadata.name), what="job pod")[0]
    finish_pod(core, pod, "Succeeded")
    wait_for(lambda: ("SawCompletedJob", f"Saw completed job: {job.metadata.name}, condition: Complete")
             in events(), what="SawCompletedJob")
    # Only this job is looked for: once a minute boundary passes, the schedule
    # rightly starts the next one.
    job_names = lambda: [j.metadata.name for j in
                         batch.list_namespaced_job("default", label_selector="cron=tick").items]
    wait_for(lambda: job.metadata.name not in job_names(), what="job removed by the history limit")
    cj = wait_for(lambda: (c := batch.read_namespaced_cron_job("tick", "default")).status.last_successful_time
                  and c, what="lastSuccessfulTime")
    assert job.metadata.name not in [a.name for a in cj.status.active or []]
    assert ("SuccessfulDelete", f"Deleted job {job.metadata.name}") in events()
    batch.delete_namespaced_cron_job("tick", "default")


def test_a_suspended_cronjob_or_one_past_its_starting_deadline_starts_nothing(cluster):
    server, api = cluster
    batch = client.BatchV1Api(api)
    batch.create_namespaced_cron_job("default", cronjob_body("paused", suspend=True))
    batch.patch_namespaced_cron_job_status("paused", "default", {"status": {"lastScheduleTime": minutes_ago(3)}})
    # An hourly schedule whose last run is long past, with a 10 s starting deadline:
    # only a time within the last 10 s would run.
    batch.create_namespaced_cron_job("default", cronjob_body(
        "late", schedule="@hourly", startingDeadlineSeconds=10))
    now = time.gmtime()
    if now.tm_min == 0 and now.tm_sec < 15:
        time.sleep(16)  # stay clear of the top of the hour
    batch.patch_namespaced_cron_job_status("late", "default", {"status": {"lastScheduleTime": minutes_ago(180)}})
    time.sleep(1.5)
    assert not batch.list_namespaced_job("default", label_selector="cron=paused").items
    assert not batch.list_namespaced_job("default", label_selector="cron=late").items
    # Unsuspended, the missed time runs.
    batch.patch_namespaced_cron_job("paused", "default", {"spec": {"suspend": False}})
    wait_for(lambda: batch.list_namespaced_job("default", label_selector="cron=paused").items,
             what="job after unsuspending")
    for name in ["paused", "late"]:
        batch.delete_namespaced_cron_job(name, "default")


# ---------------------------------------------------------------- real pods

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A kite server with its node agent, so pods really run (busybox airgap image)."""
    from conftest import KITE_BIN, KiteServer, _containers, in_own_netns, restore_cgroup_mounts

    if os.geteuid() != 0:
        pytest.skip("containers need root")
    if not in_own_netns():
        pytest.fail("refusing to run containers in the machine's network namespace; use tests/run.sh")
    restore_cgroup_mounts()
    workdir = str(tmp_path_factory.mktemp("node"))
    server = KiteServer(workdir, port=6445)
    server.agent = True
    images = os.path.join(server.data_dir, "agent", "images")
    os.makedirs(images)
    r = subprocess.run([os.path.join(ROOT, "airgap/build-busybox-image.sh"),
                        os.path.join(images, "busybox.tar")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    server.start()
    api = config.new_client_from_config(config_file=server.kubeconfig)
    core = client.CoreV1Api(api)
    wait_for(lambda: core.list_namespaced_service_account(
        "default", field_selector="metadata.name=default").items, what="default SA")
    wait_for(lambda: [n for n in core.list_node().items
                      for c in (n.status.conditions if n.status else None) or []
                      if c.type == "Ready" and c.status == "True"], what="node Ready")
    try:
        yield server, api
    finally:
        try:
            # Owners first, so nothing recreates the pods removed below.
            apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
            for deploy in apps.list_namespaced_deployment("default").items:
                apps.delete_namespaced_deployment(deploy.metadata.name, "default")
            for sts in apps.list_namespaced_stateful_set("default").items:
                apps.delete_namespaced_stateful_set(sts.metadata.name, "default")
            for job in batch.list_namespaced_job("default").items:
                batch.delete_namespaced_job(job.metadata.name, "default", propagation_policy="Background")
            for pod in core.list_pod_for_all_namespaces().items:
                try:
                    if pod.metadata.finalizers:
                        core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                                  {"metadata": {"finalizers": None}})
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                               grace_period_seconds=0)
                except ApiException as e:
                    if e.status != 404:  # the garbage collector was quicker
                        raise
            wait_for(lambda: not core.list_pod_for_all_namespaces().items, timeout=30,
                     what="pods removed")
            deadline = time.monotonic() + 20
            while _containers(server.data_dir) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            server.stop()
            for cid in _containers(server.data_dir):
                subprocess.run([KITE_BIN, "ctr", "--data-dir", server.data_dir,
                                "containers", "rm", cid], capture_output=True, timeout=30)
            for m in reversed(mounts_under(workdir)):
                subprocess.run(["umount", "-l", m])
    assert mounts_under(workdir) == []


def test_a_real_job_with_completions_3_and_parallelism_2_completes(node):
    server, api = node
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("real", "sleep 1", completions=3, parallelism=2))
    seen_active = set()

    def complete():
        job = batch.read_namespaced_job("real", "default")
        seen_active.add(job.status.active or 0)
        return job_condition(batch, "real", "Complete")

    job, cond = wait_for(complete, timeout=90, interval=0.2, what="real job Complete")
    assert job.status.succeeded == 3 and not job.status.failed
    assert max(seen_active) <= 2
    pods = job_pods(core, "real")
    assert len(pods) == 3 and all(p.status.phase == "Succeeded" for p in pods)
    assert all(not p.metadata.finalizers for p in pods)
    out = server.kubectl("wait", "--for=condition=complete", "job/real", "--timeout=5s")
    assert out.returncode == 0


def test_a_real_job_that_keeps_failing_hits_its_backoff_limit(node):
    server, api = node
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job("default", job_body("doomed", "exit 1", backoffLimit=1))
    job, cond = wait_for(lambda: job_condition(batch, "doomed", "Failed"), timeout=90, interval=0.3,
                         what="real job Failed")
    assert cond.reason == "BackoffLimitExceeded"
    assert cond.message == "Job has reached the specified backoff limit"
    assert job.status.failed == 2
    pods = job_pods(core, "doomed")
    assert len(pods) == 2 and all(p.status.phase == "Failed" for p in pods)
    assert ("BackoffLimitExceeded", "Job has reached the specified backoff limit") in job_events(core, "doomed")


def test_a_real_statefulset_starts_in_order_and_scales_down_from_the_highest(node):
    server, api = node
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_stateful_set("default", sts_body(
        "web", 3, command="trap 'exit 0' TERM; sleep 3600 & wait"))
    seen = []

    def three_ready():
        seen.append(ordinals(core, "web"))
        sts = apps.read_namespaced_stateful_set("web", "default")
        return sts.status.ready_replicas == 3

    wait_for(three_ready, timeout=90, interval=0.1, what="three ready pods")
    # Never a gap in the ordinals, and each pod was made only once its
    # predecessor was ready.
    assert all(o == list(range(len(o))) for o in seen), seen
    pods = {p.metadata.name: p for p in core.list_namespaced_pod("default", label_selector="app=web").items}
    for n in (1, 2):
        ready = next(c for c in pods[f"web-{n - 1}"].status.conditions if c.type == "Ready")
        assert pods[f"web-{n}"].metadata.creation_timestamp >= ready.last_transition_time
    apps.patch_namespaced_stateful_set("web", "default", {"spec": {"replicas": 1}})
    shrinking = []
    wait_for(lambda: (o := ordinals(core, "web")) and (shrinking.append(o) or o == [0]),
             timeout=60, interval=0.1, what="scaled down to one")
    assert all(o in ([0, 1, 2], [0, 1], [0]) for o in shrinking), shrinking
    apps.delete_namespaced_stateful_set("web", "default")
    wait_for(lambda: not ordinals(core, "web"), timeout=60, what="pods gone")


def test_a_real_deployment_rolls_out_undoes_and_restarts(node):
    """The Deployment acceptance with real pods: never fewer than 3 ready during rollouts."""
    import threading

    server, api = node
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    server.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3",
                   "--", "httpd", "-f", "-p", "80", "-h", "/var/www")

    def ready_pods():
        return sorted(p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=web").items
                      if not p.metadata.deletion_timestamp
                      and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []))

    wait_for(lambda: len(ready_pods()) == 3, timeout=60, what="3 ready web pods")
    server.kubectl("scale", "deployment", "web", "--replicas=5")
    wait_for(lambda: len(ready_pods()) == 5, timeout=60, what="5 ready web pods")
    server.kubectl("scale", "deployment", "web", "--replicas=3")
    wait_for(lambda: len(ready_pods()) == 3, timeout=60, what="back to 3")

    def rollout(*change):
        """Runs a change, watches ready pods until `rollout status` returns; returns the fewest seen."""
        fewest, done = [3], threading.Event()

        def watch():
            while not done.is_set():
                fewest[0] = min(fewest[0], len(ready_pods()))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            server.kubectl(*change)
            out = server.kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
            assert 'deployment "web" successfully rolled out' in out.stdout, out.stdout
        finally:
            done.set()
            watcher.join()
        return fewest[0]

    before = set(ready_pods())
    # maxUnavailable 25% of 3 rounds down to 0: every step surges first.
    assert rollout("set", "image", "deployment/web", "busybox=docker.io/library/busybox:latest") >= 3
    images = {c.image for p in core.list_namespaced_pod("default", label_selector="app=web").items
              if not p.metadata.deletion_timestamp for c in p.spec.containers}
    assert images == {"docker.io/library/busybox:latest"}
    assert not before & set(ready_pods())

    history = server.kubectl("rollout", "history", "deployment/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"], history

    assert rollout("rollout", "undo", "deployment/web") >= 3
    deploy = apps.read_namespaced_deployment("web", "default")
    assert deploy.spec.template.spec.containers[0].image == "busybox"
    assert deploy.metadata.annotations["deployment.kubernetes.io/revision"] == "3"

    before = set(ready_pods())
    assert rollout("rollout", "restart", "deployment/web") >= 3
    assert not before & set(ready_pods()), "rollout restart replaces every pod"
    deploy = apps.read_namespaced_deployment("web", "default")
    assert "kubectl.kubernetes.io/restartedAt" in deploy.spec.template.metadata.annotations
    server.kubectl("delete", "deployment", "web")
    wait_for(lambda: not core.list_namespaced_pod("default", label_selector="app=web").items, timeout=60,
             what="web pods gone")
