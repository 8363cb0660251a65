#!/usr/bin/env bash
# Installs Debian's Prometheus (/usr/bin/prometheus, /usr/bin/promtool) and Alertmanager
# (/usr/bin/prometheus-alertmanager, /usr/bin/amtool) if they are not there yet.
# Used by tests/run.sh and examples/run_demo.sh. Needs root (or sudo) the first time.
#
# The package's post-install script would start a prometheus service listening on :9090 on a
# machine with a running init system; a temporary policy-rc.d tells invoke-rc.d not to start
# anything, so nothing is left running (our tests and demo start their own Prometheus and
# Alertmanager on free ports anyway). prometheus-node-exporter (a Recommends) is not installed.
set -euo pipefail

if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] \
  && [ -x /usr/bin/prometheus-alertmanager ] && [ -x /usr/bin/amtool ]; then
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
echo "install-prometheus.sh: apt-get install prometheus prometheus-alertmanager" >&2
$SUDO apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
  prometheus prometheus-alertmanager >&2
# A systemd that was running anyway may have been told to start them through their unit links.
for unit in prometheus prometheus-alertmanager; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
    $SUDO systemctl disable --now "$unit" >&2 || true
  fi
done
/usr/bin/prometheus --version >&2
/usr/bin/prometheus-alertmanager --version >&2
