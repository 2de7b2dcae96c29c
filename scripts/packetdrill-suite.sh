#!/usr/bin/env bash
# packetdrill's Linux TCP suite under `rawtcp run`, in every address mode, beside packetdrill itself.
#
#   sudo bash scripts/packetdrill-suite.sh DIR [PACKETDRILL_BINARY]
#
# DIR: a packetdrill checkout's gtests/net/tcp (or ../shared/packetdrill/tcp). With PACKETDRILL_BINARY,
# packetdrill runs the same scripts in the same run and sets the bar; without it, NATIVE.txt beside DIR
# does. Prints "rawtcp passes X of the Y scripts packetdrill passes here" per mode, with wall times.
# Environment: VARIANTS (default ipv4,ipv4-mapped-ipv6,ipv6), JOBS (2), RUNS (1), RETRIES (0), ONLY_NATIVE=1 (run
# only what packetdrill passes and fail on any of those failing: what CI does), JSON/JUNIT (files).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [PACKETDRILL_BINARY]" >&2
  exit 2
fi
dir=$1
bash "$here/scripts/setup.sh"
args=("$dir" --variants "${VARIANTS:-ipv4,ipv4-mapped-ipv6,ipv6}" -j "${JOBS:-2}" --runs "${RUNS:-1}"
      --retries "${RETRIES:-0}")
[ $# -ge 2 ] && args+=(--packetdrill "$2")
[ "${ONLY_NATIVE:-0}" = 1 ] && args+=(--only-native)
[ -n "${JSON:-}" ] && args+=(--json "$JSON")
[ -n "${JUNIT:-}" ] && args+=(--junit "$JUNIT")
[ -n "${NATIVE:-}" ] && args+=(--native "$NATIVE")
exec "$here/${RAWTCP_VENV:-.venv}/bin/python" "$here/scripts/packetdrill_suite.py" "${args[@]}"
