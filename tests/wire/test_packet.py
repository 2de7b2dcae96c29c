"""The fast path against its oracle: scapy's own build and dissection, on random segments."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, IPOption_NOP, IPOption_RR, TCPAOValue
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from rawtcp.core.segment import Flags, Segment
from rawtcp.wire.packet import (
    Decoded,
    FrameBuilder,
    decode_frame,
    decode_ipv4,
    encode_options,
    ip_checksum,
    parse_options,
    segment_of_frame,
    tcp_checksum,
)

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ipv4 = u32.map(lambda n: socket.inet_ntoa(n.to_bytes(4, "big")))

option = st.one_of(
    u16.map(lambda v: ("MSS", v)),
    u8.map(lambda v: ("WScale", v)),
    st.just(("SAckOK", b"")),
    st.tuples(u32, u32).map(lambda v: ("Timestamp", v)),
    st.lists(u32, min_size=1, max_size=8).map(lambda v: ("SAck", tuple(v))),
    st.just(("NOP", None)),
    st.just(("EOL", None)),
    # kind 29 (TCP-AO) excluded: scapy dissects it into a packet class whose bytes differ (b'' -> 00 00)
    st.tuples(st.integers(2, 255).filter(lambda k: k != 29), st.binary(max_size=12)),
)


def _fits(opts: list) -> bool:
    try:
        encode_options(opts)
    except ValueError:
        return False
    return True


options = st.lists(option, max_size=10).filter(_fits).map(tuple)

segments = st.builds(
    Segment,
    sport=u16, dport=u16, seq=u32, ack=u32,
    flags=u8.map(Flags),
    window=u16,
    options=options,
    payload=st.binary(max_size=1500),
    urgent=u16,
)


@st.composite
def ip_fields(draw: st.DrawFn) -> dict:
    return {"src": draw(ipv4), "dst": draw(ipv4), "ttl": draw(u8), "tos": draw(u8),
            "df": draw(st.booleans()), "ip_id": draw(u16)}


def scapy_packet(seg: Segment, f: dict) -> IP:
    ip = IP(src=f["src"], dst=f["dst"], id=f["ip_id"], ttl=f["ttl"], tos=f["tos"],
            flags="DF" if f["df"] else 0)
    tcp = TCP(sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=int(seg.flags),
              window=seg.window, urgptr=seg.urgent, options=list(seg.options))
    return ip / tcp / Raw(seg.payload) if seg.payload else ip / tcp


def norm_options(opts: list) -> tuple:
    """scapy wraps the AO option in a packet class; compare its bytes."""
    return tuple((k, bytes(v) if isinstance(v, TCPAOValue) else v) for k, v in opts)


def assert_same_as_scapy(dec: Decoded, pkt: IP) -> None:
    tcp = pkt[TCP]
    seg = dec.segment
    assert (dec.src_ip, dec.dst_ip, dec.ttl, dec.ip_id) == (pkt.src, pkt.dst, pkt.ttl, pkt.id)
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (tcp.sport, tcp.dport, tcp.seq, tcp.ack)
    assert (int(seg.flags), seg.window, seg.urgent) == (int(tcp.flags) & 0xFF, tcp.window, tcp.urgptr)
    assert seg.options == norm_options(tcp.options)
    assert seg.payload == bytes(tcp.payload)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seg=segments, f=ip_fields(), bad=st.booleans())
def test_build_is_byte_for_byte_scapy_and_parses_like_scapy(seg: Segment, f: dict, bad: bool) -> None:
    fb = FrameBuilder(f["src"], f["dst"], None, None, ttl=f["ttl"], df=f["df"], tos=f["tos"])
    ours = fb.packet(seg, ip_id=f["ip_id"], bad_checksum=bad)
    theirs = bytes(scapy_packet(seg, f))
    if bad:
        assert ours[:36] + ours[38:] == theirs[:36] + theirs[38:]
        assert ours[36:38] != theirs[36:38]
    else:
        assert ours == theirs
    dec = decode_ipv4(ours)
    assert dec is not None
    assert dec.checksum_ok is (not bad)
    assert_same_as_scapy(dec, IP(ours))
    assert decode_ipv4(ours, verify=False).checksum_ok is None


@settings(deadline=None)
@given(seg=segments, f=ip_fields())
def test_frame_matches_scapy_ether_and_survives_padding(seg: Segment, f: dict) -> None:
    fb = FrameBuilder(f["src"], f["dst"], SRC_MAC, DST_MAC, ttl=f["ttl"], df=f["df"], tos=f["tos"])
    ours = fb.frame(seg, ip_id=f["ip_id"])
    theirs = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / scapy_packet(seg, f))
    assert ours == theirs
    padded = ours + b"\x00" * max(0, 60 - len(ours))  # what a NIC delivers for a short frame
    dec = decode_frame(padded)
    assert dec is not None and dec.checksum_ok
    assert_same_as_scapy(dec, Ether(ours)[IP])


@settings(deadline=None)
@given(seg=segments, f=ip_fields(), nops=st.integers(1, 10))
def test_parses_ip_options_like_scapy(seg: Segment, f: dict, nops: int) -> None:
    pkt = scapy_packet(seg, f)
    pkt[IP].options = [IPOption_NOP()] * nops + [IPOption_RR(routers=["198.18.0.1"])]
    raw = bytes(pkt)
    assert raw[0] & 0x0F > 5
    dec = decode_ipv4(raw)
    assert dec is not None and dec.checksum_ok
    assert_same_as_scapy(dec, IP(raw))


@settings(deadline=None)
@given(data=st.binary(max_size=80))
def test_option_parsing_matches_scapy_on_any_bytes(data: bytes) -> None:
    data = data[: len(data) - len(data) % 4][:40]
    assume(29 not in data)  # TCP-AO: scapy wraps it in a packet class (see norm_options)
    header = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, (5 + len(data) // 4) << 4, 0x10, 5, 0, 0)
    dissected = TCP(header + data)
    assert parse_options(data) == norm_options(dissected.options)


def test_known_option_values() -> None:
    opts = (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7))
    raw = encode_options(opts)
    assert raw.hex() == "020405b40402080a000000010000000001030307"
    assert parse_options(raw) == opts
    # scapy pads with zero bytes (EOL) and reads the first one back as EOL
    assert encode_options((("WScale", 7),)) == b"\x03\x03\x07\x00"
    assert parse_options(b"\x03\x03\x07\x00") == (("WScale", 7), ("EOL", None))
    assert encode_options(((1, b""), (0, b""))) == b"\x01\x00\x00\x00"


@pytest.mark.parametrize("bad", [(("Bogus", 1),), (("MSS", 1),) * 11, ((300, b""),), ((42, 5),)])
def test_bad_options_raise_value_error(bad: tuple) -> None:
    with pytest.raises(ValueError):
        encode_options(bad)


def test_field_out_of_range_is_value_error() -> None:
    fb = FrameBuilder("198.18.0.1", "198.18.0.2", None, None)
    with pytest.raises(ValueError):
        fb.packet(Segment(1, 2, 1 << 32))
    with pytest.raises(ValueError):
        FrameBuilder("198.18.0", "198.18.0.2", None, None)


def test_ip_id_counter_and_frame_without_macs() -> None:
    fb = FrameBuilder("198.18.0.1", "198.18.0.2", None, None)
    seg = Segment(1, 2, 3, flags=Flags.SYN)
    ids = [decode_ipv4(fb.frame(seg)).ip_id for _ in range(3)]
    assert ids == [1, 2, 3]
    assert fb.frame(seg, ip_id=7) == fb.packet(seg, ip_id=7)


@settings(deadline=None)
@given(data=st.binary(max_size=200), src=st.binary(min_size=4, max_size=4),
       dst=st.binary(min_size=4, max_size=4))
def test_checksums_agree_with_scapy(data: bytes, src: bytes, dst: bytes) -> None:
    assert ip_checksum(data) == scapy_checksum(data)
    pseudo = struct.pack("!4s4sHH", src, dst, 6, len(data))
    assert tcp_checksum(src, dst, data) == scapy_checksum(pseudo + data)


@settings(deadline=None)
@given(data=st.binary(max_size=120), offset=st.integers(0, 20))
def test_garbage_never_raises(data: bytes, offset: int) -> None:
    for buf in (data, memoryview(data), b"\x45" + data, b"\x46" + data):
        decode_ipv4(buf, offset)
        decode_frame(buf, offset)


@settings(deadline=None)
@given(seg=segments, cut=st.integers(0, 1600), pos=st.integers(0, 1600), byte=u8)
def test_damaged_packets_never_raise(seg: Segment, cut: int, pos: int, byte: int) -> None:
    raw = bytearray(FrameBuilder("198.18.0.1", "198.18.0.2", SRC_MAC, DST_MAC).frame(seg))
    if pos < len(raw):
        raw[pos] = byte
    for buf in (bytes(raw), bytes(raw[:cut])):
        dec = decode_frame(buf)
        assert dec is None or isinstance(dec.segment, Segment)


def test_refuses_non_tcp_fragments_and_short() -> None:
    seg = Segment(1000, 8080, 1, flags=Flags.SYN)
    raw = FrameBuilder("198.18.0.1", "198.18.0.2", None, None).packet(seg)
    assert decode_ipv4(raw) is not None
    udp = bytes(IP(src="198.18.0.1", dst="198.18.0.2", proto=17) / (b"\x00" * 20))
    assert decode_ipv4(udp) is None
    more_fragments = bytes(IP(src="198.18.0.1", dst="198.18.0.2", flags="MF") / TCP())
    assert decode_ipv4(more_fragments) is None
    later_fragment = bytes(IP(src="198.18.0.1", dst="198.18.0.2", frag=3, proto=6) / (b"\x00" * 20))
    assert decode_ipv4(later_fragment) is None
    assert decode_ipv4(raw[:-1]) is None  # total length beyond the buffer
    assert decode_frame(b"\x00" * 12 + b"\x86\xdd" + raw) is None  # IPv6 EtherType
    vlan = b"\x00" * 12 + b"\x81\x00\x00\x05\x08\x00" + raw
    assert decode_frame(vlan) == decode_ipv4(raw)


# What a connection sends nearly always: NOP NOP TSopt (with SACK blocks after it), and Linux's SYN layout.
connection_options = st.one_of(
    st.tuples(u32, u32).map(lambda v: (("NOP", None), ("NOP", None), ("Timestamp", v))),
    st.tuples(u32, u32, st.lists(u32, min_size=2, max_size=6).filter(lambda e: len(e) % 2 == 0)).map(
        lambda v: (("NOP", None), ("NOP", None), ("Timestamp", (v[0], v[1])), ("NOP", None), ("NOP", None),
                   ("SAck", tuple(v[2])))),
    st.tuples(u16, u32, u32, st.integers(0, 14)).map(
        lambda v: (("MSS", v[0]), ("SAckOK", b""), ("Timestamp", (v[1], v[2])), ("NOP", None), ("WScale", v[3]))),
    options,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(seg=st.builds(Segment, sport=u16, dport=u16, seq=u32, ack=u32, flags=u8.map(Flags), window=u16,
                     options=connection_options, payload=st.binary(max_size=1500), urgent=u16),
       f=ip_fields(), earlier=st.integers(0, 3))
def test_a_connections_frames_are_scapys_and_decode_alike(seg: Segment, f: dict, earlier: int) -> None:
    # The connection path: frame() with the builder's own IP ID counter and a good checksum (built in
    # one function) and the lean decode of a frame whose connection is known, against scapy and against
    # the general decoder.
    fb = FrameBuilder(f["src"], f["dst"], SRC_MAC, DST_MAC, ttl=f["ttl"], df=f["df"], tos=f["tos"])
    for _ in range(earlier):
        fb.frame(seg)  # the counter moves on as a connection's frames go out
    ours = fb.frame(seg)
    theirs = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                   / scapy_packet(seg, {**f, "ip_id": earlier + 1}))
    assert ours == theirs
    lean = segment_of_frame(ours)
    full = decode_frame(ours)
    assert lean is not None and full is not None
    assert_same_as_scapy(full, Ether(theirs)[IP])
    assert lean == (full.segment, full.checksum_ok) and lean[1] is True
