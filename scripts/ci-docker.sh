#!/usr/bin/env bash
# CI's Docker part (called by .ci/run), as root, on a machine that may be brand new: install Docker,
# start the engine if none runs, build the image on a local base (no registry), run the demo, a lab and
# a packetdrill-style script across containers, the pytest docker tests, and the `tests` service
# (asserting its integration tests ran); then remove what it made and stop the engine it started.
# Idempotent. Cached on the machine: the debootstrap rootfs (/var/cache/rawtcp) and the base image
# rawtcp-base:bookworm (kept), pip's download cache. Prints the time of each stage.
#
# Environment: RAWTCP_CI_LAB (lab for the lab stage, default --all: every lab), RAWTCP_CI_PKT (script for
# the run stage, default scripts/labs/01-handshake.pkt), RAWTCP_DOCKER_KEEP=1 (leave the engine, the lab and the image for inspection).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$REPO/scripts/docker-lab.sh"
export RAWTCP_LOCAL_BASE=1 RAWTCP_IMAGE="${RAWTCP_IMAGE:-rawtcp:local}"
STARTED_DOCKERD_PID=""
ARTIFACTS="$(mktemp -d /tmp/rawtcp-ci-docker.XXXXXX)"
declare -a TIMES=() FAILED=()
T_ALL=$SECONDS

say() { printf 'ci-docker: %s\n' "$*" >&2; }

stage() {
    local name="$1" t0=$SECONDS rc=0
    shift
    printf '\n=== docker: %s (%s)\n' "$name" "$(date -u +%H:%M:%S)"
    "$@" || rc=$?
    TIMES+=("$(printf '%-28s %4d s%s' "$name" $((SECONDS - t0)) "$([[ $rc -eq 0 ]] || echo "  FAILED ($rc)")")")
    [[ $rc -eq 0 ]] || FAILED+=("$name")
    return $rc
}

install_tools() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    # docker-lab.sh builds the wheels with pip; a venv gives pip where Debian's python3 has none.
    python3 -m pip --version >/dev/null 2>&1 || python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    if [[ ${#missing[@]} -eq 0 ]]; then say "docker.io, docker-compose, debootstrap present"; return; fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_engine() {
    if docker info >/dev/null 2>&1; then say "Docker engine already running (left running at the end)"; return; fi
    say "starting dockerd (log: /var/log/rawtcp-dockerd.log)"
    dockerd >/var/log/rawtcp-dockerd.log 2>&1 &
    STARTED_DOCKERD_PID=$!
    local i
    for ((i = 0; i < 60; i++)); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || break
        sleep 1
    done
    tail -n 20 /var/log/rawtcp-dockerd.log >&2 || true
    say "dockerd did not come up"
    return 1
}

# The demo across the two containers: its pcap lands in $ARTIFACTS (the caller's directory is mounted into
# the rawtcp container). It must have talked to the listener container, not a lab of its own.
demo_stage() {
    local out="$ARTIFACTS/demo.txt"
    (cd "$ARTIFACTS" && "$LAB" demo) 2>&1 | tee "$out"
    if ! grep -q '198\.18\.10\.2' "$out"; then
        say "the demo never mentions the listener container (198.18.10.2): it did not run across the containers"
        return 1
    fi
}

# TODO(hooks): the lab and script stages run once `rawtcp labs` / `rawtcp run` exist in the image.
image_has() { docker run --rm --network none "$RAWTCP_IMAGE" "$@" >/dev/null 2>&1; }

lab_stage() {
    if ! image_has labs || ! image_has lab run --help; then
        say "SKIPPED: the image has no 'rawtcp labs' / 'rawtcp lab run' yet"
        return
    fi
    # Every lab of the catalogue, each in namespaces made inside the rawtcp container.
    "$LAB" lab "${RAWTCP_CI_LAB:---all}"
}

pkt_stage() {
    local pkt="${RAWTCP_CI_PKT:-$REPO/scripts/labs/01-handshake.pkt}"
    if [[ ! -f "$pkt" ]] || ! image_has run --help; then
        say "SKIPPED: no .pkt script or no 'rawtcp run' in the image yet"
        return
    fi
    # The rawtcp service mounts the caller's directory: run from the script's folder, by name.
    (cd "$(dirname "$pkt")" && "$LAB" run "$(basename "$pkt")")
}

# The pytest tests that drive compose from the host (tests/integration/test_docker.py); never skipped here.
pytest_docker_stage() {
    local py
    py="${PYTHON:-$REPO/${RAWTCP_VENV:-.venv}/bin/python}"
    [[ -x "$py" ]] || py=python3
    if ! "$py" -c 'import pytest' >/dev/null 2>&1; then
        say "no pytest on the host for $py (scripts/setup.sh makes .venv)"
        return 1
    fi
    (cd "$REPO" && RAWTCP_REQUIRE_DOCKER=1 "$py" -m pytest -q -rs -p no:cacheprovider -m docker tests/integration/test_docker.py)
}

teardown() {
    local rc=$? t0=$SECONDS
    set +e
    printf '\n=== docker: teardown (%s)\n' "$(date -u +%H:%M:%S)"
    if [[ "${RAWTCP_DOCKER_KEEP:-0}" == 1 ]]; then
        say "RAWTCP_DOCKER_KEEP=1: leaving the lab, the image and the engine"
    elif docker info >/dev/null 2>&1; then
        "$LAB" clean
        # Dangling layers of this project's builds only (label from docker/Dockerfile); the base image
        # rawtcp-base:bookworm stays as the cache.
        docker image prune -f --filter label=org.rawtcp.project=rawtcp >/dev/null
    fi
    if [[ -n "$STARTED_DOCKERD_PID" && "${RAWTCP_DOCKER_KEEP:-0}" != 1 ]]; then
        say "stopping the dockerd this script started (pid $STARTED_DOCKERD_PID)"
        kill "$STARTED_DOCKERD_PID" 2>/dev/null
        local i
        for ((i = 0; i < 30; i++)); do kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || break; sleep 1; done
        kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null && kill -9 "$STARTED_DOCKERD_PID"
    fi
    TIMES+=("$(printf '%-28s %4d s' teardown $((SECONDS - t0)))")
    printf '\n=== docker: time per stage\n'
    printf '  %s\n' "${TIMES[@]}"
    printf '  %-28s %4d s\n' total $((SECONDS - T_ALL))
    say "demo pcap and outputs in $ARTIFACTS"
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        say "FAILED: ${FAILED[*]}"
        [[ $rc -ne 0 ]] || rc=1
    fi
    exit $rc
}

main() {
    [[ $EUID -eq 0 ]] || { say "run as root (installs packages, starts dockerd)"; exit 1; }
    trap teardown EXIT
    # Prerequisites stop the run at once; the stages after them all run, and any failure fails CI.
    stage "install docker"        install_tools
    stage "start engine"          start_engine
    "$LAB" down >/dev/null 2>&1 || true    # what an interrupted earlier run may have left
    stage "build (base, image)"   "$LAB" build
    stage "pytest -m docker"      pytest_docker_stage || true
    stage "tests service"         "$LAB" test || true
    stage "demo"                  demo_stage || true
    stage "lab"                   lab_stage || true
    stage "script (.pkt)"         pkt_stage || true
}

main "$@"
