#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine, as root:
#   installs what the tests need, builds kite, runs the unit and integration
#   tests (cargo), then the end-to-end tests (pytest, real kubectl and real
#   clients) inside a network namespace this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: run as root (the end-to-end tests create a network namespace)" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "tests/run.sh: cargo not found; install Rust 1.90 or newer (https://rustup.rs)" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
need=()
# Registry pulls are tested against Debian's docker-registry, fed by skopeo.
for pair in ip:iproute2 nft:nftables curl:curl openssl:openssl docker-registry:docker-registry \
            skopeo:skopeo htpasswd:apache2-utils; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
# The container tests build their image from Debian's static busybox (airgap/).
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
# kite links libseccomp for container seccomp profiles (the default `seccomp` feature).
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
venv=$root/target/e2e-venv
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/e2e/requirements.txt
fi

step "building kite"
cargo build --locked -p kite -p kite-e2e-kube

step "unit and integration tests (cargo test)"
cargo test --locked --no-fail-fast -- --test-threads=2

step "end-to-end tests (pytest, inside a network namespace)"
ns="kite-e2e-$$"
cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
KITE_BIN=$root/target/debug/kite KITE_E2E_NETNS=$ns \
  ip netns exec "$ns" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/e2e "$@"
