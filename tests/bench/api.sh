#!/usr/bin/env bash
# API server benchmark (see tests/bench/api/src/main.rs). As root; runs the
# server and the load generator inside a network namespace of their own.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p kite -p kite-bench-api
ns="kite-bench-api-$$"
work=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns delete "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
: > "$work/empty.yaml"
# Enough file descriptors for 1,000 watch connections on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ip netns exec "$ns" target/release/kite server --data-dir "$work/data" -o "$work/kite.yaml" -c "$work/empty.yaml" \
  >"$work/kite.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$work/kite.yaml" ] && break; sleep 0.1; done
sleep 0.5
ip netns exec "$ns" target/release/kite-bench-api --data-dir "$work/data" --pid "$pid" "$@"
