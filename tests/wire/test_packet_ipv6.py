"""The IPv6 fast path against its oracle: scapy's IPv6()/TCP() build and dissection, on random segments."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum
from test_packet import DST_MAC, SRC_MAC, norm_options, segments

from rawtcp.core.segment import Flags, Segment
from rawtcp.wire.packet import (
    Decoded,
    FrameBuilder,
    decode_frame,
    decode_ip,
    decode_ipv4,
    decode_ipv6,
    ip_version,
    pack_ip,
    tcp_checksum,
)

u8 = st.integers(0, 0xFF)
ipv6 = st.integers(0, (1 << 128) - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
CLIENT6, SERVER6 = "2001:db8::1", "2001:db8::2"


@st.composite
def ip6_fields(draw: st.DrawFn) -> dict:
    return {"src": draw(ipv6), "dst": draw(ipv6), "hlim": draw(u8), "tc": draw(u8),
            "fl": draw(st.integers(0, 0xFFFFF))}


def scapy_packet6(seg: Segment, f: dict) -> IPv6:
    ip = IPv6(src=f["src"], dst=f["dst"], hlim=f["hlim"], tc=f["tc"], fl=f["fl"])
    tcp = TCP(sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=int(seg.flags),
              window=seg.window, urgptr=seg.urgent, options=list(seg.options))
    return ip / tcp / Raw(seg.payload) if seg.payload else ip / tcp


def assert_same_as_scapy6(dec: Decoded, pkt: IPv6) -> None:
    tcp = pkt[TCP]
    seg = dec.segment
    assert (dec.src_ip, dec.dst_ip, dec.hop_limit, dec.traffic_class, dec.flow_label, dec.version) == \
        (pkt.src, pkt.dst, pkt.hlim, pkt.tc, pkt.fl, 6)
    assert (dec.ttl, dec.tos, dec.ip_id, dec.ecn) == (pkt.hlim, pkt.tc, 0, pkt.tc & 3)
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (tcp.sport, tcp.dport, tcp.seq, tcp.ack)
    assert (int(seg.flags), seg.window, seg.urgent) == (int(tcp.flags) & 0xFF, tcp.window, tcp.urgptr)
    assert seg.options == norm_options(tcp.options)
    assert seg.payload == bytes(tcp.payload)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seg=segments, f=ip6_fields(), bad=st.booleans())
def test_ipv6_build_is_byte_for_byte_scapy_and_parses_like_scapy(seg: Segment, f: dict, bad: bool) -> None:
    fb = FrameBuilder(f["src"], f["dst"], None, None, ttl=f["hlim"], tos=f["tc"], flow_label=f["fl"])
    assert fb.version == 6
    ours = fb.packet(seg, bad_checksum=bad)
    theirs = bytes(scapy_packet6(seg, f))
    if bad:  # the TCP checksum sits at 40 + 16
        assert ours[:56] + ours[58:] == theirs[:56] + theirs[58:]
        assert ours[56:58] != theirs[56:58]
    else:
        assert ours == theirs
    dec = decode_ipv6(ours)
    assert dec is not None
    assert dec.checksum_ok is (not bad)
    assert_same_as_scapy6(dec, IPv6(ours))
    assert decode_ipv6(ours, verify=False).checksum_ok is None
    assert decode_ip(ours) == dec
    assert decode_ipv4(ours) is None


@settings(deadline=None)
@given(seg=segments, f=ip6_fields())
def test_ipv6_frame_matches_scapy_ether_and_survives_padding_and_vlan(seg: Segment, f: dict) -> None:
    fb = FrameBuilder(f["src"], f["dst"], SRC_MAC, DST_MAC, ttl=f["hlim"], tos=f["tc"], flow_label=f["fl"])
    ours = fb.frame(seg)
    ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    assert ours == bytes(ether / scapy_packet6(seg, f))
    assert ours[12:14] == b"\x86\xdd"
    padded = ours + b"\x00" * max(0, 60 - len(ours))  # what a NIC delivers for a short frame
    dec = decode_frame(padded)
    assert dec is not None and dec.checksum_ok
    assert_same_as_scapy6(dec, Ether(ours)[IPv6])
    tagged = bytes(ether / Dot1Q(vlan=5) / scapy_packet6(seg, f))
    assert decode_frame(tagged) == dec


@settings(deadline=None)
@given(seg=segments, f=ip6_fields(), which=st.sampled_from(["hbh", "dest", "routing", "all"]))
def test_ipv6_extension_headers_are_skipped_like_scapy(seg: Segment, f: dict, which: str) -> None:
    base = scapy_packet6(seg, f)
    ext = {"hbh": IPv6ExtHdrHopByHop(), "dest": IPv6ExtHdrDestOpt(),
           "routing": IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=0),
           "all": IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(segleft=0) / IPv6ExtHdrDestOpt()}[which]
    pkt = IPv6(src=f["src"], dst=f["dst"], hlim=f["hlim"], tc=f["tc"], fl=f["fl"]) / ext / base[TCP]
    raw = bytes(pkt)
    dec = decode_ipv6(raw)
    assert dec is not None and dec.checksum_ok  # the pseudo-header uses the final destination (no segments left)
    assert_same_as_scapy6(dec, IPv6(raw))


def test_ipv6_fragments_and_other_protocols_refused() -> None:
    tcp = TCP(sport=1, dport=2, flags="S")
    assert decode_ipv6(bytes(IPv6(src=CLIENT6, dst=SERVER6) / tcp)) is not None
    assert decode_ipv6(bytes(IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(m=1) / tcp)) is None
    assert decode_ipv6(bytes(IPv6(src=CLIENT6, dst=SERVER6, nh=17) / (b"\x00" * 20))) is None
    raw = bytes(IPv6(src=CLIENT6, dst=SERVER6) / tcp)
    assert decode_ipv6(raw[:-1]) is None  # payload length beyond the buffer
    assert decode_ipv6(raw[:4] + b"\x00\x00" + raw[6:]) is None  # payload length 0: a jumbogram
    assert decode_ipv6(bytes(IPv6(src=CLIENT6, dst=SERVER6, plen=12) / tcp)) is None  # shorter than TCP
    assert decode_frame(b"\x00" * 12 + b"\x08\x00" + raw) is None  # IPv4 EtherType, IPv6 inside
    assert decode_ip(b"") is None and decode_ip(b"\x10" * 60) is None


def test_ipv6_traffic_class_carries_ecn_and_hop_limit_is_ttl() -> None:
    fb = FrameBuilder(CLIENT6, SERVER6, SRC_MAC, DST_MAC, ttl=7, tos=0xB8 | 2, flow_label=0x12345)
    dec = decode_frame(fb.frame(Segment(1000, 8080, 1, flags=Flags.SYN)))
    assert dec is not None
    assert (dec.hop_limit, dec.tos, dec.ecn, dec.dscp, dec.flow_label) == (7, 0xBA, 2, 0x2E, 0x12345)
    # the first word: version 6, traffic class 0xba, flow label 0x12345 (RFC 8200 §3)
    assert fb.packet(Segment(1, 2, 3))[:4] == bytes.fromhex("6ba12345")


def test_ipv4_decoded_keeps_its_tos_and_version() -> None:
    dec = decode_ipv4(FrameBuilder("198.18.0.1", "198.18.0.2", None, None, tos=0x03).packet(Segment(1, 2, 3)))
    assert dec is not None and (dec.tos, dec.ecn, dec.version, dec.flow_label) == (3, 3, 4, 0)


def test_ipv6_builder_arguments_checked() -> None:
    with pytest.raises(ValueError, match="different address families"):
        FrameBuilder("198.18.0.1", SERVER6, None, None)
    with pytest.raises(ValueError, match="different address families"):
        FrameBuilder(CLIENT6, "198.18.0.2", None, None)
    with pytest.raises(ValueError, match="not an IPv6 address"):
        FrameBuilder("2001:db8::1::2", SERVER6, None, None)
    with pytest.raises(ValueError, match="flow label"):
        FrameBuilder(CLIENT6, SERVER6, None, None, flow_label=1 << 20)
    with pytest.raises(ValueError):
        FrameBuilder(CLIENT6, SERVER6, None, None).packet(Segment(1, 2, 1 << 32))
    fb = FrameBuilder(CLIENT6, SERVER6, None, None)
    assert fb.frame(Segment(1, 2, 3)) == fb.packet(Segment(1, 2, 3))  # no MACs: no Ethernet header
    assert fb.packet(Segment(1, 2, 3), ip_id=9) == fb.packet(Segment(1, 2, 3))  # IPv6 has no ID


def test_address_helpers() -> None:
    assert ip_version("198.18.0.1") == 4 and ip_version("2001:db8::1") == 6
    assert pack_ip("2001:db8::1") == bytes.fromhex("20010db8000000000000000000000001")
    with pytest.raises(ValueError):
        ip_version("nonsense")


@settings(deadline=None)
@given(data=st.binary(max_size=200), src=st.binary(min_size=16, max_size=16),
       dst=st.binary(min_size=16, max_size=16))
def test_ipv6_pseudo_header_checksum_agrees_with_scapy(data: bytes, src: bytes, dst: bytes) -> None:
    pseudo = struct.pack("!16s16sI3xB", src, dst, len(data), 6)  # RFC 8200 §8.1
    assert tcp_checksum(src, dst, data) == scapy_checksum(pseudo + data)


@settings(deadline=None)
@given(data=st.binary(max_size=120), offset=st.integers(0, 20))
def test_ipv6_garbage_never_raises(data: bytes, offset: int) -> None:
    for buf in (data, memoryview(data), b"\x60" + data, b"\x60" + b"\x00" * 39 + data):
        decode_ipv6(buf, offset)
        decode_ip(buf, offset)
        decode_frame(b"\x00" * 12 + b"\x86\xdd" + bytes(buf), offset)


@settings(deadline=None)
@given(seg=segments, cut=st.integers(0, 1600), pos=st.integers(0, 1600), byte=u8)
def test_damaged_ipv6_frames_never_raise(seg: Segment, cut: int, pos: int, byte: int) -> None:
    raw = bytearray(FrameBuilder(CLIENT6, SERVER6, SRC_MAC, DST_MAC).frame(seg))
    if pos < len(raw):
        raw[pos] = byte
    for buf in (bytes(raw), bytes(raw[:cut])):
        dec = decode_frame(buf)
        assert dec is None or isinstance(dec.segment, Segment)
