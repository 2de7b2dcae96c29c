"""Ladders: SEED.md's exchange as text (plain and coloured) and as a standalone SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from rawtcp.capture.ladder import render_svg, render_text
from rawtcp.capture.sidecar import write_sidecar
from rawtcp.capture.streams import read_streams

from .builders import T0

SVG = "{http://www.w3.org/2000/svg}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def arrow_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if "->|" in line or "|<-" in line]


def test_seed_text_ladder(seed_pcap: Path) -> None:
    (stream,) = read_streams(seed_pcap)
    text = render_text(stream)
    assert "198.18.0.1:40000 (client)" in text and "198.18.0.2:8080 (server)" in text
    rows = arrow_rows(text)
    assert len(rows) == 10
    expected = [
        ("S seq 0 win 64240 len 0", "->|", "SYN-SENT", "SYN-RECEIVED"),
        ("S. seq 0 ack 1 win 65160 len 0", "|<-", "ESTABLISHED", "SYN-RECEIVED"),
        (". seq 1 ack 1 win 64240 len 0", "->|", "ESTABLISHED", "ESTABLISHED"),
        ("P. seq 1 ack 1 win 64240 len 20", "->|", "ESTABLISHED", "ESTABLISHED"),
        ("P. seq 1 ack 21 win 65160 len 10", "|<-", "ESTABLISHED", "ESTABLISHED"),
        (". seq 21 ack 11 win 64240 len 0", "->|", "ESTABLISHED", "ESTABLISHED"),
        ("F. seq 21 ack 11 win 64240 len 0", "->|", "FIN-WAIT-1", "CLOSE-WAIT"),
        (". seq 11 ack 22 win 65160 len 0", "|<-", "FIN-WAIT-2", "CLOSE-WAIT"),
        ("F. seq 11 ack 22 win 65160 len 0", "|<-", "TIME-WAIT", "LAST-ACK"),
        (". seq 22 ack 12 win 64240 len 0", "->|", "TIME-WAIT", "CLOSED"),
    ]
    for number, (row, (label, arrow, client, server)) in enumerate(zip(rows, expected, strict=True), 1):
        assert f" {label} " in row, row
        assert arrow in row
        assert row.split()[0] == str(number)  # tshark's frame.number
        assert row.split()[2] == client and row.split()[-1] == server
    assert "<mss 1460>" in text and "<mss 1024>" in text
    assert rows[4].split()[1] == "0.040000"  # time since the stream's first segment
    assert not ANSI.search(text)


def test_absolute_and_colour(seed_pcap: Path) -> None:
    (stream,) = read_streams(seed_pcap)
    rows = arrow_rows(render_text(stream, absolute=True))
    assert " S seq 1000 win 64240 len 0 " in rows[0]
    assert " S. seq 8000 ack 1001 " in rows[1]
    assert " . seq 1022 ack 8012 " in rows[9]
    coloured = render_text(stream, color=True)
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == render_text(stream)


def test_recorded_states_are_marked(seed_pcap: Path) -> None:
    write_sidecar(seed_pcap, [{"time": T0 + 0.065, "who": "kernel", "addr": "198.18.0.2:8080",
                               "peer": "198.18.0.1:40000", "old": "ESTABLISHED", "new": "CLOSE_WAIT"}])
    (stream,) = read_streams(seed_pcap)
    text = render_text(stream)
    assert "(kernel) ESTABLISHED -> CLOSE-WAIT" in text
    assert "CLOSE-WAIT*" in text
    assert "state recorded during the run (kernel)" in text


def test_seed_svg(seed_pcap: Path, tmp_path: Path) -> None:
    streams = read_streams(seed_pcap)
    svg = render_svg(streams, title="SEED.md")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width", 0)) > 0 and float(root.get("height", 0)) > 0
    segments = [ln for ln in root.iter(f"{SVG}line") if (ln.get("class") or "").startswith("segment")]
    assert len(segments) == 10
    # horizontal: one capture point cannot tell how long a segment took to cross
    assert all(float(ln.get("y2", 0)) == float(ln.get("y1", 0)) for ln in segments)
    assert [ln.findtext(f"{SVG}title") for ln in segments] == [f"frame {n}" for n in range(1, 11)]
    left_to_right = [float(ln.get("x2", 0)) > float(ln.get("x1", 0)) for ln in segments]
    assert left_to_right == [True, False, True, True, False, True, True, False, False, True]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "S. seq 0 ack 1 win 65160 len 0" in texts
    assert "<mss 1024>" in texts
    assert "198.18.0.1:40000" in texts and "198.18.0.2:8080" in texts
    for state in ("SYN-SENT", "SYN-RECEIVED", "FIN-WAIT-2", "TIME-WAIT", "LAST-ACK", "CLOSED"):
        assert state in texts
    assert "script" not in svg and "href" not in svg  # standalone: nothing to fetch or run
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    legend_text = " ".join(t.text or "" for t in legend.iter(f"{SVG}text"))
    for words in ("SYN", "FIN", "RST", "recorded during the run", "expert info", "horizontal"):
        assert words in legend_text
    absolute = ET.fromstring(render_svg(streams, absolute=True))
    assert "S. seq 8000 ack 1001 win 65160 len 0" in [t.text for t in absolute.iter(f"{SVG}text")]
