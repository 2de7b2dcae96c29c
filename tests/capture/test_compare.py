"""Semantic comparison: what is normalised away, what is reported, ignore, time tolerance, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from rawtcp.capture import CaptureError
from rawtcp.capture.compare import compare_captures, render_compare

from .builders import seed_packets


def other_run(**kw: object) -> list[object]:
    """SEED's exchange as a second run would capture it: other ISNs, port, IP IDs, TTL, TS values, times."""
    args = {"c_isn": 3_000_000_000, "s_isn": 77, "c_port": 51515, "ip_id": 9000, "ttl": 61,
            "t0": 1_800_000_000.0}
    args.update(kw)
    return seed_packets(**args)  # type: ignore[arg-type]


def test_runs_differing_only_in_normalised_fields_are_the_same(make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(seed_packets(ts_base=5))
    b = make_pcap(other_run(ts_base=999_999))
    result = compare_captures(a, b)
    assert result.same, result.summary()
    assert result.summary() == "same: 1 connection, 10 segments in each capture"
    (conn,) = result.connections
    assert conn.a_client == "198.18.0.1:40000" and conn.b_client == "198.18.0.1:51515"
    assert len(conn.pairs) == 10 and not any(fields for *_, fields in conn.pairs)


def test_window_difference_and_ignore(make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(seed_packets())
    b = make_pcap(other_run(server_window=29200))
    result = compare_captures(a, b)
    assert not result.same
    assert [(r.segment, r.fields) for r in result.rows] == [(i, ("window",)) for i in (2, 5, 8, 9)]
    assert result.rows[0].a.window == 65160 and result.rows[0].b.window == 29200  # type: ignore[union-attr]
    assert "connection 0 segment 2: C\u2190S [S.] \u2192 win 65160 vs 29200" in result.summary()
    assert compare_captures(a, b, ignore={"window"}).same


def test_options_payload_and_missing_segments(make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(seed_packets())
    pk = seed_packets()
    pk[0]["TCP"].options = [("MSS", 1400)]
    pk[3]["Raw"].load = b"C" * 20
    b = make_pcap(pk)
    result = compare_captures(a, b)
    assert [(r.segment, r.fields) for r in result.rows] == [(1, ("options",)), (4, ("payload",))]
    assert result.rows[0].describe().endswith("C\u2192S [S] \u2192 <mss 1460> vs <mss 1400>")
    assert result.rows[1].describe().endswith("C\u2192S [P.] \u2192 payload differs from byte 0")
    assert compare_captures(a, b, ignore={"options", "payload"}).same
    short = make_pcap(seed_packets()[:-1])
    result = compare_captures(a, short)
    assert [(r.segment, r.fields, r.b) for r in result.rows] == [(10, ("missing",), None)]
    assert result.connections[0].segments_b == 9
    assert "only in A, segment 10 (frame 10), after segment 9 of B" in result.rows[0].describe()


def test_time_tolerance_compares_gaps(make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(seed_packets(step=0.010))
    b = make_pcap(other_run(step=0.015))
    assert compare_captures(a, b).same  # times are ignored by default
    strict = compare_captures(a, b, time_tolerance_ms=1)
    assert not strict.same
    assert {r.fields for r in strict.rows} == {("time",)}
    assert len(strict.rows) == 9  # every gap after the first segment is 5 ms longer
    assert "gap 10.000 ms vs 15.000 ms" in strict.rows[0].describe()
    assert compare_captures(a, b, time_tolerance_ms=6).same


def test_connections_matched_by_order_and_role_not_port(make_pcap: Callable[..., Path]) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    one = seed_packets(c_port=1000)
    two = seed_packets(c_port=2000, s_isn=100, t0=seed_packets()[0].time + 0.005)
    a = make_pcap(sorted(one + two, key=lambda p: p.time))
    three = other_run(c_port=3000)
    four = other_run(c_port=4000, t0=three[0].time + 0.005)
    noise = Ether() / IP(src="198.18.0.3", dst="198.18.0.4") / UDP()
    noise.time = three[0].time + 0.001
    b = make_pcap(sorted([*three, *four, noise], key=lambda p: p.time))
    result = compare_captures(a, b)
    assert result.same, result.summary()
    assert [c.b_client for c in result.connections] == ["198.18.0.1:3000", "198.18.0.1:4000"]
    lonely = make_pcap(three)
    result = compare_captures(a, lonely)
    assert not result.same and result.differences == 1
    assert result.connections[1].segments_b == 0 and result.connections[1].only == "A"
    (row,) = result.rows
    assert row.describe() == ("connection 1 (198.18.0.1:2000 \u2192 198.18.0.2:8080, 10 segments) is only in A: "
                              "B has no connection 1")
    assert row.describe() in render_compare(result)


def test_pcap_against_pcapng(tmp_path: Path, make_pcap: Callable[..., Path]) -> None:
    from scapy.utils import PcapNgWriter

    ng = tmp_path / "b.pcapng"
    with PcapNgWriter(str(ng)) as w:
        for pkt in other_run():
            w.write(pkt)
    assert compare_captures(make_pcap(seed_packets()), ng).same


def test_json_and_rendering(make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(seed_packets())
    b = make_pcap(other_run(server_window=1000))
    result = compare_captures(a, b)
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["same"] is False and doc["differences"] == 4
    assert doc["segments"] == {"a": 10, "b": 10}
    assert doc["rows"][0]["fields"] == ["window"]
    assert doc["rows"][0]["a"]["flags"] == "S." and doc["rows"][0]["b"]["window"] == 1000
    assert doc["connections"][0]["b"]["client"] == "198.18.0.1:51515"
    text = render_compare(result)
    marked = [line for line in text.splitlines() if line.startswith("!")]
    assert len(marked) == 4 and all(line.rstrip().endswith("win 65160 vs 1000") for line in marked)
    # the same numbers in the text and the JSON: segment 2 is the SYN-ACK in both
    assert doc["rows"][0]["a"]["segment"] == 2 and doc["rows"][0]["a"]["frame"] == 2
    assert marked[0].split()[1:3] == ["2", "2"]
    assert text.rstrip().splitlines()[-1] == result.summary()
    assert "C\u2190S S.  seq 0 ack 1 win 65160 len 0 <mss 1024>" in text
    assert "!=" not in text and "flags 18" not in text
    assert "\x1b[" in render_compare(result, color=True)


def test_errors(tmp_path: Path, make_pcap: Callable[..., Path]) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    a = make_pcap(seed_packets())
    with pytest.raises(CaptureError, match="unknown field 'colour'"):
        compare_captures(a, a, ignore={"colour"})
    udp = make_pcap([Ether() / IP() / UDP()])
    with pytest.raises(CaptureError, match=f"no TCP segments in {udp}"):
        compare_captures(a, udp)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match=f"{empty}: empty file"):
        compare_captures(a, empty)


def _generate(path: Path, packets: int) -> int:
    sys.path.insert(0, str(SCRIPTS))
    try:
        from benchmark import compare as capture_gen
    finally:
        sys.path.pop(0)
    return capture_gen.generate(str(path), packets)


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
_PEAK_RSS = """
import sys
from rawtcp.capture.compare import compare_captures
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
before = hwm()
result = compare_captures(sys.argv[1], sys.argv[2])
assert result.same and result.segments_a == 200_000, result.summary()
print(hwm() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc for the peak RSS")
def test_memory_stays_flat_on_200k_packets(tmp_path: Path) -> None:
    """Two 200k-packet captures (~120 MB each): the peak RSS grows by a small fraction of one file."""
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    assert _generate(a, 200_000) == 200_000
    b.write_bytes(a.read_bytes())
    size = os.path.getsize(a)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(a), str(b)], env=env, check=True,
                         capture_output=True, text=True).stdout
    growth = int(out.split()[-1])
    # ~13 MiB here (two 1 MiB read-ahead chunks, the interpreter's arenas, the comparison's tables);
    # a capture held in memory would be 240 MB. Flatness itself is checked by the tracemalloc test below.
    assert growth < size / 4, (growth, size)


def test_traced_peak_does_not_grow_with_the_capture(tmp_path: Path) -> None:
    """tracemalloc's peak for a capture 4x longer stays the same: nothing accumulates per packet."""
    peaks = []
    for packets in (5_000, 20_000):
        path = tmp_path / f"{packets}.pcap"
        _generate(path, packets)
        tracemalloc.start()
        try:
            result = compare_captures(path, path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.same and result.segments_a == packets
        peaks.append(peak)
    small, large = peaks
    assert large < small * 1.3 + (512 << 10), peaks
    assert large < 16 << 20, peaks  # two files' read-ahead chunks, whatever the capture's size
