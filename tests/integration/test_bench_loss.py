"""The benchmark's loss-recovery row against a real kernel, made small: every client moves the bytes both
ways over an impaired lab of the benchmark's own, what arrived is checked, and nothing is left behind,
also when the benchmark is stopped with SIGTERM half-way. Needs root; labs are named rtt-bench-*.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import keeper_pids, namespaces, wait_until

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def runtime(tmp_path, monkeypatch, require_root):
    """A private runtime directory (sessions never mix with a user's); keepers inherit it."""
    run_dir = str(tmp_path / "run")
    monkeypatch.setenv("RAWTCP_RUNTIME_DIR", run_dir)
    return run_dir


@pytest.fixture
def lossy(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from benchmark import lossy as module

    return module


def _bench_namespaces(pid: int) -> list[str]:
    return [ns for ns in namespaces() if ns.startswith(f"rtt-bench-{pid}-")]


def test_every_client_moves_the_bytes_both_ways_and_the_lab_goes(runtime, lossy) -> None:
    plan = lossy.LossPlan(nbytes=32 * 1024, runs=1, loss=5, reorder=0, duplicate=0, delay_ms=10, jitter_ms=0,
                          timeout=30.0, short=True)
    lines: list[str] = []
    record = lossy.loss_recovery(plan, on_progress=lines.append)
    transfers = record["transfers"]
    assert sorted((t["client"], t["direction"]) for t in transfers) == sorted(
        (c, d) for c in lossy.CLIENTS for d in lossy.DIRECTIONS)
    for t in transfers:
        assert t["intact"] and t["delivered"] == plan.nbytes and t["seconds"] is not None, (t, lines)
    assert record["impairment"]["loss"] == 5
    assert record["rawtcp_syn_options"] is not None  # the defaults in force are on the record
    for direction in lossy.DIRECTIONS:
        assert record["summary"][direction]["ratio_reno"] is not None
    assert not _bench_namespaces(os.getpid())
    assert wait_until(lambda: not keeper_pids(runtime), 10), keeper_pids(runtime)


def test_sigterm_half_way_removes_the_lab_and_the_sessions(runtime, tmp_path) -> None:
    env = dict(os.environ, RAWTCP_RUNTIME_DIR=runtime)
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "bench.py"), "--quick", "--only", "loss", "--json",
                             str(tmp_path / "bench.json")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # stop it once transfers are under way (a session keeper exists)
            if "loss run 1/" in line:
                break
        assert _bench_namespaces(proc.pid), "the benchmark's lab is not up"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _bench_namespaces(proc.pid)
    assert wait_until(lambda: not keeper_pids(runtime), 10), keeper_pids(runtime)
    assert not (tmp_path / "bench.json").exists()  # an interrupted run writes no record
