"""ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: built for injection, parsed when a kernel sends one.

The errors a TCP test injects — destination unreachable, fragmentation needed (RFC 1191), packet too
big (RFC 8201) — quote the packet that "failed": the kernel's own earlier segment, so its addresses
and ports run from the kernel to the peer, the reverse of the ICMP message itself. As packetdrill
does (icmp_packet.c), the quote is a bare IP header (no options, no extension headers) whose length
claims the whole original packet, followed by the first 8 bytes of the transport header (RFC 792:
"Internet Header + 64 bits of Original Data Datagram"): for TCP the ports and the sequence number,
which Linux checks against its send window before acting on the error. Unlike packetdrill, the
quoted IPv4 header carries a valid checksum, as a router's quote of a real packet would (Linux does
not look at it).

Type and code names are packetdrill's, so a script's ``icmp unreachable frag_needed mtu 1200`` maps
through :func:`icmp_type_code` to ``IcmpBuilder.frame(type, code, mtu=1200, quoted=...)``. IPv6
neighbour solicitation and advertisement (RFC 4861) live here too: they are ICMPv6 messages, and
route resolution needs them.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from rawtcp.wire.packet import (
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_TCP,
    IPV6_EXTENSIONS,
    ip_checksum,
    ip_offset,
    ip_version,
    ipv6_upper_layer,
    pack_ip,
)

IPPROTO_ICMP = 1
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
_M = 0xFFFF

# RFC 792 types and the destination-unreachable codes (RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
ICMP_ECHOREPLY, ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_TIME_EXCEEDED = 0, 3, 8, 11
ICMP_FRAG_NEEDED = 4
# RFC 4443 types.
ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED, ICMPV6_PARAMPROB = 1, 2, 3, 4
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
# RFC 4861 §4.3, §4.4.
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
ND_OPT_SOURCE_LL, ND_OPT_TARGET_LL = 1, 2
ND_HOP_LIMIT = 255  # RFC 4861 §7.1: anything else proves the sender is off-link, so it is dropped

# packetdrill's names (icmp_packet.c), type -> (name, {code name: code}).
ICMPV4_UNREACH_CODES: dict[str, int] = {
    "net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2, "port_unreachable": 3,
    "frag_needed": 4, "source_route_failed": 5, "net_unknown": 6, "host_unknown": 7,
    "source_host_isolated": 8, "net_prohibited": 9, "host_prohibited": 10, "net_unreachable_for_tos": 11,
    "host_unreachable_for_tos": 12, "packet_filtered": 13, "precedence_violation": 14, "precedence_cutoff": 15,
}
ICMPV4_TYPES: dict[str, tuple[int, dict[str, int]]] = {
    "echo_reply": (0, {}), "unreachable": (3, ICMPV4_UNREACH_CODES), "source_quench": (4, {}),
    "redirect": (5, {}), "echo_request": (8, {}), "time_exceeded": (11, {}), "parameter_problem": (12, {}),
    "timestamp_request": (13, {}), "timestamp_reply": (14, {}), "information_request": (15, {}),
    "information_reply": (16, {}), "address_mask_request": (17, {}), "address_mask_reply": (18, {}),
}
ICMPV6_UNREACH_CODES: dict[str, int] = {
    "net_unreachable": 0, "no_route": 0, "admin_prohibited": 1, "not_neighbour": 2,
    "address_unreachable": 3, "port_unreachable": 4,
}
ICMPV6_TYPES: dict[str, tuple[int, dict[str, int]]] = {
    "unreachable": (1, ICMPV6_UNREACH_CODES), "packet_too_big": (2, {}),
    "time_exceeded": (3, {"exceeded_hop_limit": 0, "exceeded_frag_time": 1}),
    "parameter_problem": (4, {"header_field": 0, "unknown_next_header": 1, "unknown_option": 2}),
    "echo_request": (128, {}), "echo_reply": (129, {}),
}

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_ICMP = struct.Struct("!BBHI")  # type, code, checksum, the 32-bit word whose meaning depends on the type
_ETH = struct.Struct("!6s6sH")
_QUOTE_TCP = struct.Struct("!HHI")  # the first 8 bytes of a TCP header: ports and sequence number
_QUOTE_UDP = struct.Struct("!HHHH")


def icmp_type_code(version: int, type_name: str, code_name: str | None = None) -> tuple[int, int]:
    """(type, code) for packetdrill's names in ICMP (``version`` 4) or ICMPv6 (6).

    ``type_N`` / ``code_N`` give any number, as in packetdrill and tcpdump; a missing code is 0.
    ValueError for a name the family does not know.
    """
    table = ICMPV4_TYPES if version == 4 else ICMPV6_TYPES if version == 6 else None
    if table is None:
        raise ValueError(f"IP version must be 4 or 6, not {version!r}")
    codes: dict[str, int] = {}
    if type_name.startswith("type_") and type_name[5:].isdigit():
        icmp_type = int(type_name[5:])
    elif type_name in table:
        icmp_type, codes = table[type_name]
    else:
        raise ValueError(f"bad ICMP{'v6' if version == 6 else ''} type {type_name}")
    if code_name is None:
        code = 0
    elif code_name.startswith("code_") and code_name[5:].isdigit():
        code = int(code_name[5:])
    elif code_name in codes:
        code = codes[code_name]
    else:
        raise ValueError(f"bad ICMP{'v6' if version == 6 else ''} code {code_name}")
    if not (0 <= icmp_type <= 255 and 0 <= code <= 255):
        raise ValueError(f"ICMP type and code are bytes: {icmp_type}, {code}")
    return icmp_type, code


def icmp_names(version: int, icmp_type: int, code: int) -> tuple[str, str | None]:
    """The reverse of :func:`icmp_type_code`: packetdrill's type name and code name (None for code 0
    of a type without a code table); unknown numbers as ``type_N`` / ``code_N``."""
    table = ICMPV4_TYPES if version == 4 else ICMPV6_TYPES
    for name, (number, codes) in table.items():
        if number == icmp_type:
            for code_name, value in codes.items():
                if value == code:
                    return name, code_name
            return name, None if code == 0 and not codes else f"code_{code}"
    return f"type_{icmp_type}", None if code == 0 else f"code_{code}"


@dataclass(frozen=True, slots=True)
class Quoted:
    """The packet an ICMP error quotes: by default the kernel's own earlier segment.

    ``sport``/``dport`` are the quoted packet's (the kernel's port, then the peer's); addresses left
    None are the reverse of the ICMP message's (quoted source = ICMP destination). ``payload_len``
    is the data length the quoted packet claimed; its IP length is header + TCP (20) or UDP (8) +
    payload. When decoded, ``seq`` is 0 for anything but TCP.
    """

    sport: int
    dport: int
    seq: int = 0
    payload_len: int = 0
    protocol: int = IPPROTO_TCP
    src_ip: str | None = None
    dst_ip: str | None = None
    ttl: int = 64
    tos: int = 0

    def to_bytes(self, version: int, src_ip: str, dst_ip: str) -> bytes:
        """IP header + first 8 transport bytes, addresses defaulting to ``src_ip``/``dst_ip``."""
        src, dst = self.src_ip or src_ip, self.dst_ip or dst_ip
        if self.protocol == IPPROTO_TCP:
            l4_len = 20
            head = _QUOTE_TCP.pack(self.sport, self.dport, self.seq)
        elif self.protocol == IPPROTO_UDP:
            l4_len = 8
            head = _QUOTE_UDP.pack(self.sport, self.dport, 8 + self.payload_len, 0)
        else:
            raise ValueError(f"only TCP ({IPPROTO_TCP}) and UDP ({IPPROTO_UDP}) can be quoted, not {self.protocol}")
        s, d = pack_ip(src), pack_ip(dst)
        if len(s) != len(d) or len(s) != (16 if version == 6 else 4):
            raise ValueError(f"quoted addresses {src}, {dst} are not IPv{version}")
        if version == 6:
            ip = _IP6.pack(6 << 28 | self.tos << 20, l4_len + self.payload_len, self.protocol, self.ttl, s, d)
        else:
            hdr = _IP4.pack(0x45, self.tos, 20 + l4_len + self.payload_len, 0, 0, self.ttl, self.protocol, 0, s, d)
            ip = hdr[:10] + struct.pack("!H", ip_checksum(hdr)) + hdr[12:]
        return ip + head


def icmpv6_checksum(src: bytes, dst: bytes, msg: bytes | bytearray | memoryview) -> int:
    """RFC 4443 §2.3: the one's-complement sum over the RFC 8200 §8.1 pseudo-header and the message."""
    n = int.from_bytes(msg, "big")
    if len(msg) & 1:
        n <<= 8
    total = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + IPPROTO_ICMPV6 + len(msg) + n
    return -total % _M


