"""rawtcp.api's capture half, without root: streams and segments as tshark numbers them, comparison."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rawtcp import api

C, S = ("198.18.0.1", 40000), ("198.18.0.2", 8080)


def _seg(src: tuple[str, int], dst: tuple[str, int], flags: str, seq: int, ack: int, data: bytes = b""):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    return Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq,
                                                        ack=ack) / data


def _exchange(c: tuple[str, int], c_isn: int, s_isn: int, payload: bytes = b"x" * 20) -> list:
    n = len(payload)
    return [_seg(c, S, "S", c_isn, 0), _seg(S, c, "SA", s_isn, c_isn + 1), _seg(c, S, "A", c_isn + 1, s_isn + 1),
            _seg(c, S, "PA", c_isn + 1, s_isn + 1, payload), _seg(S, c, "A", s_isn + 1, c_isn + 1 + n),
            _seg(c, S, "FA", c_isn + 1 + n, s_isn + 1), _seg(S, c, "FA", s_isn + 1, c_isn + 2 + n),
            _seg(c, S, "A", c_isn + 2 + n, s_isn + 2)]


def _write(path: Path, packets: list) -> Path:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = [*packets[:3], Ether() / IP(src="198.18.0.1", dst="198.18.0.9") / UDP(), *packets[3:]]  # not TCP
    for i, p in enumerate(packets):
        p.time = 1_700_000_000 + i / 100
    wrpcap(str(path), packets)
    return path


@pytest.fixture
def two_streams(tmp_path: Path) -> Path:
    first = _exchange(C, 1000, 5000)
    second = _exchange(("198.18.0.1", 40001), 777, 9000, b"hello")
    return _write(tmp_path / "two.pcap", first[:4] + second + first[4:])


def test_read_capture_gives_streams_with_relative_numbers(two_streams: Path) -> None:
    streams = api.read_capture(two_streams)
    assert [st.index for st in streams] == [0, 1]
    first, second = streams
    assert first.client == C and first.server == S and len(first.segments) == 8
    assert [api.flag_text(seg.tcp.flags) for seg in first.segments] == ["S", "S.", ".", "P.", ".", "F.", "F.", "."]
    assert [seg.rel_seq for seg in first.segments if seg.from_client] == [0, 1, 1, 21, 22]
    assert first.segments[3].tcp.payload_len == 20 and first.segments[3].tcp.seq == 1001
    assert str(first.segments[-1].client_state) in ("TIME-WAIT", "State.TIME_WAIT")
    assert second.segments[3].tcp.payload == b"hello"
    assert api.read_capture(two_streams, stream=1)[0].client == ("198.18.0.1", 40001)


def test_segments_are_in_file_order_with_their_stream(two_streams: Path) -> None:
    pairs = list(api.segments(two_streams))
    assert len(pairs) == 16
    numbers = [seg.number for _st, seg in pairs]
    assert numbers == sorted(numbers) and 4 not in numbers  # frame 4 is the UDP packet
    assert [st.index for st, _seg in pairs] == [0] * 4 + [1] * 8 + [0] * 4


def test_segment_count_equals_tsharks(two_streams: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    out = subprocess.run(["tshark", "-r", str(two_streams), "-Y", "tcp", "-T", "fields", "-e", "tcp.stream",
                          "-e", "tcp.seq"], capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    ours = [(str(st.index), str(seg.rel_seq)) for st, seg in api.segments(two_streams)]
    assert len(ours) == len(rows)
    assert ours == [tuple(r) for r in rows]


def test_compare_same_and_different(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.pcap", _exchange(C, 1000, 5000))
    b = _write(tmp_path / "b.pcap", _exchange(("198.18.0.1", 50000), 424242, 99))  # other ISNs and port
    c = _write(tmp_path / "c.pcap", _exchange(C, 1000, 5000, b"y" * 21))
    same = api.compare(a, b)
    assert same.same and same.differences == 0 and same.summary().startswith("same")
    diff = api.compare(a, c)
    assert not diff.same and diff.rows and "len" in diff.rows[0].fields
    assert api.compare(a, c, ignore={"len", "seq", "ack", "payload"}).same


def test_compare_refuses_bad_tolerance_and_bad_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.pcap", _exchange(C, 1000, 5000))
    with pytest.raises(api.CaptureError, match="finite"):
        api.compare(a, a, time_tolerance_ms=float("nan"))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    with pytest.raises(api.ERRORS) as info:
        api.read_capture(junk)
    assert getattr(info.value, "exit_code", None) == 2


def test_the_api_is_documented() -> None:
    import inspect

    for name in api.__all__:
        obj = getattr(api, name)
        if callable(obj) and not isinstance(obj, type(api.ERRORS)) and name not in ("Record",):
            assert inspect.getdoc(obj), f"api.{name} has no docstring"
    for name, member in inspect.getmembers(api.Connection) + inspect.getmembers(api.Lab):
        if not name.startswith("_") and callable(member):
            assert inspect.getdoc(member), f"{name} has no docstring"
