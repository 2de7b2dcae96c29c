"""`rawtcp demo --ipv6` against the real kernel, and `ladder` / `compare` on its IPv6 capture."""

from __future__ import annotations

import shutil

import pytest
from demo_helpers import assert_demo_reproduces_seed, assert_tshark_agrees, tshark_fields
from engine_helpers import json_lines, rawtcp, segments

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def demo6(tmp_path_factory):
    """One `demo --ipv6` run for the module: its JSON records and its capture."""
    pcap = tmp_path_factory.mktemp("demo6") / "demo6.pcap"
    proc = rawtcp("demo", "--ipv6", "--pcap", str(pcap), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json_lines(proc.stdout), pcap


def test_demo_ipv6_reproduces_seed_against_the_kernel(demo6):
    recs, pcap = demo6
    segs, listener = assert_demo_reproduces_seed(recs, pcap)
    assert segs[0]["src"].startswith("[2001:db8::1]:") and segs[0]["dst"] == "[2001:db8::2]:8080"
    assert listener["peer"].startswith("[2001:db8::1]:")


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
    assert_tshark_agrees(pcap, segs)
    sources = [row[0] for row in tshark_fields(pcap, "ipv6.src")]
    assert sources == [("2001:db8::1" if seg["dir"] == "out" else "2001:db8::2") for seg in segs]
