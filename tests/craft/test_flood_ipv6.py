"""The SYN flood over IPv6, without root: the patched template against scapy, and the target check."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from rawtcp.core.segment import Flags, Segment
from rawtcp.craft import flood as fl
from rawtcp.craft.errors import CraftError
from rawtcp.wire.packet import FrameBuilder, decode_frame

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")

ipv6 = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed)


@settings(max_examples=200, deadline=None)
@given(src=ipv6, dst=ipv6, dport=st.integers(1, 65535), sport=st.integers(0, 65535), seq=st.integers(0, 2**32 - 1),
       window=st.integers(0, 65535), hlim=st.integers(1, 255), linux_opts=st.booleans())
def test_ipv6_template_patch_matches_scapy(src: str, dst: str, dport: int, sport: int, seq: int, window: int,
                                           hlim: int, linux_opts: bool) -> None:
    opts = fl.LINUX_SYN_OPTIONS if linux_opts else ()
    tmpl = fl.SynTemplate(src, dst, SRC_MAC, DST_MAC, dport, window=window, options=opts, ttl=hlim, ip_id=1234)
    assert tmpl.version == 6 and tmpl.size == 14 + 40 + 20 + (20 if linux_opts else 0)
    buf = bytearray(b"\xee" * 5 + tmpl.frame * 2)  # patched in place, at an offset, among other frames
    tmpl.patch(buf, 5 + tmpl.size, sport, seq)
    patched = bytes(buf[5 + tmpl.size:])
    scapy = bytes(Ether(src=SRC_MAC, dst=DST_MAC) / IPv6(src=src, dst=dst, hlim=hlim)
                  / TCP(sport=sport, dport=dport, seq=seq, flags="S", window=window, options=list(opts)))
    assert patched == scapy  # the checksum over the IPv6 pseudo-header (RFC 8200 §8.1) too
    assert tmpl.build(sport, seq) == scapy
    assert buf[5:5 + tmpl.size] == tmpl.frame  # the neighbour is untouched
    builder = FrameBuilder(src, dst, SRC_MAC, DST_MAC, ttl=hlim)
    assert patched == builder.frame(Segment(sport, dport, seq, 0, Flags.SYN, window, opts))
    dec = decode_frame(patched)
    assert dec is not None and dec.version == 6 and dec.checksum_ok
    assert (dec.segment.sport, dec.segment.seq) == (sport, seq)
    # compared as addresses: inet_ntop spells ::/96 the old IPv4-compatible way ("::0.1.0.0")
    assert ipaddress.ip_address(dec.src_ip) == ipaddress.ip_address(src)
    assert ipaddress.ip_address(dec.dst_ip) == ipaddress.ip_address(dst)


def test_ipv4_template_offsets_unchanged() -> None:
    tmpl = fl.SynTemplate("198.18.0.1", "198.18.0.2", SRC_MAC, DST_MAC, 8080)
    assert tmpl.version == 4
    dec = decode_frame(tmpl.build(40000, 7))
    assert dec is not None and dec.version == 4 and dec.checksum_ok and dec.segment.sport == 40000


@pytest.mark.parametrize("ip", ["2001:db8::2", "2001:db8:ffff::1", "2001:db8::ffff:ffff", "198.18.0.2"])
def test_flood_accepts_the_lab_prefixes(ip: str) -> None:
    fl.check_target(ip)


@pytest.mark.parametrize("ip", ["2001:db9::2", "2001:db7:ffff::1", "::1", "fe80::1", "2001:4860:4860::8888",
                                "::ffff:198.18.0.2", "fd00::1", "ff02::1", "not-an-address"])
def test_flood_refuses_ipv6_outside_2001_db8(ip: str) -> None:
    with pytest.raises(CraftError, match="flood refuses"):
        fl.check_target(ip)
