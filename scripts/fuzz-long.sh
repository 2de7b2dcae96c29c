#!/usr/bin/env bash
# The long property/fuzz run. CI runs the same tests with HYPOTHESIS_PROFILE=ci (tests/conftest.py:
# 300 examples per property, 17 properties: about 5 100 generated inputs in ~15 s, plus the exhaustive
# truncation of a pcap and a pcapng at every byte). This runs them with HYPOTHESIS_PROFILE=long:
# 20 000 examples per property (about 340 000 inputs; 10-15 minutes on a 2-core VM):
#
#   - the TCP core fed random segments in every state: never raises, keeps its invariants
#     (snd_una <= snd_nxt, rcv_nxt only forward, no byte delivered twice, one of the eleven states),
#     and two cores over a wire that drops/duplicates/reorders deliver everything exactly once
#   - the .pkt parser fed random text, dialect characters, fragments and mutations: only ScriptError
#     with a line number
#   - the pcap/pcapng reader fed random, damaged and truncated bytes: only CaptureError, one line
#   - the wire fast path against scapy on random and damaged packets
#
# Usage: bash scripts/fuzz-long.sh [extra pytest args]        (no root needed)
# Exit status: pytest's. The per-test statistics (examples run, why it stopped) are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for candidate in .venv/bin/python /work/venv/bin/python python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
export HYPOTHESIS_PROFILE=long
start=$(date +%s)
status=0
"$PY" -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
  tests/core/test_properties.py tests/script/test_parser_fuzz.py \
  tests/capture/test_pcap.py tests/capture/test_pcap_truncation.py tests/wire/test_packet.py "$@" || status=$?
echo "fuzz-long: $(( $(date +%s) - start )) s with HYPOTHESIS_PROFILE=long, pytest exit $status"
exit "$status"