def _rest_word(version: int, icmp_type: int, code: int, mtu: int | None, echo_id: int | None,
               echo_seq: int) -> int:
    """The 32 bits after the checksum: MTU, echo id/sequence, or unused (zero)."""
    rest = 0
    if mtu is not None:
        if version == 4:
            # RFC 1191 §4: the next-hop MTU in the low 16 bits of "unused", for code 4 only.
            if (icmp_type, code) != (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED):
                raise ValueError("ICMPv4 MTU is only valid for unreachable frag_needed")
            if not 0 <= mtu <= 0xFFFF:
                raise ValueError("ICMPv4 MTU out of 16-bit range")
            rest = mtu
        else:
            # RFC 4443 §3.2: Packet Too Big carries the next-hop link's MTU as 32 bits.
            if (icmp_type, code) != (ICMPV6_PKT_TOOBIG, 0):
                raise ValueError("ICMPv6 MTU is only valid for packet_too_big")
            if not 0 <= mtu <= 0xFFFFFFFF:
                raise ValueError("ICMPv6 MTU out of 32-bit range")
            rest = mtu
    if echo_id is not None:
        if not 0 <= echo_id <= 0xFFFF or not 0 <= echo_seq <= 0xFFFF:
            raise ValueError("echo id and sequence are 16-bit")
        rest |= echo_id << 16 | echo_seq  # RFC 792 / RFC 4443 §4.1: identifier, sequence number
    return rest


