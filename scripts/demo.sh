#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, then `rawtcp demo` (its own namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${RAWTCP_VENV:-.venv}/bin/rawtcp" demo "$@"
