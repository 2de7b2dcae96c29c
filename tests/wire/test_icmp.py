"""ICMP and ICMPv6 messages against scapy's own layers: the bytes we inject, the messages we parse."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from rawtcp.wire.icmp import (
    ICMPV4_TYPES,
    ICMPV6_TYPES,
    IcmpBuilder,
    Quoted,
    decode_icmp,
    decode_icmp_frame,
    icmp_names,
    icmp_type_code,
    neighbor_solicitation,
    parse_neighbor_advert,
    solicited_node,
)
from rawtcp.wire.packet import decode_frame

PEER4, KERNEL4 = "198.18.0.1", "198.18.0.2"
PEER6, KERNEL6 = "2001:db8::1", "2001:db8::2"
PEER_MAC, KERNEL_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ipv4 = u32.map(lambda n: socket.inet_ntoa(n.to_bytes(4, "big")))
# as inet_ntop spells them (``::0.1.0.0`` where ipaddress says ``::1:0``), which is what decoding gives
ipv6 = st.integers(0, (1 << 128) - 1).map(lambda n: socket.inet_ntop(socket.AF_INET6, n.to_bytes(16, "big")))
quotes = st.builds(Quoted, sport=u16, dport=u16, seq=u32, payload_len=st.integers(0, 1400),
                   protocol=st.sampled_from([6, 17]), ttl=u8, tos=u8)


def scapy_quote4(q: Quoted, src: str, dst: str) -> IPerror:
    first8 = struct.pack("!HHI", q.sport, q.dport, q.seq) if q.protocol == 6 else \
        struct.pack("!HHHH", q.sport, q.dport, 8 + q.payload_len, 0)
    l4 = 20 if q.protocol == 6 else 8
    return IPerror(src=src, dst=dst, id=0, flags=0, ttl=q.ttl, tos=q.tos, proto=q.protocol,
                   len=20 + l4 + q.payload_len) / Raw(first8)


def scapy_quote6(q: Quoted, src: str, dst: str) -> IPerror6:
    first8 = struct.pack("!HHI", q.sport, q.dport, q.seq) if q.protocol == 6 else \
        struct.pack("!HHHH", q.sport, q.dport, 8 + q.payload_len, 0)
    l4 = 20 if q.protocol == 6 else 8
    return IPerror6(src=src, dst=dst, hlim=q.ttl, tc=q.tos, nh=q.protocol, plen=l4 + q.payload_len) / Raw(first8)


# -- building: byte-for-byte scapy ---------------------------------------------------------------


@settings(deadline=None)
@given(src=ipv4, dst=ipv4, q=quotes, code=st.integers(0, 15), ttl=u8, tos=u8, ip_id=u16, mtu=u16)
def test_icmp_unreachable_is_scapy(src: str, dst: str, q: Quoted, code: int, ttl: int, tos: int, ip_id: int,
                                   mtu: int) -> None:
    fb = IcmpBuilder(src, dst, PEER_MAC, KERNEL_MAC, ttl=ttl, tos=tos)
    ours = fb.frame(3, code, mtu=mtu if code == 4 else None, quoted=q, ip_id=ip_id)
    icmp = ICMP(type=3, code=code, nexthopmtu=mtu) if code == 4 else ICMP(type=3, code=code)
    theirs = Ether(src=PEER_MAC.hex(":"), dst=KERNEL_MAC.hex(":")) / \
        IP(src=src, dst=dst, id=ip_id, ttl=ttl, tos=tos, flags=0) / icmp / scapy_quote4(q, dst, src)
    assert ours == bytes(theirs)
    msg = decode_icmp_frame(ours)
    assert msg is not None and msg.checksum_ok is True
    assert (msg.version, msg.src_ip, msg.dst_ip, msg.type, msg.code) == (4, src, dst, 3, code)
    assert (msg.ttl, msg.tos) == (ttl, tos)
    assert msg.mtu == (mtu if code == 4 else None)
    assert msg.quoted == Quoted(q.sport, q.dport, q.seq if q.protocol == 6 else 0, q.payload_len, q.protocol,
                                dst, src, q.ttl, q.tos)
    assert decode_frame(ours) is None  # not a TCP segment


@settings(deadline=None)
@given(src=ipv6, dst=ipv6, q=quotes, code=st.integers(0, 6), hlim=u8, tc=u8, fl=st.integers(0, 0xFFFFF))
def test_icmpv6_unreachable_is_scapy(src: str, dst: str, q: Quoted, code: int, hlim: int, tc: int, fl: int) -> None:
    fb = IcmpBuilder(src, dst, PEER_MAC, KERNEL_MAC, ttl=hlim, tos=tc, flow_label=fl)
    ours = fb.frame(1, code, quoted=q)
    theirs = Ether(src=PEER_MAC.hex(":"), dst=KERNEL_MAC.hex(":")) / IPv6(src=src, dst=dst, hlim=hlim, tc=tc, fl=fl) \
        / ICMPv6DestUnreach(code=code) / scapy_quote6(q, dst, src)
    assert ours == bytes(theirs)
    msg = decode_icmp_frame(ours)
    assert msg is not None and msg.checksum_ok is True and msg.is_error
    assert (msg.version, msg.src_ip, msg.dst_ip, msg.type, msg.code, msg.mtu) == (6, src, dst, 1, code, None)
    assert (msg.ttl, msg.tos, msg.flow_label) == (hlim, tc, fl)
    assert msg.quoted == Quoted(q.sport, q.dport, q.seq if q.protocol == 6 else 0, q.payload_len, q.protocol,
                                dst, src, q.ttl, q.tos)


@settings(deadline=None)
@given(q=quotes.filter(lambda q: q.protocol == 6), mtu=u32)
def test_icmpv6_packet_too_big_is_scapy(q: Quoted, mtu: int) -> None:
    ours = IcmpBuilder(PEER6, KERNEL6).packet(*icmp_type_code(6, "packet_too_big"), mtu=mtu, quoted=q)
    theirs = IPv6(src=PEER6, dst=KERNEL6) / ICMPv6PacketTooBig(mtu=mtu) / scapy_quote6(q, KERNEL6, PEER6)
    assert ours == bytes(theirs)
    msg = decode_icmp(ours)
    assert msg is not None and msg.checksum_ok and msg.mtu == mtu and msg.names == ("packet_too_big", None)
    assert msg.quoted is not None and (msg.quoted.sport, msg.quoted.seq, msg.quoted.src_ip) == (q.sport, q.seq, KERNEL6)


def test_frag_needed_like_packetdrill() -> None:
    """``< icmp unreachable frag_needed mtu 1200 [1:1001(1000)]``: the kernel's segment quoted."""
    fb = IcmpBuilder(PEER4, KERNEL4, PEER_MAC, KERNEL_MAC)
    icmp_type, code = icmp_type_code(4, "unreachable", "frag_needed")
    frame = fb.frame(icmp_type, code, mtu=1200, quoted=Quoted(8080, 40000, seq=1, payload_len=1000))
    pkt = Ether(frame)
    assert (pkt[ICMP].type, pkt[ICMP].code, pkt[ICMP].nexthopmtu) == (3, 4, 1200)
    quoted = pkt[ICMP].payload
    assert (quoted.src, quoted.dst, quoted.len, quoted.proto) == (KERNEL4, PEER4, 1040, 6)
    assert bytes(quoted)[20:28] == struct.pack("!HHI", 8080, 40000, 1)
    assert len(bytes(pkt[ICMP])) == 8 + 20 + 8  # header, quoted IP header, first 64 bits (RFC 792)


