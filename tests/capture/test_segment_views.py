"""One segment, every text view: the ladder, a comparison's row, a script's ladder, a session's line, the
demo's ladder and a probe's answer spell its fields the same way (``rawtcp.core.segment.segment_line``);
only the layout around them and the numbers chosen (absolute, relative, both) differ. Pure: no root."""

from __future__ import annotations

from pathlib import Path

from rawtcp.capture.compare import SegmentView
from rawtcp.capture.ladder import options_label, segment_label
from rawtcp.capture.streams import read_streams
from rawtcp.commands.demo import ladder_lines
from rawtcp.commands.output import format_record
from rawtcp.core.segment import Flags, Segment
from rawtcp.craft.probe import ProbeResult, reply_line
from rawtcp.script.results import LadderEntry
from rawtcp.session.records import segment_record

# SEED.md's segment 2: the server's SYN-ACK, ISN 8000, answering the client's ISN 1000
SYNACK = Segment(8080, 40000, 8000, 1001, Flags.SYN | Flags.ACK, 65160, (("MSS", 1024),))


def test_the_capture_ladder(seed_pcap: Path) -> None:
    (stream,) = read_streams(seed_pcap)
    synack = stream.segments[1]
    assert segment_label(synack) == "S. seq 0 ack 1 win 65160 len 0"
    assert segment_label(synack, absolute=True) == "S. seq 8000 ack 1001 win 65160 len 0"
    assert options_label(synack) == "<mss 1024>"  # on its own line under the arrow
    assert segment_label(stream.segments[0]) == "S seq 0 win 64240 len 0"  # no ACK flag, no ack


def test_a_comparison_row() -> None:
    view = SegmentView(1, int(SYNACK.flags), 0, 1, 0, 65160, b"\x02\x04\x04\x00", None)
    assert view.text() == "C\u2190S S.  seq 0 ack 1 win 65160 len 0 <mss 1024>"
    stamped = SegmentView(0, int(Flags.ACK), 1, 1, 0, 502, b"\x01\x01\x08\x0a" + bytes(8), None)
    assert stamped.text() == "C\u2192S .   seq 1 ack 1 win 502 len 0 <nop,nop,TS>"  # values zeroed on reading
    assert stamped.word("options") == "<nop,nop,TS>"


def test_a_script_ladder_in_the_scripts_own_syntax() -> None:
    entry = LadderEntry(0.001, ">", SYNACK, 0, 1)
    assert entry.text() == " 0.001000 > S.    0:0(0) ack 1 win 65160 <mss 1024>"
    data = LadderEntry(0.2, "<", Segment(40000, 8080, 1001, 8001, Flags.PSH | Flags.ACK, 64240, (), b"x" * 20),
                       1, 1, label="40000")
    assert data.text() == " 0.200000 [40000] < P.    1:21(20) ack 1 win 64240"


def test_a_session_line_and_the_demo_ladder() -> None:
    rec = segment_record(0.0125, "in", SYNACK, iss=1000, irs=8000, state="SYN-SENT", src="s", dst="c")
    line = format_record(rec)
    assert line == ("\u2190 0.012500 [S.]   seq 8000 (rel 0)  ack 1001 (rel 1)  win 65160  len 0  <mss 1024>"
                    "   SYN-SENT")
    row = ladder_lines([rec])[1]
    # the demo's columns: absolute with relative in brackets, no window (the README's width)
    assert "\u25c0\u2500\u2500 [S.]  seq 8000 (0)" in row
    assert "ack 1001 (1)           len 0 <mss 1024> \u25c0\u2500\u2500" in row


def test_a_probe_answer_in_nping_words() -> None:
    sent = Segment(40000, 8080, 1000, 0, Flags.SYN, 64240, (("MSS", 1460),))
    res = ProbeResult(1, "198.18.0.1:40000", "198.18.0.2:8080", sent, 0.0, 44, 64, 1, SYNACK, 64, 0, True, 0.05)
    assert reply_line(res).endswith("S. ttl=64 id=0 seq=8000 ack=1001 win=65160 len=0 <mss 1024> rtt=0.050ms")