class IcmpBuilder:
    """Builds ICMP (IPv4 addresses) or ICMPv6 (IPv6 addresses) messages from ``src_ip`` to ``dst_ip``.

    ``frame()`` adds an Ethernet header when both MACs are known. The outer IPv4 header has DF clear
    (an ICMP error is not path-MTU probed) and IDs counting from 1 unless given.
    """

    __slots__ = ("_dst", "_dst_mac", "_next_id", "_src", "_src_mac", "dst_ip", "flow_label", "src_ip",
                 "tos", "ttl", "version")

    def __init__(self, src_ip: str, dst_ip: str, src_mac: bytes | None = None, dst_mac: bytes | None = None,
                 ttl: int = 64, tos: int = 0, flow_label: int = 0) -> None:
        if not 0 <= ttl <= 255 or not 0 <= tos <= 255 or not 0 <= flow_label <= 0xFFFFF:
            raise ValueError("ttl and tos must be in 0..255, the flow label in 0..0xfffff")
        for mac in (src_mac, dst_mac):
            if mac is not None and len(mac) != 6:
                raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        self.version = ip_version(src_ip)
        if ip_version(dst_ip) != self.version:
            raise ValueError(f"{src_ip!r} and {dst_ip!r} are of different address families")
        self._src, self._dst = pack_ip(src_ip), pack_ip(dst_ip)
        self.src_ip, self.dst_ip = src_ip, dst_ip
        self._src_mac, self._dst_mac = src_mac, dst_mac if src_mac is not None else None
        self.ttl, self.tos, self.flow_label = ttl, tos, flow_label
        self._next_id = 1

    def message(self, icmp_type: int, code: int = 0, *, mtu: int | None = None, echo_id: int | None = None,
                echo_seq: int = 0, quoted: Quoted | None = None, payload: bytes = b"",
                bad_checksum: bool = False) -> bytes:
        """The ICMP message alone (header, then the quote or ``payload``), checksum filled in."""
        if not (0 <= icmp_type <= 255 and 0 <= code <= 255):
            raise ValueError(f"ICMP type and code are bytes: {icmp_type}, {code}")
        rest = _rest_word(self.version, icmp_type, code, mtu, echo_id, echo_seq)
        # the quoted packet ran the other way: from this message's destination to its source
        body = quoted.to_bytes(self.version, self.dst_ip, self.src_ip) if quoted is not None else b""
        msg = _ICMP.pack(icmp_type, code, 0, rest) + body + payload
        # RFC 4443 §2.3: ICMPv6 sums a pseudo-header too; RFC 792: ICMP sums the message only
        csum = icmpv6_checksum(self._src, self._dst, msg) if self.version == 6 else ip_checksum(msg)
        if bad_checksum:
            csum = (csum + 1) & 0xFFFF or 1
        return msg[:2] + struct.pack("!H", csum) + msg[4:]

    def packet(self, icmp_type: int, code: int = 0, *, mtu: int | None = None, echo_id: int | None = None,
               echo_seq: int = 0, quoted: Quoted | None = None, payload: bytes = b"", ip_id: int | None = None,
               bad_checksum: bool = False) -> bytes:
        """IP + ICMP bytes (see :meth:`message`)."""
        msg = self.message(icmp_type, code, mtu=mtu, echo_id=echo_id, echo_seq=echo_seq, quoted=quoted,
                           payload=payload, bad_checksum=bad_checksum)
        if self.version == 6:
            if len(msg) > 0xFFFF:
                raise ValueError("ICMPv6 message longer than an IPv6 payload can be")
            return _IP6.pack(6 << 28 | self.tos << 20 | self.flow_label, len(msg), IPPROTO_ICMPV6, self.ttl,
                             self._src, self._dst) + msg
        if ip_id is None:
            ip_id = self._next_id
            self._next_id = (ip_id + 1) & 0xFFFF
        if not 0 <= ip_id <= 0xFFFF or 20 + len(msg) > 0xFFFF:
            raise ValueError("IP id or length out of range")
        hdr = _IP4.pack(0x45, self.tos, 20 + len(msg), ip_id, 0, self.ttl, IPPROTO_ICMP, 0, self._src, self._dst)
        return hdr[:10] + struct.pack("!H", ip_checksum(hdr)) + hdr[12:] + msg

    def frame(self, icmp_type: int, code: int = 0, *, mtu: int | None = None, echo_id: int | None = None,
              echo_seq: int = 0, quoted: Quoted | None = None, payload: bytes = b"", ip_id: int | None = None,
              bad_checksum: bool = False) -> bytes:
        """Ethernet + IP + ICMP bytes (IP + ICMP when the MACs are unknown)."""
        pkt = self.packet(icmp_type, code, mtu=mtu, echo_id=echo_id, echo_seq=echo_seq, quoted=quoted,
                          payload=payload, ip_id=ip_id, bad_checksum=bad_checksum)
        if self._dst_mac is None:
            return pkt
        assert self._src_mac is not None
        return _ETH.pack(self._dst_mac, self._src_mac, ETH_P_IPV6 if self.version == 6 else ETH_P_IP) + pkt