def test_quoted_addresses_can_be_given() -> None:
    router = "198.18.0.254"
    fb = IcmpBuilder(router, KERNEL4)
    raw = fb.packet(3, 1, quoted=Quoted(8080, 40000, 5, src_ip=KERNEL4, dst_ip=PEER4))
    assert (IP(raw)[IPerror].src, IP(raw)[IPerror].dst) == (KERNEL4, PEER4)
    with pytest.raises(ValueError, match="not IPv4"):
        fb.packet(3, 1, quoted=Quoted(1, 2, dst_ip=PEER6))


def test_echo_is_scapy() -> None:
    ours = IcmpBuilder(PEER4, KERNEL4).packet(8, echo_id=77, echo_seq=3, payload=b"ping", ip_id=1)
    assert ours == bytes(IP(src=PEER4, dst=KERNEL4, id=1, flags=0) / ICMP(type=8, id=77, seq=3) / b"ping")
    msg = decode_icmp(ours)
    assert msg is not None and msg.echo_id == 77 and msg.quoted is None and msg.body == b"ping"
    ours6 = IcmpBuilder(PEER6, KERNEL6).packet(128, echo_id=5, echo_seq=6, payload=b"x")
    assert ours6 == bytes(IPv6(src=PEER6, dst=KERNEL6) / ICMPv6EchoRequest(id=5, seq=6, data=b"x"))
    assert decode_icmp(ours6).echo_id == 5


