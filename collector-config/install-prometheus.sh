#!/usr/bin/env bash
# Installs Debian's Prometheus (/usr/bin/prometheus, /usr/bin/promtool) if it is not there yet.
# Used by tests/run.sh and examples/run_demo.sh. Needs root (or sudo) the first time.
#
# The package's post-install script would start a prometheus service listening on :9090 on a
# machine with a running init system; a temporary policy-rc.d tells invoke-rc.d not to start
# anything, so nothing is left running (our tests and demo start their own Prometheus on a
# free port anyway). prometheus-node-exporter (a Recommends) is not installed.
set -euo pipefail

if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-prometheus.sh: run as root: apt-get install prometheus" >&2; exit 1; }
  SUDO=sudo
fi
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
echo "install-prometheus.sh: apt-get install prometheus" >&2
$SUDO apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >&2
# A systemd that was running anyway may have been told to start it through its unit links.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >&2 || true
fi
/usr/bin/prometheus --version >&2
