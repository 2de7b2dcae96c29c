"""PyTCP as the stack under test, through its agent: the seed exchange and the handshake lab, checked on
the wire and in PyTCP's own states. Skipped only when the optional extra (rawtcp[pytcp]) is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytcp_helpers import NEEDS_PYTCP

pytestmark = [
    pytest.mark.integration,
    NEEDS_PYTCP,
]


def _leftovers(prefix: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    return [n for n in names if n.startswith(prefix)]


def _agent_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"rawtcp_pytcp_agent" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_seed_exchange_against_pytcp_with_its_states():
    """rawtcp as SEED.md's client, PyTCP's seed listener as the server: the exchange on the wire and
    PyTCP's own state beside each segment (the column is the stack's, not the kernel's)."""
    from rawtcp.lab import topology
    from rawtcp.session.demo import run_demo

    records: list[dict] = []
    before = set(_agent_pids())
    pcap = f"/tmp/rawtcp-pytcp-seed-{os.getpid()}.pcap"
    try:
        result = run_demo(pcap, records.append, stack_name="pytcp", msl2=0.2)
    finally:
        Path(pcap).unlink(missing_ok=True)
        Path(pcap + ".states.json").unlink(missing_ok=True)
    segs = [(r["dir"], r["flags"], r["rel_seq"], r.get("rel_ack"), r["len"]) for r in result.segments]
    # 1-4: the open and our 20 bytes; PyTCP's 10 bytes ride on the ACK of ours (as SEED.md's segment 5)
    assert segs[0] == ("out", "S", 0, None, 0) or segs[0][:3] == ("out", "S", 0)
    assert segs[1][:2] == ("in", "S.") and "mss 1024" in result.segments[1]["options"]
    assert ("in", 1, 21, 10) in [(d, s, a, n) for d, _f, s, a, n in segs]
    # PyTCP's data carries no PSH (Linux's does): a difference between the stacks, seen on the wire
    answer = next(r for r in result.segments if r["dir"] == "in" and r["len"] == 10)
    assert answer["flags"] == "."
    # the close: our FIN, PyTCP's ACK of it on its own, then its FIN
    tail = [(d, f) for d, f, *_ in segs[-4:]]
    assert tail == [("out", "F."), ("in", "."), ("in", "F."), ("out", ".")]
    assert result.kernel_states[:2] == ["SYN-RECEIVED", "ESTABLISHED"]
    assert {"CLOSE-WAIT", "LAST-ACK", "CLOSED"} <= set(result.kernel_states)
    assert [e["received"] for e in result.listener_log] == [20] and result.received == b"0123456789"
    assert not topology.list_labs() or all(not s["config"]["client_ns"].startswith("rawtcp-demo-")
                                           for s in topology.list_labs())
    assert set(_agent_pids()) <= before  # the agent went with its lab


def test_handshake_lab_against_pytcp():
    """Lab 1 (the three-way open) against PyTCP: the open completes, but PyTCP's SYN-ACK answers a SYN
    offering SACK and window scaling with MSS alone (it implements neither), where Linux echoes both;
    the lab stops there, and the ladder shows PyTCP's states."""
    from rawtcp.core.segment import Flags
    from rawtcp.script.catalogue import find, run_lab

    result = run_lab(find("handshake"), stack="pytcp")
    assert not result.passed
    assert "bad outbound TCP options" in (result.error or "") and "vs actual: <mss 1460>" in (result.error or "")
    synack = next(e for e in result.ladder if e.direction == ">" and e.segment.flags & Flags.SYN)
    assert [name for name, _ in synack.segment.options] == ["MSS"]
    assert synack.kstate == "SYN-RECEIVED" and synack.who == "pytcp"
    assert _leftovers("rtt-run-") == []


def test_unsupported_call_is_exit_2_one_line(tmp_path):
    """What PyTCP's socket API cannot express is bad input for that stack (exit 2), not a failure."""
    script = tmp_path / "maxseg.pkt"
    script.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                      "+0 setsockopt(3, SOL_TCP, TCP_MAXSEG, [1000], 4) = 0\n")
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "run", str(script), "--stack", "pytcp"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unsupported on stack pytcp" in lines[0] and "TCP_MAXSEG" in lines[0]
    assert "Traceback" not in proc.stderr
    assert _leftovers("rtt-run-") == [] and not _agent_pids()
