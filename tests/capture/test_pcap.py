"""pcap writing, pcap/pcapng reading (both byte orders, µs/ns, several interfaces), bad input."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtcp.capture import CaptureError, PcapWriter, RawPacket, decode_tcp, iter_packets
from rawtcp.capture.compare import compare_captures
from rawtcp.capture.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW
from rawtcp.capture.sidecar import read_sidecar, sidecar_path, write_sidecar
from rawtcp.capture.streams import read_streams
from rawtcp.wire.packet import parse_options

from .builders import T0, seed_packets, tcp_frame


def seed_frames() -> list[tuple[float, bytes]]:
    return [(float(p.time), bytes(p)) for p in seed_packets()]


# --- hand-built files ----------------------------------------------------------------------------

def classic_pcap(frames: list[tuple[float, bytes]], endian: str = "<", nano: bool = False,
                 linktype: int = LINKTYPE_ETHERNET) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for ts, data in frames:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def ng_block(e: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def ng_option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + _pad(value)


def ng_shb(e: str) -> bytes:
    return ng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_idb(e: str, linktype: int, tsresol: int | None = None, snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts = ng_option(e, 9, bytes([tsresol])) + ng_option(e, 0, b"")
    return ng_block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def ng_epb(e: str, ifid: int, ticks: int, data: bytes, comment: bytes | None = None) -> bytes:
    body = struct.pack(e + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + _pad(data)
    if comment is not None:
        body += ng_option(e, 1, comment) + ng_option(e, 0, b"")
    return ng_block(e, 6, body)


def ng_spb(e: str, data: bytes) -> bytes:
    return ng_block(e, 3, struct.pack(e + "I", len(data)) + data)


# --- writer round trip ---------------------------------------------------------------------------

def test_writer_round_trip(tmp_path: Path) -> None:
    frames = seed_frames()
    path = tmp_path / "rt.pcap"
    with PcapWriter(path) as w:
        for ts, data in frames:
            w.write(data, ts)
        w.flush()
        assert w.count == 10
    got = list(iter_packets(path))
    assert [p.data for p in got] == [d for _, d in frames]
    assert all(p.linktype == LINKTYPE_ETHERNET for p in got)
    assert all(abs(p.ts - ts) < 1e-6 for p, (ts, _) in zip(got, frames, strict=True))
    assert isinstance(got[0], RawPacket)


def test_writer_snaplen_and_raw_linktype(tmp_path: Path) -> None:
    ip_packet = bytes(seed_packets()[3].payload)  # strip Ethernet: raw IPv4
    path = tmp_path / "raw.pcap"
    with PcapWriter(path, linktype=LINKTYPE_RAW, snaplen=40) as w:
        w.write(ip_packet, T0 + 0.9999996)  # rounds up into the next second
    (pkt,) = iter_packets(path)
    assert pkt.linktype == LINKTYPE_RAW
    assert pkt.data == ip_packet[:40]
    assert pkt.ts == pytest.approx(T0 + 1.0, abs=1e-6)


def test_writer_output_is_read_by_scapy(tmp_path: Path) -> None:
    from scapy.utils import rdpcap

    path = tmp_path / "s.pcap"
    with PcapWriter(path) as w:
        for ts, data in seed_frames():
            w.write(data, ts)
    pkts = rdpcap(str(path))
    assert len(pkts) == 10
    assert pkts[1]["TCP"].flags == "SA"


def test_writer_rejects_unsupported_linktype(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="unsupported link type 147"):
        PcapWriter(tmp_path / "x.pcap", linktype=147)


# --- classic pcap variants -----------------------------------------------------------------------

@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, endian: str, nano: bool) -> None:
    frames = seed_frames()
    path = tmp_path / "v.pcap"
    path.write_bytes(classic_pcap(frames, endian, nano))
    got = list(iter_packets(path))
    assert [p.data for p in got] == [d for _, d in frames]
    assert got[1].ts == pytest.approx(frames[1][0], abs=1e-6)


def test_pcap_written_by_scapy_and_tshark_agree(seed_pcap: Path) -> None:
    got = [decode_tcp(p.linktype, p.data) for p in iter_packets(seed_pcap)]
    assert [g.seq for g in got if g] == [1000, 8000, 1001, 1001, 8001, 1021, 1021, 8011, 8011, 1022]


# --- pcapng ---------------------------------------------------------------------------------------

def test_pcapng_from_scapy(tmp_path: Path) -> None:
    from scapy.utils import PcapNgWriter

    path = tmp_path / "s.pcapng"
    pkts = seed_packets()
    with PcapNgWriter(str(path)) as w:
        for p in pkts:
            w.write(p)
    got = list(iter_packets(path))
    assert [p.data for p in got] == [bytes(p) for p in pkts]
    assert got[4].ts == pytest.approx(float(pkts[4].time), abs=1e-6)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_hand_built(tmp_path: Path, endian: str) -> None:
    """Two interfaces (Ethernet in µs, raw IP in ns), an SPB, an unknown block, a comment, 2 sections."""
    frames = seed_frames()
    e = endian
    raw_ip = frames[2][1][14:]
    sll = b"\0" * 14 + b"\x08\x00"  # Linux cooked header, protocol IPv4
    data = (ng_shb(e) + ng_idb(e, 1) + ng_idb(e, 101, tsresol=9)
            + ng_epb(e, 0, int(frames[0][0] * 1e6), frames[0][1], comment=b"the SYN")
            + ng_block(e, 0x0BAD, b"unknown block body")
            + ng_epb(e, 1, int(frames[2][0] * 1e9), raw_ip)
            + ng_spb(e, frames[3][1])
            + ng_block(e, 5, b"\0" * 8)  # interface statistics: skipped
            + ng_shb(e) + ng_idb(e, 113, tsresol=0x80 | 10) + ng_epb(e, 0, 3 * 1024, sll + raw_ip))
    path = tmp_path / "h.pcapng"
    path.write_bytes(data)
    got = list(iter_packets(path))
    assert [(p.linktype, p.data) for p in got] == [
        (1, frames[0][1]), (101, raw_ip), (1, frames[3][1]), (113, sll + raw_ip)]
    assert got[0].ts == pytest.approx(frames[0][0], abs=1e-6)
    assert got[1].ts == pytest.approx(frames[2][0], abs=1e-6)
    assert got[2].ts == got[1].ts  # an SPB has no time: it keeps the previous one
    assert got[3].ts == pytest.approx(3.0)  # 2**-10 s ticks
    decoded = [decode_tcp(p.linktype, p.data) for p in got]
    assert all(d is not None for d in decoded)
    assert decoded[1].seq == decoded[3].seq == 1001  # type: ignore[union-attr]


def test_pcapng_via_editcap(tmp_path: Path, seed_pcap: Path) -> None:
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (wireshark tools) is not installed")
    out = tmp_path / "seed.pcapng"
    subprocess.run([editcap, "-F", "pcapng", str(seed_pcap), str(out)], check=True, capture_output=True)
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert [p.data for p in iter_packets(out)] == [p.data for p in iter_packets(seed_pcap)]
    assert compare_captures(seed_pcap, out).same


# --- link types -----------------------------------------------------------------------------------

def test_decode_link_types() -> None:
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Loopback

    pkt = seed_packets()[1]
    ip = pkt.payload
    cases = {
        1: bytes(pkt),
        101: bytes(ip),
        228: bytes(ip),
        113: bytes(CookedLinux(proto=0x0800) / ip),
        276: bytes(CookedLinuxV2(proto=0x0800) / ip),
        0: bytes(Loopback(type=2) / ip),
    }
    for linktype, data in cases.items():
        tcp = decode_tcp(linktype, data)
        assert tcp is not None, linktype
        assert (tcp.src, tcp.dst, tcp.sport, tcp.dport) == ("198.18.0.2", "198.18.0.1", 8080, 40000)
        assert (tcp.seq, tcp.ack, tcp.flags, tcp.window, tcp.options) == (8000, 1001, 0x12, 65160,
                                                                          (("MSS", 1024),))


def test_decode_fields_options_and_non_tcp() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123, 0)), ("NOP", None), ("WScale", 7),
            ("SAck", (5, 9, 20, 30))]
    pkt = tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, "PA", 7, 9, b"hello", 512, opts, ip_id=77, ttl=33)
    tcp = decode_tcp(1, bytes(pkt))
    assert tcp is not None
    # the same tuples as scapy's own dissection, EOL padding included
    assert tcp.options == tuple(Ether(bytes(pkt))["TCP"].options)
    assert tcp.options[:6] == (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123, 0)), ("NOP", None),
                               ("WScale", 7), ("SAck", (5, 9, 20, 30)))
    assert (tcp.payload_len, tcp.payload, tcp.ip_id, tcp.ttl, tcp.flags) == (5, b"hello", 77, 33, 0x18)
    vlan = Ether() / Dot1Q(vlan=5) / pkt.payload
    assert decode_tcp(1, bytes(vlan)) == tcp
    assert decode_tcp(1, bytes(Ether() / IP() / UDP())) is None
    assert decode_tcp(1, bytes(pkt)[:40]) is None  # cut inside the TCP header
    six = decode_tcp(1, bytes(tcp_frame("2001:db8::1", "2001:db8::2", 5, 6, "S", 1, ipv6=True)))
    assert six is not None and (six.src, six.version) == ("2001:db8::1", 6)
    assert parse_options(b"\x01\x00\xff", strict=True) == (("NOP", None), ("EOL", None))
    # a length running past the end: a capture reader keeps the rest raw where scapy reads an MSS
    assert parse_options(b"\x02\x09ab", strict=True) == ((2, b"\x02\x09ab"),)
    assert parse_options(b"\x02\x09ab") == (("MSS", 24930),)
    assert parse_options(b"\x02\x01ab", strict=True) == ((2, b"\x02\x01ab"),)  # a length below 2


# --- bad input ------------------------------------------------------------------------------------

def _read(path: Path) -> list[RawPacket]:
    return list(iter_packets(path))


def test_errors(tmp_path: Path) -> None:
    good = classic_pcap(seed_frames())
    cases = {
        "empty file": b"",
        "not a pcap or pcapng file": b"GET / HTTP/1.1\r\n\r\n",
        "truncated capture at byte 0": good[:20],
        # the last record is cut: the message points at its start
        f"truncated capture at byte {len(good) - 16 - len(seed_frames()[-1][1])}": good[:-30],
        "unsupported link type 147": classic_pcap(seed_frames(), linktype=147),
    }
    for message, data in cases.items():
        path = tmp_path / "bad.pcap"
        path.write_bytes(data)
        with pytest.raises(CaptureError) as info:
            _read(path)
        assert str(info.value).startswith(message)
        assert "\n" not in str(info.value)
    with pytest.raises(CaptureError, match="cannot open"):
        _read(tmp_path / "missing.pcap")


def test_pcapng_errors(tmp_path: Path) -> None:
    e = "<"
    frame = seed_frames()[0][1]
    cases = {
        "unsupported link type 147": ng_shb(e) + ng_idb(e, 147) + ng_epb(e, 0, 1, frame),
        "packet for unknown interface 3": ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 3, 1, frame),
        "truncated capture at byte": (ng_shb(e) + ng_idb(e, 1) + ng_epb(e, 0, 1, frame))[:-8],
        "corrupt pcapng block": ng_shb(e) + struct.pack("<II", 6, 13) + b"\0" * 9,
    }
    for message, data in cases.items():
        path = tmp_path / "bad.pcapng"
        path.write_bytes(data)
        with pytest.raises(CaptureError, match=message):
            _read(path)


def _exercise(path: Path) -> None:
    for pkt in iter_packets(path):
        decode_tcp(pkt.linktype, pkt.data)
    read_streams(path, events=[])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes_raise_only_capture_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.bin"
    for prefix in (b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"):
        path.write_bytes(prefix + data)
        with contextlib.suppress(CaptureError):
            _exercise(path)


_VALID = {
    "pcap-le": classic_pcap(seed_frames()[:4]),
    "pcap-be-ns": classic_pcap(seed_frames()[:4], ">", nano=True),
    "pcapng-le": ng_shb("<") + ng_idb("<", 1, 9) + ng_epb("<", 0, 5, seed_frames()[1][1], b"x")
    + ng_spb("<", seed_frames()[2][1]),
    "pcapng-be": ng_shb(">") + ng_idb(">", 101) + ng_epb(">", 0, 5, seed_frames()[0][1][14:]),
}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(_VALID)), cut=st.integers(min_value=0, max_value=600),
       flips=st.lists(st.tuples(st.integers(min_value=0, max_value=599), st.integers(0, 255)), max_size=6))
def test_fuzz_damaged_captures_raise_only_capture_error(tmp_path: Path, kind: str, cut: int,
                                                         flips: list[tuple[int, int]]) -> None:
    data = bytearray(_VALID[kind][:cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = tmp_path / "damaged"
    path.write_bytes(bytes(data))
    try:
        _exercise(path)
        compare_captures(path, path)
    except CaptureError as exc:
        assert "\n" not in str(exc)


# --- side-car -------------------------------------------------------------------------------------

def test_sidecar_round_trip_and_errors(tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    assert read_sidecar(pcap) == []
    events = [
        {"time": T0 + 2, "who": "kernel", "addr": "198.18.0.2:8080", "peer": "198.18.0.1:40000",
         "old": "SYN_RECV", "new": "ESTABLISHED"},
        {"time": T0 + 1, "who": "rawtcp", "addr": "198.18.0.1:40000", "peer": "198.18.0.2:8080",
         "old": "CLOSED", "new": "SYN-SENT"},
    ]
    path = write_sidecar(pcap, events)
    assert path == sidecar_path(pcap) == str(pcap) + ".states.json"
    assert read_sidecar(pcap) == sorted(events, key=lambda e: e["time"])
    Path(path).write_text('{"version": 9, "states": []}')
    with pytest.raises(CaptureError, match="unsupported state side-car"):
        read_sidecar(pcap)
    Path(path).write_text("{not json")
    with pytest.raises(CaptureError, match="unreadable"):
        read_sidecar(pcap)
    with pytest.raises(ValueError, match="lacks"):
        write_sidecar(pcap, [{"time": 1.0}])


_FRAMES = [bytes(p) for p in seed_packets(ts_base=1)[:4]]


@given(linktype=st.sampled_from([0, 1, 101, 113, 228, 229, 276]), which=st.integers(0, 3),
       skip=st.integers(0, 20), cut=st.integers(0, 120),
       flips=st.lists(st.tuples(st.integers(0, 119), st.integers(0, 255)), max_size=4))
def test_fuzz_decode_never_raises(linktype: int, which: int, skip: int, cut: int,
                                  flips: list[tuple[int, int]]) -> None:
    data = bytearray(_FRAMES[which][skip:skip + cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    pkt = decode_tcp(linktype, bytes(data))
    if pkt is not None:
        # A cut capture keeps the length its IP header announces (as Wireshark's TCP Segment Len),
        # and says it is partial; the bytes it holds never exceed what was captured.
        assert len(pkt.payload) <= len(data)
        assert 0 <= pkt.payload_len <= (0xFFFF if pkt.truncated else len(data))


def test_checksums_filled_in_as_scapy_computes_them() -> None:
    from rawtcp.capture.checksum import with_valid_checksums

    frames = [bytes(p) for p in seed_packets(ts_base=7)]  # scapy fills in valid checksums
    frames.append(bytes(tcp_frame("2001:db8::1", "2001:db8::2", 5, 6, "PA", 1, 2, b"odd", ipv6=True)))
    for good in frames:
        bad = bytearray(good)
        tcp = 14 + (20 if good[14] >> 4 == 4 else 40)
        bad[tcp + 16:tcp + 18] = b"\x12\x34"  # what veth's checksum offload leaves behind
        if good[14] >> 4 == 4:
            bad[24:26] = b"\0\0"
        assert with_valid_checksums(LINKTYPE_ETHERNET, bytes(bad)) == good
    assert with_valid_checksums(LINKTYPE_ETHERNET, frames[0][:30]) == frames[0][:30]  # cut short: as is


def test_writer_can_fix_checksums(tmp_path: Path) -> None:
    good = bytes(seed_packets()[3])
    bad = bytearray(good)
    bad[14 + 20 + 16:14 + 20 + 18] = b"\0\0"
    with PcapWriter(tmp_path / "f.pcap", fix_checksums=True) as w:
        w.write(bytes(bad), T0)
    assert [p.data for p in iter_packets(tmp_path / "f.pcap")] == [good]