def test_ip_id_counts_and_bad_checksum() -> None:
    fb = IcmpBuilder(PEER4, KERNEL4)
    ids = [IP(fb.packet(3, 3, quoted=Quoted(1, 2))).id for _ in range(3)]
    assert ids == [1, 2, 3]
    bad = fb.packet(3, 3, quoted=Quoted(1, 2), bad_checksum=True)
    assert decode_icmp(bad).checksum_ok is False and decode_icmp(bad, verify=False).checksum_ok is None
    bad6 = IcmpBuilder(PEER6, KERNEL6).packet(1, 4, quoted=Quoted(1, 2), bad_checksum=True)
    assert decode_icmp(bad6).checksum_ok is False


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "type_name", "code_name", "want"), [
    (4, "unreachable", None, (3, 0)),
    (4, "unreachable", "net_unreachable", (3, 0)),
    (4, "unreachable", "host_unreachable", (3, 1)),
    (4, "unreachable", "protocol_unreachable", (3, 2)),
    (4, "unreachable", "port_unreachable", (3, 3)),
    (4, "unreachable", "frag_needed", (3, 4)),
    (4, "unreachable", "precedence_cutoff", (3, 15)),
    (4, "time_exceeded", None, (11, 0)),
    (4, "echo_request", None, (8, 0)),
    (4, "type_42", "code_7", (42, 7)),
    (6, "unreachable", "no_route", (1, 0)),
    (6, "unreachable", "admin_prohibited", (1, 1)),
    (6, "unreachable", "address_unreachable", (1, 3)),
    (6, "unreachable", "port_unreachable", (1, 4)),
    (6, "packet_too_big", None, (2, 0)),
    (6, "time_exceeded", "exceeded_frag_time", (3, 1)),
    (6, "parameter_problem", "unknown_next_header", (4, 1)),
    (6, "echo_reply", None, (129, 0)),
])
def test_packetdrill_names(version: int, type_name: str, code_name: str | None, want: tuple[int, int]) -> None:
    assert icmp_type_code(version, type_name, code_name) == want


@pytest.mark.parametrize(("version", "type_name", "code_name"), [
    (4, "packet_too_big", None), (6, "unreachable", "frag_needed"), (4, "unreachable", "bogus"),
    (4, "type_256", None), (4, "unreachable", "code_300"), (5, "unreachable", None),
])
def test_bad_names(version: int, type_name: str, code_name: str | None) -> None:
    with pytest.raises(ValueError):
        icmp_type_code(version, type_name, code_name)


def test_names_round_trip() -> None:
    for version, table in ((4, ICMPV4_TYPES), (6, ICMPV6_TYPES)):
        for name, (number, codes) in table.items():
            for code in codes.values():
                got = icmp_names(version, number, code)
                assert got[0] == name and icmp_type_code(version, got[0], got[1]) == (number, code)
            if not codes:
                assert icmp_names(version, number, 0) == (name, None)
    assert icmp_names(4, 99, 3) == ("type_99", "code_3")


def test_mtu_only_where_it_belongs() -> None:
    with pytest.raises(ValueError, match="frag_needed"):
        IcmpBuilder(PEER4, KERNEL4).packet(3, 3, mtu=1200)
    with pytest.raises(ValueError, match="16-bit"):
        IcmpBuilder(PEER4, KERNEL4).packet(3, 4, mtu=70000)
    with pytest.raises(ValueError, match="packet_too_big"):
        IcmpBuilder(PEER6, KERNEL6).packet(1, 4, mtu=1280)
    with pytest.raises(ValueError, match="different address families"):
        IcmpBuilder(PEER4, KERNEL6)
    with pytest.raises(ValueError):
        IcmpBuilder(PEER4, KERNEL4).packet(3, 3, quoted=Quoted(1, 2, protocol=1))


# -- decoding what kernels send ------------------------------------------------------------------


def test_decodes_a_kernel_style_port_unreachable_with_a_long_quote() -> None:
    # Linux quotes as much of the datagram as fits in 576 bytes (RFC 1812 §4.3.2.3), not just 8 bytes
    offending = IP(src=PEER4, dst=KERNEL4, ttl=64) / UDP(sport=5000, dport=9) / (b"z" * 100)
    pkt = Ether() / IP(src=KERNEL4, dst=PEER4) / ICMP(type=3, code=3) / bytes(offending)
    msg = decode_icmp_frame(bytes(pkt))
    assert msg is not None and msg.checksum_ok and msg.names == ("unreachable", "port_unreachable")
    assert msg.quoted == Quoted(5000, 9, 0, 100, 17, PEER4, KERNEL4, 64, 0)