# ---------------------------------------------------------------------------------------------
# parsing


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """A received ICMP or ICMPv6 message, with the IP fields a script may check.

    ``mtu`` is set for fragmentation needed (RFC 1191) and packet too big (RFC 4443 §3.2); ``echo_id``
    for echo request/reply; ``quoted`` for errors whose quote reaches the transport ports.
    """

    version: int
    src_ip: str
    dst_ip: str
    type: int
    code: int
    checksum_ok: bool | None
    ttl: int
    tos: int
    flow_label: int
    rest: int  # the 32-bit word after the checksum, as sent
    mtu: int | None
    echo_id: int | None
    quoted: Quoted | None
    body: bytes  # everything after the 8-byte header

    @property
    def names(self) -> tuple[str, str | None]:
        """packetdrill's type and code names (``("unreachable", "frag_needed")``)."""
        return icmp_names(self.version, self.type, self.code)

    @property
    def is_error(self) -> bool:
        """RFC 4443 §2.1: types below 128 are errors; RFC 792 errors are 3, 4, 5, 11 and 12."""
        return self.type < 128 if self.version == 6 else self.type in (3, 4, 5, 11, 12)


def _parse_quote(version: int, data: bytes) -> Quoted | None:
    """The quoted packet's addresses, protocol, ports and sequence number, when all of them are there."""
    try:
        if version == 4:
            if len(data) < 28 or data[0] >> 4 != 4:
                return None
            ver_ihl, tos, tot_len, _id, _frag, ttl, proto, _sum, src, dst = _IP4.unpack_from(data)
            ihl = (ver_ihl & 0x0F) << 2
            if ihl < 20 or len(data) < ihl + 8:
                return None
            l4, ip_len, src_ip, dst_ip = ihl, tot_len - ihl, socket.inet_ntoa(src), socket.inet_ntoa(dst)
            flow_tos = tos
        else:
            if len(data) < 48 or data[0] >> 4 != 6:
                return None
            first, plen, proto, ttl, src, dst = _IP6.unpack_from(data)
            l4 = 40
            for _ in range(8):  # RFC 8200 §4 extension headers, as far as the (cut short) quote goes
                if proto not in IPV6_EXTENSIONS or l4 + 2 > len(data):
                    break
                proto, l4 = data[l4], l4 + ((data[l4 + 1] + 1) << 3)
            if l4 + 8 > len(data):
                return None
            ip_len = plen - (l4 - 40)
            src_ip, dst_ip = socket.inet_ntop(socket.AF_INET6, src), socket.inet_ntop(socket.AF_INET6, dst)
            flow_tos = (first >> 20) & 0xFF
        if proto == IPPROTO_TCP:
            sport, dport, seq = _QUOTE_TCP.unpack_from(data, l4)
            payload_len = ip_len - 20
        elif proto == IPPROTO_UDP:
            sport, dport, _ulen, _usum = _QUOTE_UDP.unpack_from(data, l4)
            seq, payload_len = 0, ip_len - 8
        else:
            return None
        return Quoted(sport, dport, seq, max(0, payload_len), proto, src_ip, dst_ip, ttl, flow_tos)
    except (struct.error, ValueError, OSError):
        return None


