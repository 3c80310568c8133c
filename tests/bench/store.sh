#!/usr/bin/env bash
# Benchmarks kite-store against etcd 3.4 on loopback (see tests/bench/store/src/main.rs).
# Installs etcd (Debian etcd-server) and protoc (for the etcd-client crate) if missing,
# then runs the benchmark in release mode. Extra arguments go to the benchmark, e.g.
# `tests/bench/store.sh --seconds 5`. The result table is printed on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v protoc >/dev/null || need+=(protobuf-compiler)
if ((${#need[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

exec cargo run --release --locked -p kite-bench-store --features etcd -- "$@"
