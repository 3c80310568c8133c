#!/usr/bin/env bash
# Container runtime benchmarks, as root (results go in docs/benchmarks.md):
#   1. image import: `kite ctr images import` of the airgap busybox tarball vs
#      `skopeo copy docker-archive:... oci:...` of the same file (Debian skopeo);
#   2. one container start-to-exit: `kite ctr run --rm busybox ID true` vs
#      `runc run` of an equivalent bundle (Debian runc) with the same rootfs.
# Everything runs inside a network namespace this script creates and removes.
#   [KITE_BIN=path] tests/bench/runtime.sh [RUNS]   (default 20 runs each; medians printed)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-20}"
[ "$(id -u)" = 0 ] || { echo "tests/bench/runtime.sh: run as root" >&2; exit 1; }
for pkg in runc skopeo busybox-static; do
  dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
# KITE_BIN=... measures an existing binary instead of building a release one.
if [ -z "${KITE_BIN:-}" ]; then
  cargo build --release --locked -p kite
fi
kite=${KITE_BIN:-$PWD/target/release/kite}
work=$(mktemp -d /tmp/kite-bench-rt.XXXXXX)
ns="kite-bench-rt-$$"
cleanup() {
  ip netns delete "$ns" 2>/dev/null || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

airgap/build-busybox-image.sh "$work/busybox.tar" >/dev/null
# A runc bundle with the same root file system (the image's one layer).
mkdir -p "$work/bundle/rootfs"
tar -xOf "$work/busybox.tar" --wildcards '*/layer.tar' | tar -x -C "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)

KITE="$kite" WORK="$work" RUNS="$runs" ip netns exec "$ns" python3 - <<'PY'
import os, shutil, statistics, subprocess, time

kite, work, runs = os.environ["KITE"], os.environ["WORK"], int(os.environ["RUNS"])

# `ip netns exec` mounts a fresh /sys without the cgroup hierarchies: mount them again
# (in this mount namespace only), as tests/e2e/test_runtime.py does.
if not (os.path.isdir("/sys/fs/cgroup") and os.listdir("/sys/fs/cgroup")):
    for fields in (line.split() for line in open("/proc/1/mountinfo")):
        point = fields[4]
        if point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/"):
            sep = fields.index("-")
            opts = ",".join(o for o in fields[sep + 3].split(",") if o not in ("rw", "ro"))
            os.makedirs(point, exist_ok=True)
            subprocess.run(["mount", "-t", fields[sep + 1], *(["-o", opts] if opts else []),
                            fields[sep + 2], point], check=True)
tarball = os.path.join(work, "busybox.tar")
size_mb = os.path.getsize(tarball) / 1e6

def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start

def median(f):
    return statistics.median(f(i) for i in range(runs))

def kite_import(i):
    d = os.path.join(work, f"kd{i}")
    t = timed([kite, "ctr", "--data-dir", d, "images", "import", tarball])
    shutil.rmtree(d)
    return t

def skopeo_import(i):
    d = os.path.join(work, f"sk{i}")
    t = timed(["skopeo", "copy", "-q", f"docker-archive:{tarball}", f"oci:{d}:busybox"])
    shutil.rmtree(d)
    return t

data = os.path.join(work, "kite-data")
subprocess.run([kite, "ctr", "--data-dir", data, "images", "import", tarball], check=True,
               stdout=subprocess.DEVNULL)

def kite_run(i):
    return timed([kite, "ctr", "--data-dir", data, "run", "--rm", "busybox", f"b{i}", "true"])

def runc_run(i):
    return timed(["runc", "--root", os.path.join(work, "runc-state"), "run",
                  "--bundle", os.path.join(work, "bundle"), f"r{i}"])

ki, si = median(kite_import), median(skopeo_import)
kr, rr = median(kite_run), median(runc_run)
print(f"\nmedians of {runs} runs; tarball {size_mb:.1f} MB (docker-archive, 1 layer)\n")
print("| benchmark | kite | reference | ratio kite/reference |")
print("|---|---:|---:|---:|")
print(f"| image import (import + unpack) vs `skopeo copy` to an OCI dir | {ki*1000:.0f} ms ({size_mb/ki:.0f} MB/s) "
      f"| {si*1000:.0f} ms ({size_mb/si:.0f} MB/s) | {ki/si:.2f} |")
print(f"| container start to exit (`true`) vs `runc run` | {kr*1000:.0f} ms | {rr*1000:.0f} ms | {kr/rr:.2f} |")
PY
