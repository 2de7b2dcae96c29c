"""Helpers for the demo's integration tests (test_demo.py over IPv4, test_ipv6_demo.py over IPv6): what
SEED.md's exchange must look like whichever the family; each test adds its family's addresses."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from engine_helpers import segments, state_changes

SEED = [  # SEED.md: (from, flags, rel seq, rel ack, len)
    ("out", "S", 0, None, 0), ("in", "S.", 0, 1, 0), ("out", ".", 1, 1, 0), ("out", "P.", 1, 1, 20),
    ("in", "P.", 1, 21, 10), ("out", ".", 21, 11, 0), ("out", "F.", 21, 11, 0), ("in", ".", 11, 22, 0),
    ("in", "F.", 11, 22, 0), ("out", ".", 22, 12, 0),
]


def assert_demo_reproduces_seed(recs: list[dict[str, Any]], pcap: Path) -> tuple[list[dict[str, Any]],
                                                                                  dict[str, Any]]:
    """`demo --json`'s records are SEED.md's segments, both sides' states, the listener's counts, a
    capture with its side-car, and no lab left. Returns (the segments, the listener's entry)."""
    segs = segments(recs)
    assert [(s["dir"], s["flags"], s["rel_seq"], s["rel_ack"], s["len"]) for s in segs] == SEED
    assert segs[0]["seq"] == 1000 and "mss 1024" in segs[1]["options"]
    assert state_changes(recs, "kernel") == ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert state_changes(recs, "rawtcp") == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
                                             "CLOSED"]
    # The kernel's state beside the segments: half-closed after our FIN, LAST-ACK when it sends its FIN.
    assert [s.get("kernel_state") for s in segs[6:]] == ["CLOSE-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["mismatches"] == []
    (entry,) = summary["listener"]
    assert entry["received"] == 20 and entry["sent"] == 10
    assert pcap.exists() and pcap.with_name(pcap.name + ".states.json").exists()
    assert "rawtcp-demo" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return segs, entry


def tshark_fields(pcap: Path, *fields: str) -> list[list[str]]:
    """One row per packet: ``fields`` as tshark reads them."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", *(a for f in fields for a in ("-e", f))],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.split("\n") if line]


def assert_tshark_agrees(pcap: Path, segs: list[dict[str, Any]]) -> None:
    """tshark reads the demo's ten segments with our relative numbers, flags nothing, and finds every
    checksum valid (rawtcp filled in the ones veth left partial, the kernel's included)."""
    rows = tshark_fields(pcap, "tcp.seq", "tcp.ack", "tcp.len")
    assert len(rows) == len(segs) == 10
    for seg, (tseq, tack, tlen) in zip(segs, rows, strict=True):
        assert int(tseq) == seg["rel_seq"] and int(tlen) == seg["len"]
        if seg["rel_ack"] is not None:
            assert int(tack) == seg["rel_ack"]
    analysis = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp.analysis.flags"], capture_output=True,
                              text=True, check=True).stdout
    assert analysis.strip() == ""  # a clean run: no retransmission, dup-ack, zero-window… flagged
    bad = subprocess.run(["tshark", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-Y",
                          "tcp.checksum.status == 0"], capture_output=True, text=True, check=True).stdout
    assert bad.strip() == ""
