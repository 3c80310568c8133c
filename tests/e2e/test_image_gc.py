"""Image garbage collection by disk usage, with the kubelet's own flags
(`--kubelet-arg image-gc-high-threshold=...`): with the thresholds set below
the disk's real usage, the pass at start removes every image no container
uses and reports on the Node, in kube's words, that it could not free
enough; an image a pod uses stays."""

import os
import subprocess
import time

import pytest

from conftest import KITE_BIN, node_agent
from test_kubelet import pod_spec, status_of, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

GC_ARGS = ["--kubelet-arg", "image-gc-high-threshold=1", "--kubelet-arg", "image-gc-low-threshold=0",
           "--kubelet-arg", "minimum-image-ttl-duration=0s"]


def images(server):
    out = subprocess.run([KITE_BIN, "ctr", "--data-dir", server.data_dir, "images", "ls", "-q"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def node_events(core, reason):
    return [e.message for e in core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.kind=Node,reason={reason}").items]


def test_unused_images_are_removed_when_the_disk_is_over_the_threshold(tmp_path_factory):
    with node_agent(tmp_path_factory, extra=GC_ARGS) as (server, core):
        messages = wait_for(lambda: node_events(core, "FreeDiskSpaceFailed"), timeout=30,
                            what="FreeDiskSpaceFailed on the Node")
        assert messages[0].startswith("Failed to garbage collect required amount of images. "
                                      "Attempted to free "), messages
        assert "bytes eligible to free." in messages[0], messages
        # busybox, imported at start and used by nothing, is gone.
        assert images(server) == []
        # A pod asking for it fails to find it (no registry here): the image
        # really left the store.
        core.create_namespaced_pod("default", pod_spec("late", "true", container={"imagePullPolicy": "Never"}))
        waiting = wait_for(lambda: (cs := status_of(core, "late")[1]) and cs.state.waiting
                           and cs.state.waiting.reason == "ErrImageNeverPull" and cs.state.waiting,
                           what="ErrImageNeverPull")
        assert "busybox" in waiting.message


def test_an_image_a_container_uses_is_kept(tmp_path_factory):
    """Usage over the threshold from the start, but collection only once a
    pod runs: the first pass keeps young images (the default 2 minute TTL),
    so a restart with a TTL of 0 s finds busybox in use and keeps it."""
    with node_agent(tmp_path_factory) as (server, core):
        core.create_namespaced_pod("default", pod_spec("user", "sleep 3600"))
        wait_for(lambda: status_of(core, "user")[0].status.phase == "Running", what="Running")
        kept = images(server)
        assert kept
        server.stop()
        server.start(extra=GC_ARGS)
        messages = wait_for(lambda: node_events(core, "FreeDiskSpaceFailed"), timeout=30,
                            what="a collection pass")
        assert messages
        time.sleep(0.5)
        assert images(server) == kept
        assert status_of(core, "user")[0].status.phase == "Running"
