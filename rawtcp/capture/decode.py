"""A small, fast TCP-over-IP decoder for captured frames (struct only; the capture layer's own copy).

It reads what a ladder or a comparison needs — addresses, ports, seq/ack, flags, window, options,
payload — and returns None for anything that is not a first-fragment TCP segment. Like tshark, the
segment's length comes from the IP header, not from the bytes captured: a capture with a short
snapshot length (``tcpdump -s 60``, ``editcap -s 60``) still shows every segment with its true length,
as long as the fixed 20-byte TCP header was captured (``truncated`` then says the bytes are partial).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from rawtcp.capture.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)
from rawtcp.core.segment import Option
from rawtcp.wire.packet import parse_options

_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_H = struct.Struct("!H")
# IPv6 extension headers that can precede TCP and share the (next, length-in-8-octets) layout.
_IPV6_EXT = frozenset({0, 43, 60})
# BSD loopback address-family values for IPv4 and the various IPv6 spellings (linktypes page).
_NULL_V4 = frozenset({2})
_NULL_V6 = frozenset({10, 24, 28, 30})


@dataclass(frozen=True, slots=True)
class TcpPacket:
    """One decoded TCP segment with the IP fields a capture comparison normalises away."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: tuple[Option, ...]
    payload_len: int
    ip_id: int
    ttl: int
    payload: bytes = b""
    urgent: int = 0
    checksum: int = 0
    version: int = 4
    truncated: bool = False  # fewer bytes captured than the IP header announces

    @property
    def seg_len(self) -> int:
        """Sequence space used: payload plus one each for SYN and FIN (RFC 9293 §3.4)."""
        return self.payload_len + (self.flags & 0x02 and 1) + (self.flags & 0x01)


def ip_offset(linktype: int, data: bytes) -> int:
    """Offset of the IP header inside a frame, or -1 if the frame carries no IP."""
    if linktype == LINKTYPE_ETHERNET:
        off = 12
        if len(data) < 14:
            return -1
        (etype,) = _H.unpack_from(data, off)
        while etype in _ETH_VLAN and len(data) >= off + 6:  # 802.1Q / 802.1ad tags
            off += 4
            (etype,) = _H.unpack_from(data, off)
        return off + 2 if etype in (0x0800, 0x86DD) else -1
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return 0
    if linktype == LINKTYPE_LINUX_SLL:  # 16-byte cooked header, protocol last
        return 16 if len(data) >= 16 and data[14:16] in (b"\x08\x00", b"\x86\xdd") else -1
    if linktype == LINKTYPE_LINUX_SLL2:  # 20-byte cooked header, protocol first
        return 20 if len(data) >= 20 and data[0:2] in (b"\x08\x00", b"\x86\xdd") else -1
    if linktype == LINKTYPE_NULL and len(data) >= 4:
        family = int.from_bytes(data[:4], "little")
        if family > 0xFFFF:  # written on a big-endian host
            family = int.from_bytes(data[:4], "big")
        return 4 if family in _NULL_V4 or family in _NULL_V6 else -1
    return -1


def decode_tcp(linktype: int, data: bytes) -> TcpPacket | None:
    """Decode a frame's TCP segment; None if it is not TCP over IPv4/IPv6 or is cut short."""
    ip = ip_offset(linktype, data)
    if ip < 0 or len(data) < ip + 20:
        return None
    version = data[ip] >> 4
    if version == 4:
        vihl, _tos, total, ip_id, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, ip)
        ihl = (vihl & 0x0F) * 4
        # Only unfragmented segments or first fragments carry the TCP header (RFC 791).
        if proto != 6 or ihl < 20 or frag & 0x1FFF or frag & 0x2000:
            return None
        # A total length of 0 is what TSO segments captured on the sender look like: use the frame.
        end = ip + total if total >= ihl else len(data)
        tcp = ip + ihl
        src_s, dst_s = socket.inet_ntoa(src), socket.inet_ntoa(dst)
    elif version == 6:
        if len(data) < ip + 40:
            return None
        _vtf, plen, nxt, ttl, src, dst = _IPV6.unpack_from(data, ip)
        tcp = ip + 40
        end = tcp + plen if plen else len(data)  # 0: a jumbogram, or TSO as above
        guard = 0
        while nxt in _IPV6_EXT and guard < 8 and tcp + 8 <= min(end, len(data)):
            nxt, hlen = data[tcp], data[tcp + 1]
            tcp += (hlen + 1) * 8
            guard += 1
        if nxt != 6:
            return None
        ip_id = 0
        src_s, dst_s = socket.inet_ntop(socket.AF_INET6, src), socket.inet_ntop(socket.AF_INET6, dst)
    else:
        return None
    captured = min(len(data), end)  # Ethernet padding lies beyond the IP datagram
    if end < tcp + 20 or captured < tcp + 20:
        return None
    sport, dport, seq, ack, off, flags, window, checksum, urgent = _TCP.unpack_from(data, tcp)
    doff = (off >> 4) * 4
    if doff < 20 or tcp + doff > end:
        return None
    # The wire's parser (scapy's names and shapes), strict about lengths as a capture reader must be.
    options = parse_options(data[tcp + 20:min(tcp + doff, captured)], strict=True) if doff > 20 else ()
    payload = data[tcp + doff:captured]
    return TcpPacket(src_s, dst_s, sport, dport, seq, ack, flags, window, options, end - tcp - doff,
                     ip_id, ttl, payload, urgent, checksum, version, captured < end)
