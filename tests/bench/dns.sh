#!/usr/bin/env bash
# Cluster DNS queries/s beside unbound and dnsmasq (see dns.py). As root; installs dnsperf, unbound, dnsmasq-base, dnsutils.
# PROFILE=release builds an optimised kite (default: the debug build CI has).
set -euo pipefail
for tool in dnsperf unbound dnsmasq dig; do
  command -v "$tool" >/dev/null || { apt-get install -y -qq dnsperf unbound dnsmasq-base dnsutils >/dev/null; break; }
done
exec "$(dirname "$0")/in-netns.sh" dns.py
