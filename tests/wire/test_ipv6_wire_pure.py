"""IPv6 in the wire layer's root-free logic: nft element keys and sets, path MSS, frame decoding by status."""

from __future__ import annotations

import pytest

from rawtcp.core.segment import Flags, Segment
from rawtcp.wire import nft
from rawtcp.wire.errors import WireError
from rawtcp.wire.icmp import IcmpBuilder, IcmpMessage, Quoted
from rawtcp.wire.link import TP_STATUS_CSUMNOTREADY, decode, decode_any
from rawtcp.wire.nft import RstGuard
from rawtcp.wire.packet import Decoded, FrameBuilder
from rawtcp.wire.route import Path, resolve

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
A6, B6 = "2001:db8::1", "2001:db8::2"


def test_ipv6_element_text_and_sets() -> None:
    assert RstGuard.conn_key("2001:DB8:0::1", 40000, B6, 8080) == "2001:db8::1 . 40000 . 2001:db8::2 . 8080"
    assert RstGuard.bind_key(A6, 9000) == "2001:db8::1 . 9000"
    assert RstGuard.conn_set(A6, B6) == "conns6" and RstGuard.bind_set(A6) == "binds6"
    assert RstGuard.conn_set("198.18.0.1", "198.18.0.2") == "conns" and RstGuard.bind_set("198.18.0.1") == "binds"
    with pytest.raises(WireError, match="different address families"):
        RstGuard.conn_key(A6, 1, "198.18.0.2", 2)
    with pytest.raises(WireError, match="not an IPv6 address"):
        RstGuard.bind_key("2001:db8::1::2", 1)


def test_netlink_keys_lay_out_fields_in_4_byte_slots() -> None:
    # nftables stores each concatenated field in its own 32-bit-aligned register slot
    key = nft._conn_key(A6, 40000, B6, 8080)
    assert len(key) == 40
    assert key == bytes.fromhex("20010db8000000000000000000000001" "9c400000"
                                "20010db8000000000000000000000002" "1f900000")
    assert nft._bind_key(A6, 9000) == bytes.fromhex("20010db8000000000000000000000001" "23280000")
    assert nft._conn_key("198.18.0.1", 1, "198.18.0.2", 2) == bytes.fromhex("c6120001" "00010000" "c6120002" "00020000")


def test_table_definition_has_both_families() -> None:
    assert "set conns6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }" in nft._TABLE_DEF
    assert "ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6" in nft._TABLE_DEF
    assert "ip6 saddr . tcp sport @binds6" in nft._TABLE_DEF
    assert nft._IPV6_DEF in nft._TABLE_DEF
    assert nft.SETS == ("conns", "binds", "conns6", "binds6")


def test_path_mss_and_family() -> None:
    assert Path("veth-c", A6, MAC_A, B6, MAC_B, 1500).mss == 1440  # 1500 - 40 (IPv6) - 20 (TCP)
    assert Path("veth-c", A6, MAC_A, B6, MAC_B, 1500).version == 6
    assert Path("veth-c", "198.18.0.1", MAC_A, "198.18.0.2", MAC_B, 1500).version == 4
    # checked before any netlink traffic, so no root needed
    with pytest.raises(WireError, match="not an IPv6 address"):
        resolve("2001:db8::1::2")
    with pytest.raises(WireError, match="not an IPv4 address"):
        resolve("300.1.1.1")
    with pytest.raises(WireError, match="different address families"):
        resolve(B6, src_ip="198.18.0.1")


def test_decode_any_gives_segments_and_icmp() -> None:
    tcp = FrameBuilder(B6, A6, MAC_B, MAC_A, tos=2).frame(Segment(8080, 40000, 1, 1001, Flags.SYN | Flags.ACK, 100),
                                                          bad_checksum=True)
    got = decode_any(tcp, 0)
    assert isinstance(got, Decoded) and got.checksum_ok is False and got.ecn == 2
    trusted = decode(tcp, TP_STATUS_CSUMNOTREADY)
    assert trusted is not None and trusted.checksum_ok is True and (trusted.tos, trusted.version) == (2, 6)
    icmp = IcmpBuilder(B6, A6, MAC_B, MAC_A).frame(2, 0, mtu=1280, quoted=Quoted(40000, 8080, 5), bad_checksum=True)
    msg = decode_any(icmp, 0)
    assert isinstance(msg, IcmpMessage) and msg.mtu == 1280 and msg.checksum_ok is False
    msg = decode_any(icmp, TP_STATUS_CSUMNOTREADY)
    assert isinstance(msg, IcmpMessage) and msg.checksum_ok is True
    assert decode_any(b"\x00" * 60, 0) is None
