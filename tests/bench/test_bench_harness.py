"""The benchmark harness as a whole: outside the package, on rawtcp's public names only, its kernel source
serving the bytes it was given (on loopback: no root, no namespace), its command line."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_is_not_in_the_installed_package() -> None:
    from rawtcp.cli import COMMANDS

    assert "bench" not in COMMANDS
    assert importlib.util.find_spec("rawtcp.craft.bench") is None
    assert not list((ROOT / "rawtcp").rglob("bench*.py"))


def test_the_harness_uses_only_public_names_of_rawtcp(tmp_path: Path) -> None:
    layers = _load(ROOT / "tests" / "test_layers.py", "rawtcp_test_layers_for_bench")  # its import checker
    (tmp_path / "bench.py").write_text((SCRIPTS / "bench.py").read_text())  # the checker walks folders
    found = layers.violations(SCRIPTS / "benchmark", outside=True) + layers.violations(tmp_path, outside=True)
    assert found == []


def test_only_takes_known_sections() -> None:
    bench = _load(SCRIPTS / "bench.py", "rawtcp_bench_entry")
    assert bench._sections("loss") == ("loss",)
    assert bench._sections("loss, lab,loss") == ("loss", "lab")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown section nope: choose from cold-start"):
        bench._sections("loss,nope")
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--only SECTIONS" in out.stdout and "loss recovery" in out.stdout


@pytest.mark.parametrize("cc", ["reno", "bbr"])
def test_the_kernel_source_sends_the_file_with_the_congestion_control_asked_for(tmp_path: Path, cc: str) -> None:
    available = Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()
    if cc not in available:
        pytest.skip(f"{cc} is not available on this kernel")
    payload = os.urandom(200_000)
    (tmp_path / "payload").write_bytes(payload)
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "benchmark" / "kernel_peer.py"), "--addr", "127.0.0.1",
                             "--port", "0", "--file", str(tmp_path / "payload")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        word, port = proc.stdout.readline().split()
        assert word == b"ready"
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as sock:
            sock.sendall(f"{cc}\n".encode())
            got = bytearray()
            while chunk := sock.recv(65536):
                got += chunk
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM ends it cleanly
        proc.stdout.close()
