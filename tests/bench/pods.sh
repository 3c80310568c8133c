#!/usr/bin/env bash
# Pod start latency, memory per pod and idle CPU (see pods.py). As root.
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
exec "$(dirname "$0")/in-netns.sh" pods.py
