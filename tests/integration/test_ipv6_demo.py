"""`rawtcp demo --ipv6` against the real kernel, and `ladder` / `compare` on its IPv6 capture."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="module")
def demo6(tmp_path_factory):
    """One `demo --ipv6` run for the module: its JSON records and its capture."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, raw sockets and nftables (run the suite with sudo)")
    if shutil.which("nft") is None:
        pytest.skip("needs nftables (apt-get install nftables)")
    pcap = tmp_path_factory.mktemp("demo6") / "demo6.pcap"
    proc = rawtcp("demo", "--ipv6", "--pcap", str(pcap), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json_lines(proc.stdout), pcap


def test_demo_ipv6_reproduces_seed_against_the_kernel(demo6):
    recs, pcap = demo6
    segs = segments(recs)
    assert [(s["dir"], s["flags"], s["rel_seq"], s["rel_ack"], s["len"]) for s in segs] == SEED
    assert segs[0]["seq"] == 1000 and "mss 1024" in segs[1]["options"]
    assert segs[0]["src"].startswith("[2001:db8::1]:") and segs[0]["dst"] == "[2001:db8::2]:8080"
    kernel = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "kernel"]
    assert kernel == ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    ours = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "rawtcp"]
    assert ours == ["SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
    # The ladder's kernel column over IPv6: half-closed after our FIN, LAST-ACK with its FIN.
    assert [s.get("kernel_state") for s in segs[6:]] == ["CLOSE-WAIT", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["mismatches"] == []
    (entry,) = summary["listener"]
    assert entry["received"] == 20 and entry["sent"] == 10 and entry["peer"].startswith("[2001:db8::1]:")
    assert pcap.exists() and pcap.with_name(pcap.name + ".states.json").exists()
    assert "rawtcp-demo" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_demo_ipv6_capture_holds_ipv6_frames_with_valid_checksums(demo6):
    from rawtcp.capture.pcap import iter_packets
    from rawtcp.wire.packet import decode_frame

    _, pcap = demo6
    frames = [decode_frame(p.data) for p in iter_packets(str(pcap))]
    assert len(frames) == 10
    assert all(f is not None and f.version == 6 and f.checksum_ok for f in frames)
    assert {(f.src_ip, f.dst_ip) for f in frames if f is not None} == {("2001:db8::1", "2001:db8::2"),
                                                                       ("2001:db8::2", "2001:db8::1")}


def test_ladder_reads_the_ipv6_capture_with_kernel_states(demo6):
    _, pcap = demo6
    proc = rawtcp("ladder", str(pcap), "--no-color")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "[2001:db8::1]:" in out and "[2001:db8::2]:8080 (server), 10 segments" in out
    # The side-car's kernel states are drawn for the IPv6 server end.
    assert "(kernel) ESTABLISHED -> CLOSE-WAIT" in out and "(kernel) CLOSE-WAIT -> LAST-ACK" in out
    svg = pcap.with_suffix(".svg")
    assert rawtcp("ladder", str(pcap), "--svg", str(svg)).returncode == 0
    assert "2001:db8::2" in svg.read_text()


def test_compare_ipv6_capture_with_itself_and_with_an_ipv4_run(demo6, tmp_path):
    _, pcap6 = demo6
    same = rawtcp("compare", str(pcap6), str(pcap6), "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    # The same exchange over IPv4: same segments once addresses, ports and ISNs are normalised.
    pcap4 = tmp_path / "demo4.pcap"
    proc = rawtcp("demo", "--pcap", str(pcap4), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    cross = rawtcp("compare", str(pcap4), str(pcap6))
    assert cross.returncode == 0, cross.stdout + cross.stderr
    assert "same: 1 connection, 10 segments in each capture" in cross.stdout


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_demo_ipv6_capture_agrees_with_tshark(demo6):
    recs, pcap = demo6
    segs = segments(recs)
    fields = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ipv6.src", "-e", "tcp.seq",
                             "-e", "tcp.ack", "-e", "tcp.len"], capture_output=True, text=True,
                            check=True).stdout.split("\n")
    rows = [line.split("\t") for line in fields if line]
    assert len(rows) == len(segs) == 10
    for seg, (src, tseq, tack, tlen) in zip(segs, rows, strict=True):
        assert src == ("2001:db8::1" if seg["dir"] == "out" else "2001:db8::2")
        assert int(tseq) == seg["rel_seq"] and int(tlen) == seg["len"]
        if seg["rel_ack"] is not None:
            assert int(tack) == seg["rel_ack"]
    bad = subprocess.run(["tshark", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-Y",
                          "tcp.checksum.status == 0"], capture_output=True, text=True, check=True).stdout
    assert bad.strip() == ""  # rawtcp filled in the checksums veth left partial
