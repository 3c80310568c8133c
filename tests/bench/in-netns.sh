#!/usr/bin/env bash
# Runs a Python benchmark of this folder against a fresh build of kite, inside
# a network namespace of its own (removed afterwards). As root.
#   tests/bench/in-netns.sh SCRIPT.py
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
script=$1
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
  ip netns exec "$ns" "$venv/bin/python" "tests/bench/$script"
