#!/usr/bin/env bash
# rawtcp's Docker lab: build the image from a fresh clone, run the demo, labs, scripts and the test suite
# in containers (docker/compose.yaml). Usage:
#
#   scripts/docker-lab.sh build          wheels on the host (pip wheel), base image if needed, image
#   scripts/docker-lab.sh demo [ARGS]    rawtcp demo across two containers
#   scripts/docker-lab.sh lab NAME       rawtcp lab run NAME
#   scripts/docker-lab.sh run SCRIPT     rawtcp run SCRIPT --lab docker   (SCRIPT relative to the cwd)
#   scripts/docker-lab.sh test           the test suite in the `tests` service; fails unless the
#                                        integration tests ran (none skipped)
#   scripts/docker-lab.sh down           remove the lab's containers and network
#   scripts/docker-lab.sh base           only the local base image (debootstrap + docker import)
#   scripts/docker-lab.sh clean          down, then remove the project image and the wheelhouse
#
# Environment: BASE_IMAGE (default python:3.12-slim when it can be pulled, else a local debootstrap image
# rawtcp-base:bookworm), RAWTCP_LOCAL_BASE=1 (always the local base; CI), RAWTCP_IMAGE (rawtcp:local),
# PYTHON (interpreter that builds the wheels), RAWTCP_DEBIAN_MIRROR, RAWTCP_CACHE (/var/cache/rawtcp),
# RAWTCP_KEEP_UP=1 (leave the listener running after demo/lab/run), RAWTCP_TEST_TIMEOUT (s, for `test`;
# 480).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_FILE="$REPO/docker/compose.yaml"
WHEELS="$REPO/docker/.wheels"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-rawtcp}"
export RAWTCP_IMAGE="${RAWTCP_IMAGE:-rawtcp:local}"
# Classic builder: Debian's docker-compose 1.29 drives it through the API, and no buildx plugin is needed.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
# The system-call helper in the listener container obeys only this run's token (compose has a default).
if [[ -z "${RAWTCP_HELPER_TOKEN:-}" ]]; then
    RAWTCP_HELPER_TOKEN="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    export RAWTCP_HELPER_TOKEN
fi

BASE_TAG="rawtcp-base:bookworm"
BASE_SUITE="bookworm"
# Everything the Dockerfile would otherwise apt-get, so the image build needs no apt network.
BASE_PACKAGES="python3,python3-venv,python3-pip,iproute2,nftables,ethtool,tcpdump,procps,iputils-ping,hping3,tshark"
CACHE="${RAWTCP_CACHE:-/var/cache/rawtcp}"
DEFAULT_BASE="python:3.12-slim"

