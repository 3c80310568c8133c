#!/usr/bin/env bash
# Ingress: requests/s and p99 latency through kite's Ingress controller vs
# nginx as a reverse proxy, both in front of the same static backend (see
# ingress.py). As root; needs wrk and nginx (Debian nginx-light).
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
exec "$(dirname "$0")/in-netns.sh" ingress.py
