#!/usr/bin/env bash
# Ingress: requests/s and p99 latency through kite's Ingress controller vs
# nginx as a reverse proxy, both in front of the same static backend (see
# ingress.py). As root; needs wrk and nginx (Debian nginx-light).
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-debug}
if [ "$profile" = release ]; then
  cargo build --release --locked -p kite
else
  cargo build --locked -p kite
fi
venv=target/e2e-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/e2e/requirements.txt
fi
ns="kite-bench-$$"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
KITE_BIN=$PWD/target/$profile/kite KITE_E2E_NETNS=$ns \
  ip netns exec "$ns" "$venv/bin/python" tests/bench/ingress.py
