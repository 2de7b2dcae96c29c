"""Every truncation of real captures: cut a classic pcap and a pcapng at EVERY byte; the reader,
the stream tracker, `ladder` and `compare` raise only CaptureError (one line), or read a prefix of the
packets — never another exception. Exhaustive, so CI covers each cut, not a sample of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rawtcp.capture import CaptureError, PcapWriter, iter_packets
from rawtcp.capture.compare import compare_captures
from rawtcp.capture.ladder import render_text
from rawtcp.capture.streams import read_streams

from .builders import seed_packets


def _classic(path: Path) -> bytes:
    writer = PcapWriter(path)
    for pkt in seed_packets()[:6]:
        writer.write(bytes(pkt), float(pkt.time))
    writer.close()
    return path.read_bytes()


def _pcapng(path: Path) -> bytes:
    from scapy.utils import PcapNgWriter

    with PcapNgWriter(str(path)) as w:
        for pkt in seed_packets()[:6]:
            w.write(pkt)
    return path.read_bytes()


def _exercise(path: Path, full_count: int) -> None:
    try:
        got = sum(1 for _ in iter_packets(path))
        assert got <= full_count
        for stream in read_streams(path, events=[]):
            render_text(stream)
        compare_captures(path, path)
    except CaptureError as exc:
        assert str(exc) and "\n" not in str(exc)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_every_truncation_raises_only_capture_error(tmp_path: Path, kind: str) -> None:
    whole = (_classic if kind == "pcap" else _pcapng)(tmp_path / f"whole.{kind}")
    full_count = sum(1 for _ in iter_packets(tmp_path / f"whole.{kind}"))
    assert full_count == 6
    cut = tmp_path / f"cut.{kind}"
    for n in range(len(whole)):
        cut.write_bytes(whole[:n])
        _exercise(cut, full_count)
