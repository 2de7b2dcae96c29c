#!/bin/sh
# Entry point of the compose `tests` service: run pytest with the arguments given.
set -eu
# Docker mounts /proc/sys read-only; the integration tests set net sysctls inside the namespaces they
# create (per namespace, so the host is not touched). CAP_SYS_ADMIN, which this service has, allows the
# remount; docker-compose 1.29 cannot pass `--security-opt systempaths=unconfined` (a CLI-side option).
if ! mount -o remount,rw,bind /proc/sys 2>/dev/null; then
    echo "tests: /proc/sys stays read-only (no CAP_SYS_ADMIN?): sysctl writes will fail" >&2
fi
# Bounded: a hung test must not hang CI. SIGINT first, so pytest prints where it was and its summary.
limit="${RAWTCP_TEST_TIMEOUT:-900}"
status=0
timeout -s INT -k 30 "$limit" python -m pytest "$@" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "tests: pytest stopped after ${limit} s (RAWTCP_TEST_TIMEOUT)" >&2
fi
exit "$status"