say() { printf 'docker-lab: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

compose() {
    if command -v docker-compose >/dev/null 2>&1; then
        docker-compose -f "$COMPOSE_FILE" "$@"
    else
        docker compose -f "$COMPOSE_FILE" "$@"
    fi
}

need_engine() {
    command -v docker >/dev/null 2>&1 || die "docker not found (Debian: apt-get install docker.io docker-compose)"
    docker info >/dev/null 2>&1 || die "no Docker engine reachable (start dockerd, or check access to /var/run/docker.sock)"
    if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
        die "neither docker-compose nor 'docker compose' found (Debian: apt-get install docker-compose)"
    fi
}

# An interpreter with pip for `pip wheel`: $PYTHON, the active venv, the project's .venv (scripts/setup.sh),
# python3; if that has no pip (Debian without python3-pip), a throwaway venv made from it.
python_cmd() {
    local py
    if [[ -n "${PYTHON:-}" ]]; then py="$PYTHON"
    elif [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then py="$VIRTUAL_ENV/bin/python"
    elif [[ -x "$REPO/${RAWTCP_VENV:-.venv}/bin/python" ]]; then py="$REPO/${RAWTCP_VENV:-.venv}/bin/python"
    else py=python3
    fi
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        "$py" -m venv "$WORK/pyvenv" >&2 || die "$py has no pip and cannot make a venv (apt-get install python3-venv)"
        py="$WORK/pyvenv/bin/python"
    fi
    echo "$py"
}

# The Debian mirror this machine's apt uses (deb822 .sources or one-line lists), else deb.debian.org.
debian_mirror() {
    if [[ -n "${RAWTCP_DEBIAN_MIRROR:-}" ]]; then echo "$RAWTCP_DEBIAN_MIRROR"; return; fi
    local uri
    uri="$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}';
              grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
                  sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'; } |
            grep -E '^https?://.*/debian/?$' | head -n1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

# Local base image without any registry: debootstrap a minimal bookworm, `docker import` it. The rootfs
# tarball is cached under $CACHE and the image carries a key of its package list, so a re-run is a no-op.
build_base() {
    need_engine
    local key tarball root mirror t0
    key="$(printf '%s\n' "$BASE_SUITE" "$BASE_PACKAGES" "trim-v1" | sha256sum | cut -c1-12)"
    if [[ "$(docker image inspect -f '{{ index .Config.Labels "rawtcp.base.key" }}' "$BASE_TAG" 2>/dev/null)" == "$key" ]]; then
        say "base image $BASE_TAG is current (key $key)"
        return
    fi
    mkdir -p "$CACHE"
    tarball="$CACHE/rootfs-$BASE_SUITE-$key.tar"
    if [[ ! -s "$tarball" ]]; then
        command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install debootstrap)"
        [[ $EUID -eq 0 ]] || die "debootstrap needs root"
        mirror="$(debian_mirror)"
        root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
        ROOTFS="$root"  # removed by cleanup() if debootstrap fails or the script is interrupted
        t0=$SECONDS
        say "debootstrap $BASE_SUITE from $mirror (packages: $BASE_PACKAGES)"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$root" "$mirror" \
            >"$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
        say "debootstrap took $((SECONDS - t0)) s"
        # Package caches, lists, docs and locales are not needed at run time (about a third of the size).
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
            "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/debootstrap
        tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        remove_rootfs "$root"
        ROOTFS=""
    else
        say "using cached rootfs $tarball"
    fi
    t0=$SECONDS
    docker import --change "LABEL rawtcp.base.key=$key" --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_TAG" >/dev/null
    say "imported $BASE_TAG in $((SECONDS - t0)) s"
    # Older rootfs tarballs (other package lists) are stale.
    find "$CACHE" -maxdepth 1 -name "rootfs-$BASE_SUITE-*.tar" ! -name "rootfs-$BASE_SUITE-$key.tar" -delete
}

remove_rootfs() {
    local root="$1" m
    [[ -d "$root" ]] || return 0
    # debootstrap mounts proc/sys inside the target; a failed run can leave them: never rm through them.
    for m in $(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" || true; done
    rm -rf --one-file-system "$root"
}

# Which base to build on: BASE_IMAGE if given; the local debootstrap image on CI (RAWTCP_LOCAL_BASE=1)
# or when the default cannot be pulled (no registry); otherwise the default.
choose_base() {
    if [[ -n "${BASE_IMAGE:-}" ]]; then return; fi
    if [[ "${RAWTCP_LOCAL_BASE:-0}" != 1 ]]; then
        if docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1 || timeout 300 docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
            export BASE_IMAGE="$DEFAULT_BASE"
            return
        fi
        say "$DEFAULT_BASE cannot be pulled (no registry?): building a local base image"
    fi
    build_base
    export BASE_IMAGE="$BASE_TAG"
}

# Wheelhouse for the image, made on the host where PyPI is reachable with its CA bundle: rawtcp and every
# dependency (test extras included), so `pip install --no-index` inside the build needs no network.
build_wheels() {
    local py host_tag base_tag arch whl name rest version
    py="$(python_cmd)"
    rm -rf "$WHEELS"
    mkdir -p "$WHEELS" "$WORK/src"
    # Build from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    tar -C "$REPO" --exclude=./.git --exclude='./.venv*' --exclude=./venv --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=./docker/.wheels --exclude=__pycache__ --exclude=.hypothesis \
        --exclude=.ruff_cache --exclude=.pytest_cache --exclude=./captures --exclude=./docker/captures \
        --exclude='*.so' --exclude=./rawtcp/compiled-sources.sha256 -cf - . |
        tar -C "$WORK/src" -xf -
    # Plain Python (RAWTCP_PURE=1): one wheel for any base's Python; the image runs the labs, not benchmarks.
    RAWTCP_PURE=1 "$py" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELS" "$WORK/src[test]"
    # Wheels built for the host's CPython (cpXY tags) do not install on a base with another Python:
    # fetch the base's build of those few instead. Pure-Python wheels (py3-none-any) fit any.
    host_tag="$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
    base_tag="$(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" \
        -c 'import sys; print("%d%d" % sys.version_info[:2])')"
    if [[ "$host_tag" != "$base_tag" ]]; then
        arch="$(uname -m)"
        for whl in "$WHEELS"/*-cp"$host_tag"-*.whl; do
            [[ -e "$whl" ]] || continue
            name="$(basename "$whl")"; rest="${name#*-}"; version="${rest%%-*}"; name="${name%%-*}"
            say "fetching $name $version for Python ${base_tag:0:1}.${base_tag:1}"
            "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
                --python-version "$base_tag" --implementation cp --abi "cp$base_tag" \
                --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
                --platform "manylinux2014_$arch" --dest "$WHEELS" "$name==$version"
            rm -f "$whl"
        done
    fi
    say "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels in ${WHEELS#"$REPO"/}"
}

cmd_build() {
    need_engine
    local t0=$SECONDS
    choose_base
    say "base image: $BASE_IMAGE"
    build_wheels
    say "wheels took $((SECONDS - t0)) s"
    t0=$SECONDS
    # A local base already holds every tool: no apt inside the build (it has no sources or network).
    if [[ "$BASE_IMAGE" == "$BASE_TAG" ]]; then export SKIP_APT=1; fi
    # All services share one image ($RAWTCP_IMAGE); building one builds it for all.
    compose build rawtcp
    say "image $RAWTCP_IMAGE built in $((SECONDS - t0)) s"
}

need_image() {
    need_engine
    docker image inspect "$RAWTCP_IMAGE" >/dev/null 2>&1 || die "image $RAWTCP_IMAGE not built: run scripts/docker-lab.sh build"
}

# Runs `rawtcp ARGS` in the client container (the listener comes up first), then takes the lab down so
# each run starts from a fresh listener namespace.
run_client() {
    need_image
    local rc=0
    compose run --rm rawtcp "$@" || rc=$?
    if [[ "${RAWTCP_KEEP_UP:-0}" != 1 ]]; then
        if [[ $rc -ne 0 ]]; then compose logs --no-color listener >&2 || true; fi
        cmd_down
    fi
    return $rc
}

cmd_test() {
    need_image
    local out rc=0 line
    out="$(mktemp)"
    # pipefail: rc is the tests service's exit status, not tee's.
    # Bounded (docker/tests-entry.sh interrupts pytest): a hung test must not eat CI's time limit.
    RAWTCP_TEST_TIMEOUT="${RAWTCP_TEST_TIMEOUT:-480}" RAWTCP_REQUIRE_INTEGRATION=1 \
        compose run --rm tests 2>&1 | tee "$out" || rc=$?
    line="$(grep -a 'rawtcp-docker: integration tests:' "$out" | tail -n1 || true)"
    rm -f "$out"
    # Belt and braces besides the plugin's own exit status: its summary line must be there and clean.
    [[ -n "$line" ]] || die "the tests service printed no integration summary (plugin not loaded?)"
    [[ $rc -eq 0 ]] || die "tests service failed (exit $rc): $line"
    if [[ ! "$line" =~ :\ ([1-9][0-9]*)\ passed,\ 0\ failed,\ 0\ skipped, ]]; then
        die "integration tests did not all run: $line"
    fi
    say "${line#rawtcp-docker: }"
}

cmd_down() {
    compose --profile capture --profile tests down --remove-orphans --volumes >/dev/null 2>&1 ||
        compose down --remove-orphans --volumes
}

cmd_clean() {
    cmd_down || true
    docker image rm "$RAWTCP_IMAGE" >/dev/null 2>&1 || true
    rm -rf "$WHEELS"
}

cleanup() {
    if [[ -n "${ROOTFS:-}" ]]; then remove_rootfs "$ROOTFS"; fi
    rm -rf "$WORK"
}

main() {
    local cmd="${1:-}"
    WORK="$(mktemp -d)"
    ROOTFS=""
    trap cleanup EXIT
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        build) cmd_build ;;
        base) build_base ;;
        demo) run_client demo "$@" ;;
        lab) [[ $# -ge 1 ]] || die "usage: docker-lab.sh lab NAME"; run_client lab run "$@" ;;
        run) [[ $# -ge 1 ]] || die "usage: docker-lab.sh run SCRIPT.pkt [ARGS]"; run_client run "$@" --lab docker ;;
        test) cmd_test ;;
        down) need_engine; cmd_down ;;
        clean) need_engine; cmd_clean ;;
        *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
