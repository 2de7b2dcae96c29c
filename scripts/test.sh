#!/usr/bin/env bash
# The test suite on a fresh machine: install what is needed, then every test — the pure ones (core,
# parser, captures) and the integration ones against the real kernel in namespaces (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
exec "${RAWTCP_VENV:-.venv}/bin/python" -m pytest -q -rs "$@"
