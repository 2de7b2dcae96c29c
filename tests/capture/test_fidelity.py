"""Captures read as tshark reads them: relative SACK, short snapshot lengths, files cut mid-record,
standard input and gzip; pcapng comments carrying the run's states; compare aligned as a diff."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rawtcp.capture.compare import compare_captures, render_compare
from rawtcp.capture.ladder import render_svg, render_text
from rawtcp.capture.pcap import PcapWriter, ReadReport, iter_packets, packet_comment
from rawtcp.capture.sidecar import read_notes, write_sidecar
from rawtcp.capture.streams import read_streams
from rawtcp.commands.capture import compare, ladder

from .builders import C_IP, C_PORT, S_IP, S_PORT, T0, seed_packets, tcp_frame

SVG = "{http://www.w3.org/2000/svg}"


def sack_exchange(c_isn: int = 2_522_798_642, s_isn: int = 77) -> list[Any]:
    """Three segments of 100 bytes, the second lost: the server SACKs the third (tshark: 201:301)."""
    def c(flags: str, seq: int, ack: int, data: bytes = b"", opts: list[Any] | None = None) -> Any:
        return tcp_frame(C_IP, S_IP, C_PORT, S_PORT, flags, c_isn + seq, s_isn + ack if "A" in flags else 0, data,
                         options=opts)

    def s(flags: str, seq: int, ack: int, opts: list[Any] | None = None) -> Any:
        return tcp_frame(S_IP, C_IP, S_PORT, C_PORT, flags, s_isn + seq, c_isn + ack, options=opts)

    pkts = [c("S", 0, 0, opts=[("MSS", 1460), ("SAckOK", b"")]), s("SA", 0, 1, [("MSS", 1460), ("SAckOK", b"")]),
            c("A", 1, 1), c("PA", 1, 1, b"a" * 100), c("PA", 201, 1, b"c" * 100),
            s("A", 1, 101, [("NOP", None), ("NOP", None), ("SAck", (c_isn + 201, c_isn + 301))]),
            c("PA", 101, 1, b"b" * 100), s("A", 1, 301)]
    for i, pkt in enumerate(pkts):
        pkt.time = T0 + i * 0.01
    return pkts


def tshark_fields(tshark: str, path: Path, *fields: str) -> list[list[str]]:
    args = [tshark, "-r", str(path), "-T", "fields"]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


# --- SACK -----------------------------------------------------------------------------------------

def test_sack_blocks_are_relative_as_tshark_shows_them(tshark: str, make_pcap: Callable[..., Path]) -> None:
    path = make_pcap(sack_exchange())
    rows = tshark_fields(tshark, path, "frame.number", "tcp.options.sack_le", "tcp.options.sack_re")
    (le, re_), = [(r[1], r[2]) for r in rows if r[1]]
    assert (le, re_) == ("201", "301")
    (stream,) = read_streams(path, events=[])
    text = render_text(stream)
    assert f"sack {le}:{re_}" in text and "2522798843" not in text
    assert "sack 2522798843:2522798943" in render_text(stream, absolute=True)
    doc = json.loads(CliRunner().invoke(ladder, [str(path), "--json"]).output)
    assert "sack 201:301" in doc["streams"][0]["segments"][5]["options"]


def test_compare_normalises_sack_blocks(make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(sack_exchange())
    b = make_pcap(sack_exchange(c_isn=9, s_isn=4_000_000_000))
    assert compare_captures(a, b).same


# --- short snapshot length ------------------------------------------------------------------------

def test_short_snaplen_keeps_every_segment_with_its_true_length(
        tshark: str, make_pcap: Callable[..., Path], tmp_path: Path) -> None:
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap is not installed (apt-get install wireshark-common)")
    pkts = seed_packets()
    pkts[0]["TCP"].options = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    full = make_pcap(pkts)
    cut = tmp_path / "s60.pcap"
    subprocess.run([editcap, "-s", "60", str(full), str(cut)], check=True)
    theirs = tshark_fields(tshark, cut, "frame.number", "tcp.seq", "tcp.ack", "tcp.len")
    (stream,) = read_streams(cut, events=[])
    ours = [[str(s.number), str(s.rel_seq), str(s.rel_ack), str(s.tcp.payload_len)] for s in stream.segments]
    assert ours == theirs
    assert len(ours) == 10 and ours[3][3] == "20"
    result = CliRunner().invoke(ladder, [str(cut)])
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("rawtcp: warning:")]
    assert len(warnings) == 1 and "cut short by the snapshot length" in warnings[0]
    assert " S seq 0 win 64240 len 0 " in result.output and " P. seq 1 ack 1 win 64240 len 20 " in result.output
    # the capture that lost its payload bytes compares like the full one
    assert compare_captures(full, cut).same


# --- a file cut in the middle of a record ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_cut_file_shows_what_was_read_and_warns(tshark: str, tmp_path: Path, kind: str) -> None:
    whole = tmp_path / f"whole.{kind}"
    with PcapWriter(whole) as w:
        for pkt in seed_packets():
            w.write(bytes(pkt), float(pkt.time))
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(whole.read_bytes()[:-30])
    seen = tshark_fields(tshark, cut, "frame.number")
    report = ReadReport(str(cut))
    assert len(list(iter_packets(cut, report))) == len(seen) == 9
    assert report.damaged and "cut short in the middle of a packet" in report.warnings()[0]
    result = CliRunner().invoke(ladder, [str(cut)])
    assert result.exit_code == 2  # as tshark's: the file is damaged
    assert result.output.count("->|") + result.output.count("|<-") == 9
    assert result.stderr.startswith("rawtcp: warning: ") and result.stderr.count("\n") == 1
    result = CliRunner().invoke(compare, [str(whole), str(cut)])
    assert result.exit_code == 2 and "only in A" in result.output


# --- standard input and gzip ----------------------------------------------------------------------

def test_stdin_and_gzip(seed_pcap: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(ladder, [str(seed_pcap)]).output
    from_stdin = runner.invoke(ladder, ["-"], input=seed_pcap.read_bytes())
    assert from_stdin.exit_code == 0 and from_stdin.output == plain
    packed = tmp_path / "seed.pcap.gz"
    packed.write_bytes(gzip.compress(seed_pcap.read_bytes()))
    assert runner.invoke(ladder, [str(packed)]).output == plain
    assert runner.invoke(ladder, ["-"], input=packed.read_bytes()).output == plain
    assert runner.invoke(compare, [str(seed_pcap), "-"], input=packed.read_bytes()).exit_code == 0
    both = runner.invoke(compare, ["-", "-"], input=b"")
    assert both.exit_code == 2 and "only one of A and B" in both.stderr
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(packed.read_bytes()[:-40])
    assert runner.invoke(ladder, [str(cut)]).exit_code in (0, 2)  # never a traceback
    garbage = tmp_path / "bad.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"\xff" * 40)
    result = runner.invoke(ladder, [str(garbage)])
    assert result.exit_code == 2 and result.stderr.startswith("rawtcp: error: ") and "Traceback" not in result.stderr


# --- the capture carries the states ---------------------------------------------------------------

EVENTS = [
    {"time": T0 + 0.001, "who": "kernel", "addr": "198.18.0.2:8080", "peer": "198.18.0.1:40000",
     "old": "LISTEN", "new": "SYN_RECV"},
    {"time": T0 + 0.011, "who": "rawtcp", "addr": "198.18.0.1:40000", "peer": "198.18.0.2:8080",
     "old": "SYN-SENT", "new": "ESTABLISHED"},
    {"time": T0 + 0.021, "who": "kernel", "addr": "198.18.0.2:8080", "peer": "198.18.0.1:40000",
     "old": "SYN_RECV", "new": "ESTABLISHED"},
    {"time": T0 + 5, "who": "rawtcp", "addr": "198.18.0.1:40000", "peer": "198.18.0.2:8080",
     "old": "TIME-WAIT", "new": "CLOSED"},
]


def test_pcapng_comments_carry_states_and_notes(tshark: str, tmp_path: Path) -> None:
    path = tmp_path / "run.pcapng"
    with PcapWriter(path) as w:
        assert w.pcapng
        for i, pkt in enumerate(seed_packets()):
            w.write(bytes(pkt), float(pkt.time), comment=packet_comment(None, None, "request sent") if i == 3 else None)
    write_sidecar(path, EVENTS)
    comments = [r[1] if len(r) > 1 else "" for r in tshark_fields(tshark, path, "frame.number", "frame.comment")]
    assert len(comments) == 10
    assert comments[1].startswith("states: kernel SYN-RECEIVED")
    assert "state kernel 198.18.0.2:8080 peer 198.18.0.1:40000 LISTEN -> SYN-RECEIVED at" in comments[1]
    assert "states: rawtcp ESTABLISHED | kernel SYN-RECEIVED" in comments[2]
    assert "request sent" in comments[3]
    assert "state rawtcp 198.18.0.1:40000 peer 198.18.0.2:8080 TIME-WAIT -> CLOSED" in comments[9]
    # read back from the capture alone: the side-car may go
    (tmp_path / "run.pcapng.states.json").unlink()
    (stream,) = read_streams(path)
    assert [str(e.new) for e in stream.events] == ["SYN-RECEIVED", "ESTABLISHED", "ESTABLISHED", "CLOSED"]
    assert stream.segments[3].comments == ("request sent",)
    assert "# request sent" in render_text(stream)
    write_sidecar(path, EVENTS)  # annotating again replaces, not repeats
    again = [r[1] if len(r) > 1 else "" for r in tshark_fields(tshark, path, "frame.number", "frame.comment")]
    assert again == comments
    result = compare_captures(path, path)
    assert result.same and any(v and v.comments for _a, v, _f in result.connections[0].pairs)


def test_classic_pcap_comments_go_to_the_side_car(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    with PcapWriter(path) as w:
        assert not w.pcapng
        for i, pkt in enumerate(seed_packets()):
            w.write(bytes(pkt), float(pkt.time), comment="hello" if i == 2 else None)
    assert path.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"
    assert read_notes(path) == {3: ["hello"]}
    write_sidecar(path, EVENTS)  # the states join the notes
    assert read_notes(path) == {3: ["hello"]}
    (stream,) = read_streams(path)
    assert stream.segments[2].comments == ("hello",) and len(stream.events) == 4


def test_recorded_states_are_never_contradicted(seed_pcap: Path) -> None:
    write_sidecar(seed_pcap, EVENTS)
    (stream,) = read_streams(seed_pcap)
    records = sorted((e for e in stream.events if not e.client_side), key=lambda e: e.ts)
    for seg in stream.segments:
        before = [e for e in records if e.ts <= seg.ts]
        if before and seg.ts < records[-1].ts:
            assert seg.server_state == before[-1].new and seg.server_recorded
    svg = ET.fromstring(render_svg([stream]))
    assert any("TCP stream" in (t.text or "") for t in svg.iter(f"{SVG}text"))


# --- markers in the SVG and the JSON --------------------------------------------------------------

def test_markers_in_svg_and_json(make_pcap: Callable[..., Path]) -> None:
    from .builders import expert_captures

    path = make_pcap(expert_captures()["fast_retransmission"])
    svg = ET.fromstring(render_svg(read_streams(path, events=[])))
    markers = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "marker"]
    assert "[TCP Dup ACK 8#1]" in markers and "[TCP Fast Retransmission]" in markers
    doc = json.loads(CliRunner().invoke(ladder, [str(path), "--json"]).output)
    segs = doc["streams"][0]["segments"]
    assert [s["frame"] for s in segs] == list(range(1, len(segs) + 1))
    fast = next(s for s in segs if "fast retransmission" in s["markers"])
    assert fast["labels"] == ["TCP Fast Retransmission"]
    assert [s["dup_ack"]["number"] for s in segs if "dup_ack" in s] == [1, 2, 3]


# --- compare as a diff ----------------------------------------------------------------------------

def test_one_inserted_retransmission_is_one_difference(make_pcap: Callable[..., Path]) -> None:
    a = seed_packets()
    b = seed_packets(c_isn=77, s_isn=99)
    again = b[3].copy()
    again.time = b[3].time + 0.001
    b.insert(4, again)
    result = compare_captures(make_pcap(a), make_pcap(b))
    assert result.differences == 1, result.summary()
    (row,) = result.rows
    assert row.a is None and row.b is not None and row.b.position == 5
    assert row.describe().startswith("connection 0: only in B, segment 5 (frame 5), after segment 4 of A")
    text = render_compare(result)
    assert "+         5" in text and "only in B" in text


def test_changed_length_is_said_in_words(make_pcap: Callable[..., Path]) -> None:
    a = seed_packets()
    b = seed_packets()
    b[3]["Raw"].load = b"c" * 21
    b[3]["IP"].len = None
    result = compare_captures(make_pcap(a), make_pcap(b), ignore={"seq", "ack", "payload"})
    assert result.rows[0].describe() == "connection 0 segment 4: C\u2192S [P.] \u2192 len 20 vs 21"
    assert "!=" not in render_compare(result)


def test_compare_kernel_does_not_overwrite(tmp_path: Path, seed_pcap: Path) -> None:
    existing = tmp_path / "mine.pcapng"
    existing.write_bytes(seed_pcap.read_bytes())
    result = CliRunner().invoke(compare, ["--kernel", str(existing), str(tmp_path / "new.pcapng")])
    assert result.exit_code == 2 and "exists" in result.stderr and "--force" in result.stderr
    assert existing.read_bytes() == seed_pcap.read_bytes()
