"""Wireshark's expert markers on the ladder agree with tshark's ``tcp.analysis.*``, frame by frame.

Checked on one capture per marker (builders.expert_captures) and on random messy exchanges; the tests
skip only when tshark is absent (CI installs it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from rawtcp.capture import analysis as A
from rawtcp.capture.ladder import render_text
from rawtcp.capture.streams import read_streams

from .builders import expert_captures, random_exchange

# tshark's fields, and what rawtcp must say for each (fast and spurious retransmissions are also
# "retransmission" to tshark; duplicate_ack_num is the n of "Dup ACK frame#n").
FIELDS = {
    "tcp.analysis.retransmission": {A.RETRANSMISSION, A.FAST_RETRANSMISSION, A.SPURIOUS_RETRANSMISSION},
    "tcp.analysis.fast_retransmission": {A.FAST_RETRANSMISSION},
    "tcp.analysis.spurious_retransmission": {A.SPURIOUS_RETRANSMISSION},
    "tcp.analysis.duplicate_ack_num": None,
    "tcp.analysis.out_of_order": {A.OUT_OF_ORDER},
    "tcp.analysis.zero_window": {A.ZERO_WINDOW},
    "tcp.analysis.window_full": {A.WINDOW_FULL},
    "tcp.analysis.keep_alive": {A.KEEP_ALIVE},
    "tcp.analysis.window_update": {A.WINDOW_UPDATE},
    "tcp.analysis.lost_segment": {A.LOST_SEGMENT},
    "tcp.analysis.ack_lost_segment": {A.ACK_LOST_SEGMENT},
    "tcp.analysis.keep_alive_ack": {A.KEEP_ALIVE_ACK},
    "tcp.analysis.zero_window_probe": {A.ZERO_WINDOW_PROBE},
    "tcp.analysis.zero_window_probe_ack": {A.ZERO_WINDOW_PROBE_ACK},
}


def tshark_markers(tshark: str, path: Path) -> dict[int, tuple[str, ...]]:
    args = [tshark, "-r", str(path), "-T", "fields", "-e", "frame.number"]
    for name in FIELDS:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        number, *values = line.split("\t")
        result[int(number)] = tuple(v if name == "tcp.analysis.duplicate_ack_num" else ("1" if v else "")
                                    for name, v in zip(FIELDS, values, strict=True))
    return result


def rawtcp_markers(path: Path) -> dict[int, tuple[str, ...]]:
    result = {}
    for stream in read_streams(path, events=[]):
        for seg in stream.segments:
            marks = set(seg.analysis.markers)
            result[seg.number] = tuple(
                (str(seg.analysis.dupack_num) if seg.analysis.dupack_num else "") if wanted is None
                else ("1" if marks & wanted else "") for wanted in FIELDS.values())
    return result


def assert_agree(tshark: str, path: Path) -> dict[int, tuple[str, ...]]:
    theirs, ours = tshark_markers(tshark, path), rawtcp_markers(path)
    names = list(FIELDS)
    diffs = [f"frame {n}: tshark {[names[i] for i, v in enumerate(t) if v]} rawtcp "
             f"{[names[i] for i, v in enumerate(ours.get(n, ())) if v]}"
             for n, t in sorted(theirs.items()) if ours.get(n) != t]
    assert not diffs, "\n".join(diffs)
    return theirs


CAPTURES = expert_captures()
EXPECTED = {  # the marker each capture is built to show (it may show others too)
    "retransmission": "tcp.analysis.retransmission", "fast_retransmission": "tcp.analysis.fast_retransmission",
    "out_of_order": "tcp.analysis.out_of_order", "zero_window": "tcp.analysis.zero_window",
    "window_full": "tcp.analysis.window_full", "keep_alive": "tcp.analysis.keep_alive",
    "window_update": "tcp.analysis.window_update", "lost_segment": "tcp.analysis.lost_segment",
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_markers_agree_with_tshark(tshark: str, make_pcap: Callable[..., Path], name: str) -> None:
    path = make_pcap(CAPTURES[name], f"{name}.pcap")
    theirs = assert_agree(tshark, path)
    column = list(FIELDS).index(EXPECTED[name])
    assert any(values[column] for values in theirs.values()), f"{name}.pcap does not show {EXPECTED[name]}"


def test_duplicate_acks_are_numbered_as_tshark_does(tshark: str, make_pcap: Callable[..., Path]) -> None:
    path = make_pcap(CAPTURES["fast_retransmission"])
    theirs = assert_agree(tshark, path)
    column = list(FIELDS).index("tcp.analysis.duplicate_ack_num")
    assert [v[column] for v in theirs.values() if v[column]] == ["1", "2", "3"]
    (stream,) = read_streams(path, events=[])
    text = render_text(stream)
    assert "[TCP Dup ACK 8#1]" in text and "[TCP Dup ACK 8#3]" in text
    assert "[TCP Fast Retransmission]" in text


@pytest.mark.parametrize("seed", range(40))
def test_random_exchanges_agree_with_tshark(tshark: str, make_pcap: Callable[..., Path], seed: int) -> None:
    assert_agree(tshark, make_pcap(random_exchange(seed)))


def test_labels_and_json() -> None:
    analysis = A.Analysis((A.RETRANSMISSION, A.DUPLICATE_ACK), dupack_num=2, dupack_frame=7)
    assert analysis.labels() == ["TCP Retransmission", "TCP Dup ACK 7#2"]
    assert analysis.to_json() == {"markers": ["retransmission", "duplicate ack"],
                                  "dup_ack": {"number": 2, "of_frame": 7}}
    assert not A.NONE and analysis
