#!/usr/bin/env bash
# Scheduler throughput with fake nodes (see scheduler.py). As root.
# NODES=100,1000 PODS=10000 by default; KITE_BIN to use another build.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${KITE_BIN:-}" ]; then
  cargo build --release --locked -p kite
  KITE_BIN=$PWD/target/release/kite
fi
venv=$PWD/target/e2e-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/e2e/requirements.txt
fi
ns="kite-bench-$$"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
KITE_BIN=$KITE_BIN ip netns exec "$ns" "$venv/bin/python" tests/bench/scheduler.py
