#!/usr/bin/env bash
# Start-up time and idle memory of `kite server` (see startup.py). As root.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p kite
ns="kite-bench-$$"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
KITE_BIN=$PWD/target/release/kite ip netns exec "$ns" python3 tests/bench/startup.py
