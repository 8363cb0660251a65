#!/usr/bin/env bash
# Builds modelotel's OpenTelemetry Collector (otelcol-modelotel) from builder.yaml with the
# OpenTelemetry Collector Builder, and caches the binary OUTSIDE the repository, keyed by the
# manifest's sha256, so a second run (or CI with a warm cache) only prints the path.
#
#   collector-config/build.sh            # build if needed; prints the binary's path on stdout
#   MODELOTEL_CACHE=/some/dir build.sh   # cache root (default: $HOME/.cache/modelotel)
#   build.sh --path                      # print where the binary is/would be; never builds
#
# Needs Go >= 1.25 and the Go module proxy. Progress goes to stderr; stdout is only the path.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Go (module and build caches) and the cache below need a home; CI may run without HOME set.
if [ -z "${HOME:-}" ]; then
  HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
  export HOME
fi
manifest="$here/builder.yaml"
builder_version=v0.161.0   # keep equal to the collector release pinned in builder.yaml
cache_root=${MODELOTEL_CACHE:-$HOME/.cache/modelotel}
hash=$(sha256sum "$manifest" | cut -c1-64)
dir="$cache_root/otelcol/$hash"
bin="$dir/otelcol-modelotel"

if [ "${1:-}" = "--path" ]; then
  echo "$bin"
  exit 0
fi

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the collector (go >= 1.25)" >&2; exit 1; }
mkdir -p "$dir"
# Serialize concurrent builds of the same manifest (e.g. the demo and the test suite at once).
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

gobin="$cache_root/bin/builder-$builder_version"
if [ ! -x "$gobin/builder" ]; then
  echo "build.sh: installing the collector builder $builder_version" >&2
  GOBIN="$gobin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version" >&2
fi

work="$dir/work"
rm -rf "$work"
mkdir -p "$work"
cp "$manifest" "$work/builder.yaml"
echo "build.sh: building otelcol-modelotel in $work (a first build takes 2-5 min on 2 cores)" >&2
start=$(date +%s)
(cd "$work" && "$gobin/builder" --config builder.yaml >&2)
cp "$work/_build/otelcol-modelotel" "$bin.tmp"
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