def decode_icmp(buf: bytes | bytearray | memoryview, offset: int = 0, verify: bool = True) -> IcmpMessage | None:
    """Parse an IPv4+ICMP or IPv6+ICMPv6 packet at ``offset``; None for anything else. Never raises."""
    try:
        n = len(buf)
        if n - offset < 28:
            return None
        version = buf[offset] >> 4
        if version == 4:
            ver_ihl, tos, tot_len, _id, frag, ttl, proto, _sum, src, dst = _IP4.unpack_from(buf, offset)
            ihl = (ver_ihl & 0x0F) << 2
            if proto != IPPROTO_ICMP or frag & 0x3FFF or ihl < 20 or tot_len < ihl + 8 or offset + tot_len > n:
                return None
            start, end = offset + ihl, offset + tot_len
            src_ip, dst_ip, flow = socket.inet_ntoa(src), socket.inet_ntoa(dst), 0
            msg = bytes(buf[start:end])
            ok = ip_checksum(msg) == 0 if verify else None
        elif version == 6:
            upper = ipv6_upper_layer(buf, offset)
            if upper is None or upper[0] != IPPROTO_ICMPV6 or upper[2] - upper[1] < 8:
                return None
            first, _plen, _nh, ttl, src, dst = _IP6.unpack_from(buf, offset)
            msg = bytes(buf[upper[1]:upper[2]])
            tos, flow = (first >> 20) & 0xFF, first & 0xFFFFF
            src_ip, dst_ip = socket.inet_ntop(socket.AF_INET6, src), socket.inet_ntop(socket.AF_INET6, dst)
            ok = icmpv6_checksum(src, dst, msg) == 0 if verify else None
        else:
            return None
        icmp_type, code, _csum, rest = _ICMP.unpack_from(msg)
        body = msg[8:]
        mtu = echo_id = None
        quoted = None
        if version == 4:
            if (icmp_type, code) == (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED):
                mtu = rest & 0xFFFF
            if icmp_type in (ICMP_ECHOREPLY, ICMP_ECHO):
                echo_id = rest >> 16
            elif icmp_type in (3, 4, 5, 11, 12):
                quoted = _parse_quote(4, body)
        else:
            if icmp_type == ICMPV6_PKT_TOOBIG:
                mtu = rest
            if icmp_type in (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY):
                echo_id = rest >> 16
            elif icmp_type < 128:
                quoted = _parse_quote(6, body)
        return IcmpMessage(version, src_ip, dst_ip, icmp_type, code, ok, ttl, tos, flow, rest, mtu, echo_id,
                           quoted, body)
    except (struct.error, IndexError, ValueError, TypeError, OSError):
        return None


