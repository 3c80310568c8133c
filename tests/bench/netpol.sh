#!/usr/bin/env bash
# Network policy: policy or label change → rules in the kernel (see netpol.py). As root.
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
exec "$(dirname "$0")/in-netns.sh" netpol.py