def test_decodes_icmpv6_after_extension_headers_and_quotes_with_them() -> None:
    offending = IPv6(src=PEER6, dst=KERNEL6) / IPv6ExtHdrHopByHop() / TCP(sport=1, dport=2, seq=99)
    pkt = IPv6(src=KERNEL6, dst=PEER6) / IPv6ExtHdrHopByHop() / ICMPv6TimeExceeded() / bytes(offending)
    msg = decode_icmp(bytes(pkt))
    assert msg is not None and msg.checksum_ok and (msg.type, msg.code) == (3, 0)
    assert msg.quoted is not None and (msg.quoted.protocol, msg.quoted.seq, msg.quoted.payload_len) == (6, 99, 0)


def test_not_icmp_is_none() -> None:
    assert decode_icmp(bytes(IP(src=PEER4, dst=KERNEL4) / TCP())) is None
    assert decode_icmp(bytes(IPv6(src=PEER6, dst=KERNEL6) / TCP())) is None
    assert decode_icmp(bytes(IP(src=PEER4, dst=KERNEL4, flags="MF") / ICMP())) is None
    assert decode_icmp_frame(bytes(Ether() / IPv6(src=PEER6, dst=KERNEL6) / ICMPv6EchoReply()))
    short = decode_icmp(bytes(IP(src=PEER4, dst=KERNEL4) / ICMP(type=3) / b"\x45\x00"))
    assert short is not None and short.quoted is None


@settings(deadline=None)
@given(data=st.binary(max_size=120), offset=st.integers(0, 20))
def test_garbage_never_raises(data: bytes, offset: int) -> None:
    for buf in (data, b"\x45" + data, b"\x60" + b"\x00" * 5 + b"\x3a" + data, memoryview(data)):
        decode_icmp(buf, offset)
        decode_icmp_frame(b"\x00" * 12 + b"\x86\xdd" + bytes(buf), offset)
        decode_icmp_frame(b"\x00" * 12 + b"\x08\x00" + bytes(buf), offset)


@settings(deadline=None)
@given(pos=st.integers(0, 200), byte=u8, cut=st.integers(0, 200), v6=st.booleans())
def test_damaged_messages_never_raise(pos: int, byte: int, cut: int, v6: bool) -> None:
    fb = IcmpBuilder(PEER6, KERNEL6, PEER_MAC, KERNEL_MAC) if v6 else IcmpBuilder(PEER4, KERNEL4, PEER_MAC, KERNEL_MAC)
    raw = bytearray(fb.frame(1 if v6 else 3, 4, quoted=Quoted(1, 2, 3, 4)))
    if pos < len(raw):
        raw[pos] = byte
    for buf in (bytes(raw), bytes(raw[:cut])):
        decode_icmp_frame(buf)


# -- neighbour discovery -------------------------------------------------------------------------


def test_solicited_node_group() -> None:
    assert solicited_node("2001:db8::1:2345:6789") == ("ff02::1:ff45:6789", bytes.fromhex("3333ff456789"))


def test_neighbor_solicitation_is_scapy() -> None:
    ours = neighbor_solicitation(PEER6, PEER_MAC, KERNEL6)
    theirs = Ether(src=PEER_MAC.hex(":"), dst="33:33:ff:00:00:02") / \
        IPv6(src=PEER6, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=KERNEL6) / \
        ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC.hex(":"))
    assert ours == bytes(theirs)


def test_neighbor_advert_parsed() -> None:
    na = Ether(src=KERNEL_MAC.hex(":"), dst=PEER_MAC.hex(":")) / IPv6(src=KERNEL6, dst=PEER6, hlim=255) / \
        ICMPv6ND_NA(tgt=KERNEL6, S=1) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:99")
    assert parse_neighbor_advert(bytes(na)) == (KERNEL6, bytes.fromhex("020000000099"))
    bare = Ether(src=KERNEL_MAC.hex(":"), dst=PEER_MAC.hex(":")) / IPv6(src=KERNEL6, dst=PEER6, hlim=255) / \
        ICMPv6ND_NA(tgt=KERNEL6, S=1)
    assert parse_neighbor_advert(bytes(bare)) == (KERNEL6, KERNEL_MAC)  # no option: the frame's sender
    forwarded = Ether() / IPv6(src=KERNEL6, dst=PEER6, hlim=254) / ICMPv6ND_NA(tgt=KERNEL6)
    assert parse_neighbor_advert(bytes(forwarded)) is None  # RFC 4861 §7.1.2: not from the link
    assert parse_neighbor_advert(neighbor_solicitation(PEER6, PEER_MAC, KERNEL6)) is None