def decode_icmp_frame(buf: bytes | bytearray | memoryview, offset: int = 0,
                      verify: bool = True) -> IcmpMessage | None:
    """Parse an Ethernet frame carrying ICMP or ICMPv6 (one 802.1Q tag allowed); None for anything else."""
    found = ip_offset(buf, offset)
    if found is None:
        return None
    return decode_icmp(buf, found[1], verify)


# ---------------------------------------------------------------------------------------------
# neighbour discovery (RFC 4861)


def solicited_node(ip: str) -> tuple[str, bytes]:
    """The solicited-node multicast address of ``ip`` (RFC 4291 §2.7.1: ff02::1:ff + its low 24 bits)
    and the Ethernet group it maps to (RFC 2464 §7: 33:33 + the low 32 bits)."""
    packed = pack_ip(ip)
    if len(packed) != 16:
        raise ValueError(f"not an IPv6 address: {ip!r}")
    group = bytes.fromhex("ff02" + "00" * 8 + "0001ff") + packed[13:]
    return socket.inet_ntop(socket.AF_INET6, group), b"\x33\x33" + group[12:]


def neighbor_solicitation(src_ip: str, src_mac: bytes, target_ip: str) -> bytes:
    """An Ethernet frame asking who has ``target_ip`` (RFC 4861 §4.3), sent to its solicited-node
    group, with our link-layer address as the source option so the answer can come straight back."""
    group, group_mac = solicited_node(target_ip)
    target = pack_ip(target_ip)
    builder = IcmpBuilder(src_ip, group, src_mac, group_mac, ttl=ND_HOP_LIMIT)
    option = bytes((ND_OPT_SOURCE_LL, 1)) + src_mac  # length in units of 8 octets
    return builder.frame(ND_NEIGHBOR_SOLICIT, 0, payload=target + option)


def parse_neighbor_advert(frame: bytes | bytearray | memoryview) -> tuple[str, bytes] | None:
    """(target address, its MAC) from an Ethernet frame carrying a neighbour advertisement (RFC 4861
    §4.4); None for anything else, including one with a hop limit other than 255 (§7.1.2)."""
    msg = decode_icmp_frame(frame)
    if msg is None or msg.version != 6 or msg.type != ND_NEIGHBOR_ADVERT or msg.code != 0:
        return None
    if msg.ttl != ND_HOP_LIMIT or msg.checksum_ok is False or len(msg.body) < 16:
        return None
    target = socket.inet_ntop(socket.AF_INET6, msg.body[:16])
    opts, pos = msg.body[16:], 0
    while pos + 2 <= len(opts):
        kind, units = opts[pos], opts[pos + 1]
        if units == 0:  # §4.6: a zero length is invalid, and would loop forever
            return None
        if kind == ND_OPT_TARGET_LL and pos + 8 <= len(opts):
            return target, bytes(opts[pos + 2 : pos + 8])
        pos += units * 8
    # §4.4: the option may be left out on links without addresses; on Ethernet the sender is it
    return (target, bytes(frame[6:12])) if len(frame) >= 12 else None
