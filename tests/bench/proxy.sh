#!/usr/bin/env bash
# Service proxy: EndpointSlice change → rules live, and full rebuild time (see proxy.py). As root.
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
exec "$(dirname "$0")/in-netns.sh" proxy.py
