#!/usr/bin/env bash
# Install what rawtcp needs on a fresh Debian/Ubuntu machine (as root): system tools and a venv.
# Idempotent: a second run only checks. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc, libc6-dev, python3-dev: mypyc compiles the hot path to C at install (setup.py); without them the
# install still works, as plain Python, about three times slower.
APT_PACKAGES=(iproute2 nftables libnftables1 tcpdump tshark hping3 ethtool iputils-ping procps python3-venv
              gcc libc6-dev python3-dev)
VENV=${RAWTCP_VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh: run it as root (sudo): it installs packages and rawtcp needs raw sockets" >&2
  exit 6
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Reinstalled when pyproject.toml or setup.py changed, or a compiled source was edited since the build
# (the install compiles it again).
if ! "$VENV/bin/python" -c "import rawtcp, scapy, click, pyroute2, pytest, hypothesis" 2>/dev/null \
   || [ pyproject.toml -nt "$VENV/.installed" ] || [ setup.py -nt "$VENV/.installed" ] \
   || ! "$VENV/bin/python" -c "import sys, rawtcp; sys.exit('sources changed' in rawtcp.compiled.status())" 2>/dev/null
then
  echo "== installing rawtcp into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q -e ".[test,pytcp]"
  touch "$VENV/.installed"
fi
