"""`rawtcp compare --stacks linux,pytcp LAB|SCRIPT` against both real stacks: each run in fresh
namespaces, both ladders with their stack's states, the exchanges compared. Skipped only when the
optional extra (rawtcp[pytcp]) or /dev/net/tun is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytcp_helpers import NEEDS_PYTCP, PASSIVE_OPEN

pytestmark = [
    pytest.mark.integration,
    NEEDS_PYTCP,
]



def _compare(*args: str) -> subprocess.CompletedProcess[str]:
    """One `rawtcp compare --stacks linux,pytcp` run; it must leave none of its namespaces behind."""
    proc = subprocess.Popen([sys.executable, "-m", "rawtcp", "compare", "--stacks", "linux,pytcp", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=240)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    # only this run's: other runs on the machine may have labs of their own meanwhile
    assert [n for n in names if n.startswith(f"rtt-run-{proc.pid}-")] == []
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_script_both_stacks_run_alike_is_the_same(tmp_path: Path) -> None:
    script = tmp_path / "open.pkt"
    script.write_text(PASSIVE_OPEN)
    proc = _compare(str(script), "--pcap-prefix", str(tmp_path / "cap"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "== Linux kernel: pass" in out and "== PyTCP: pass" in out
    # each ladder names its own stack's state column
    assert "kernel: ESTABLISHED" in out and "pytcp: SYN-RECEIVED" in out and "pytcp: ESTABLISHED" in out
    assert "same: 1 connection, 3 segments in each capture" in out
    assert (tmp_path / "cap-linux.pcap").stat().st_size > 0 and (tmp_path / "cap-pytcp.pcap").stat().st_size > 0


def test_the_seed_exchange_differs_where_pytcp_omits_psh() -> None:
    """Lab 2: PyTCP's 10-byte answer carries no PSH (Linux's does); the lab stops there on PyTCP, so the
    close is only in Linux's capture. JSON names each run's stack."""
    proc = _compare("seed-exchange", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["stacks"] == ["linux", "pytcp"]
    runs = report["runs"]
    assert runs["linux"]["stack"] == "linux" and runs["linux"]["exit_code"] == 0
    assert runs["pytcp"]["stack"] == "pytcp" and runs["pytcp"]["exit_code"] == 1
    rows = report["compare"]["rows"]
    flags = next(r for r in rows if "flags" in r["fields"])
    assert flags["a"]["flags"] == "P." and flags["b"]["flags"] == "."
