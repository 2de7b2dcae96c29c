"""`rawtcp demo` and `rawtcp compare --kernel` against the real kernel, as a user runs them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from engine_helpers import json_lines, rawtcp, segments

pytestmark = pytest.mark.integration

SEED = [  # SEED.md: (from, flags, rel seq, rel ack, len)
    ("out", "S", 0, None, 0), ("in", "S.", 0, 1, 0), ("out", ".", 1, 1, 0), ("out", "P.", 1, 1, 20),
    ("in", "P.", 1, 21, 10), ("out", ".", 21, 11, 0), ("out", "F.", 21, 11, 0), ("in", ".", 11, 22, 0),
    ("in", "F.", 11, 22, 0), ("out", ".", 22, 12, 0),
]


def test_demo_reproduces_seed_against_the_kernel(require_root, tmp_path):
    pcap = tmp_path / "demo.pcap"
    proc = rawtcp("demo", "--pcap", str(pcap), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    recs = json_lines(proc.stdout)
    segs = segments(recs)
    assert [(s["dir"], s["flags"], s["rel_seq"], s["rel_ack"], s["len"]) for s in segs] == SEED
    assert segs[0]["seq"] == 1000 and "mss 1024" in segs[1]["options"]
    assert segs[0]["options"] == "mss 1460"  # SEED.md's SYN: the bare profile, not Linux's options
    kernel = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "kernel"]
    assert kernel == ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    ours = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "rawtcp"]
    assert ours == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    # The kernel's state beside the segments: half-closed after our FIN, LAST-ACK when it sends its FIN.
    assert [s.get("kernel_state") for s in segs[6:]] == ["CLOSE-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["mismatches"] == []
    assert summary["listener"][0]["received"] == 20 and summary["listener"][0]["sent"] == 10
    assert pcap.exists() and (tmp_path / "demo.pcap.states.json").exists()
    ip = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "rawtcp-demo" not in ip  # its lab is gone


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_demo_capture_agrees_with_tshark(require_root, tmp_path):
    pcap = tmp_path / "demo.pcap"
    proc = rawtcp("demo", "--pcap", str(pcap), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    segs = segments(json_lines(proc.stdout))
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "tcp.seq", "-e", "tcp.ack",
                             "-e", "tcp.len"], capture_output=True, text=True, check=True).stdout.split("\n")
    rows = [line.split("\t") for line in fields if line]
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
    assert bad.strip() == ""  # every checksum valid in the file, the kernel's included


def test_compare_kernel_shows_what_the_kernel_adds(require_root, tmp_path):
    crafted, kernel = tmp_path / "crafted.pcap", tmp_path / "kernel.pcap"
    proc = rawtcp("compare", "--kernel", str(crafted), str(kernel), "--json", timeout=120)
    assert proc.returncode == 1, proc.stderr  # they differ
    result = __import__("json").loads(proc.stdout)
    text = proc.stdout
    assert "sackOK" in text and "wscale" in text  # the kernel's SYN options
    assert result["same"] is False
    # Same shape otherwise: flags and relative numbers agree once options and windows are ignored.
    same = rawtcp("compare", str(crafted), str(kernel), "--ignore", "options,window")
    assert same.returncode == 0, same.stdout
