"""The fast path: IPv4/IPv6+TCP segments built and parsed with ``struct``, byte-for-byte what scapy makes.

scapy needs ~260 µs to build and ~64 µs to dissect one segment, which would cap the connection rate
and let fast kernel replies overtake us. Here the constant parts of the headers (addresses,
TTL, DF, TOS, MACs) are fixed per connection and each segment is one ``struct.pack``.

Checksums use the identity 2**16 ≡ 1 (mod 0xffff): the one's-complement sum of 16-bit words
(RFC 1071) is congruent to the whole byte string read as one big-endian integer, so
``int.from_bytes(data) % 0xffff`` (C speed) replaces a Python loop over words, and a 32-bit field
such as seq can be added as a plain integer. Options are encoded and decoded exactly like scapy's
``TCPOptionsField`` (same names, same value shapes, zero-byte (EOL) padding to 4 bytes), so a
``Segment`` from rawtcp.core round-trips through either implementation.

IPv6 (RFC 8200) is chosen by the addresses' family: no header checksum, the hop limit in place of the
TTL, the traffic class in place of the TOS byte (its low two bits are ECN, RFC 3168), a 20-bit flow
label, and a pseudo-header of both 128-bit addresses, a 32-bit length and the next header (§8.1).
A 128-bit address read as one integer is congruent to the sum of its 16-bit words, so the same
``% 0xffff`` arithmetic serves both families.
"""

from __future__ import annotations

import functools
import socket
import struct
from dataclasses import dataclass
from typing import Any

from rawtcp.core.segment import Flags, Option, Segment

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
IPPROTO_TCP = 6
IPV6_HEADER_LEN = 40  # RFC 8200 §3: fixed, no options (those are extension headers)
# RFC 8200 §4: extension headers that may precede TCP and share the (next, 8-octet units - 1) layout:
# hop-by-hop options, routing, destination options. Fragments (44) are refused, as IPv4 fragments are.
IPV6_EXTENSIONS = frozenset({0, 43, 60})
_M = 0xFFFF  # one's-complement arithmetic is arithmetic modulo 2**16 - 1

# Ethernet (14) + IPv4 without options (20) + TCP without options (20).
_ETH_IP_TCP = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHH")
_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
_IP_HDR = struct.Struct("!BBHHHBBH4s4s")
_TCP_HDR = struct.Struct("!HHIIBBHHH")
_ETH_TYPE = struct.Struct("!H")
# Ethernet (14) + IPv6 (40) + TCP without options (20); the first IPv6 word is version/class/flow.
_ETH_IP6_TCP = struct.Struct("!6s6sHIHBB16s16sHHIIBBHHH")
_IP6_TCP = struct.Struct("!IHBB16s16sHHIIBBHHH")
_IP6_HDR = struct.Struct("!IHBB16s16s")
_II = struct.Struct("!II")
_NOP: Option = ("NOP", None)
_NOP_NOP_TS = struct.Struct("!BBBBII")  # the 12 option bytes of nearly every segment with timestamps
_NOP_NOP_TS_KINDS = b"\x01\x01\x08\x0a"
_SACK_OK: Option = ("SAckOK", b"")
_LINUX_SYN = struct.Struct("!BBHBBBBIIBBBB")  # MSS, SAckOK, TSopt, NOP, WScale

# Every flag combination as a Flags value, so decoding does not construct IntFlag pseudo-members.
_FLAGS: tuple[Flags, ...] = tuple(Flags(i) for i in range(256))

# scapy's TCPOptions table (scapy/layers/inet.py): kind -> (name, struct format or None).
_OPTION_KINDS: dict[int, tuple[str, str | None]] = {
    2: ("MSS", "!H"),
    3: ("WScale", "!B"),
    4: ("SAckOK", None),
    5: ("SAck", "!"),
    8: ("Timestamp", "!II"),
    14: ("AltChkSum", "!BH"),
    15: ("AltChkSumOpt", None),
    19: ("MD5", "16s"),
    25: ("Mood", "!p"),
    28: ("UTO", "!H"),
    29: ("AO", None),
    34: ("TFO", "!II"),
}
_OPTION_NAMES: dict[str, int] = {name: kind for kind, (name, _) in _OPTION_KINDS.items()}
MAX_OPTIONS_LEN = 40  # data offset is 4 bits of 32-bit words: 60 - 20 (RFC 9293 §3.1)


# ---------------------------------------------------------------------------------------------
# checksums


def _words(data: bytes | bytearray | memoryview) -> int:
    """``data`` as one big-endian integer, zero-padded to an even length (RFC 1071 pads odd data)."""
    n = int.from_bytes(data, "big")
    return n << 8 if len(data) & 1 else n


def ip_checksum(header: bytes | bytearray | memoryview) -> int:
    """RFC 791 header checksum of ``header`` as given: zero the field to compute it; 0 means valid."""
    n = _words(header)
    return -n % _M if n else 0xFFFF  # all-zero words sum to +0, whose complement is 0xffff


def tcp_checksum(src_ip: bytes, dst_ip: bytes, tcp: bytes | bytearray | memoryview) -> int:
    """RFC 9293 §3.1 checksum over the pseudo-header and ``tcp`` (addresses as 4 packed bytes, or as
    16 for IPv6, RFC 8200 §8.1: the sums agree, see the module docstring).

    Zero the checksum field to compute it; over a received segment the result is 0 when it is valid.
    """
    total = int.from_bytes(src_ip, "big") + int.from_bytes(dst_ip, "big") + IPPROTO_TCP + len(tcp)
    return -(total + _words(tcp)) % _M


# ---------------------------------------------------------------------------------------------
# options


def encode_options(options: tuple[Option, ...] | list[Option]) -> bytes:
    """scapy's ``TCPOptionsField.i2m``: kinds by name or number, EOL (zero) padding to 4 bytes."""
    if not options:
        return b""
    # NOP NOP TSopt (RFC 7323 Appendix A's layout) rides on every segment once timestamps are on
    if len(options) == 3 and options[0] == _NOP and options[1] == _NOP and options[2][0] == "Timestamp":
        value = options[2][1]
        return _NOP_NOP_TS.pack(1, 1, 8, 10, value[0], value[1])
    # Linux's SYN and SYN-ACK: mss,sackOK,TS,nop,wscale (20 bytes, no padding)
    if (len(options) == 5 and options[0][0] == "MSS" and options[1] == _SACK_OK and options[2][0] == "Timestamp"
            and options[3] == _NOP and options[4][0] == "WScale"):
        stamp = options[2][1]
        return _LINUX_SYN.pack(2, 4, options[0][1], 4, 2, 8, 10, stamp[0], stamp[1], 1, 3, 3, options[4][1])
    out = bytearray()
    for name, value in options:
        # scapy first maps the numeric single-byte kinds to their names
        if name == "NOP" or name == 1:
            out.append(1)
            continue
        if name == "EOL" or name == 0:
            out.append(0)
            continue
        if name == "MSS":
            out += struct.pack("!BBH", 2, 4, value)
            continue
        if name == "WScale":
            out += struct.pack("!BBB", 3, 3, value)
            continue
        if name == "Timestamp":
            out += struct.pack("!BBII", 8, 10, value[0], value[1])
            continue
        if isinstance(name, str):
            kind = _OPTION_NAMES.get(name)
            if kind is None:
                raise ValueError(f"unknown TCP option {name!r}")
            fmt = _OPTION_KINDS[kind][1]
            if value is None:
                value = b""
            if kind == 5:  # SAck: any number of 32-bit edges
                fmt = f"!{len(value)}I"
            if fmt is not None and (not isinstance(value, bytes | str) or "s" in fmt):
                value = struct.pack(fmt, *(value if isinstance(value, tuple | list) else (value,)))
        else:
            kind = name
            if not isinstance(kind, int) or not 0 <= kind <= 255:
                raise ValueError(f"TCP option kind must be a name or 0..255, not {kind!r}")
            if not isinstance(value, bytes | bytearray | str):
                raise ValueError(f"raw TCP option {kind} needs bytes, not {type(value).__name__}")
        if isinstance(value, str):
            value = value.encode()
        out.append(kind)
        out.append(2 + len(value))
        out += value
    out += b"\x00" * (-len(out) % 4)
    if len(out) > MAX_OPTIONS_LEN:
        raise ValueError(f"TCP options take {len(out)} bytes, more than {MAX_OPTIONS_LEN}")
    return bytes(out)


def parse_options(data: bytes, *, strict: bool = False) -> tuple[Option, ...]:
    """scapy's ``TCPOptionsField.m2i``: the same names and value shapes, stopping at EOL.

    Known kinds whose length does not fit their format keep their raw bytes, as in scapy; AO is kept
    as raw bytes (scapy wraps it in a packet class). ``strict`` (capture files): an option whose length
    is below 2 or runs past the end ends the parse, the rest kept as one ``(kind, bytes)`` entry, as
    tshark marks it malformed, where scapy would read on.
    """
    opts: list[Option] = []
    i, n = 0, len(data)
    while i < n:
        kind = data[i]
        if kind == 0:
            opts.append(("EOL", None))
            break
        if kind == 1:
            opts.append(("NOP", None))
            i += 1
            continue
        olen = data[i + 1] if i + 1 < n else 0
        if strict and (olen < 2 or i + olen > n):
            opts.append((kind, bytes(data[i:])))
            break
        # fast paths for what every SYN carries, when well-formed and complete
        if i + olen <= n:
            if kind == 2 and olen == 4:
                opts.append(("MSS", data[i + 2] << 8 | data[i + 3]))
                i += 4
                continue
            if kind == 8 and olen == 10:
                opts.append(("Timestamp", _II.unpack_from(data, i + 2)))
                i += 10
                continue
            if kind == 3 and olen == 3:
                opts.append(("WScale", data[i + 2]))
                i += 3
                continue
            if kind == 4 and olen == 2:
                opts.append(("SAckOK", b""))
                i += 2
                continue
        if olen < 2:  # malformed length: scapy assumes 2 and carries on
            olen = 2
        value: Any = data[i + 2 : i + olen]
        known = _OPTION_KINDS.get(kind)
        if known is None:
            opts.append((kind, value))
        else:
            name, fmt = known
            if kind == 5:
                fmt = f"!{len(value) // 4}I"
            if fmt and struct.calcsize(fmt) == len(value):
                value = struct.unpack(fmt, value)
                if len(value) == 1:
                    value = value[0]
            opts.append((name, value))
        i += olen
    return tuple(opts)


# ---------------------------------------------------------------------------------------------
# building


def _ip_int(ip: str) -> tuple[bytes, int]:
    try:
        packed = socket.inet_pton(socket.AF_INET, ip)
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {ip!r}") from None
    return packed, int.from_bytes(packed, "big")


def _ip6_int(ip: str) -> tuple[bytes, int]:
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, TypeError, ValueError):
        raise ValueError(f"not an IPv6 address: {ip!r}") from None
    return packed, int.from_bytes(packed, "big")


def _looks_v6(ip: object) -> bool:
    return isinstance(ip, str) and ":" in ip


def ip_version(ip: str) -> int:
    """4 or 6, the family of the address text ``ip``; ValueError for anything else."""
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            socket.inet_pton(family, ip)
        except (OSError, TypeError, ValueError):
            continue
        return version
    raise ValueError(f"not an IPv4 or IPv6 address: {ip!r}")


@functools.lru_cache(maxsize=1024)  # a demultiplexer packs the same few addresses for every connection
def pack_ip(ip: str) -> bytes:
    """The 4 or 16 network-order bytes of an IPv4 or IPv6 address."""
    return socket.inet_pton(socket.AF_INET6 if ip_version(ip) == 6 else socket.AF_INET, ip)


class FrameBuilder:
    """Builds the segments of one connection (or one probe run): fixed addresses, TTL, DF and TOS.

    The family follows the addresses (both IPv4 or both IPv6). ``frame()`` gives Ethernet+IP+TCP when
    both MACs are known, else the same as ``packet()`` (IP+TCP). ``ip_id=None`` takes the next value
    of a per-builder counter starting at 1 (scapy's default id), like a kernel's per-socket counter.

    For IPv6, ``ttl`` is the hop limit and ``tos`` the traffic class (ECN in its low two bits, RFC 3168
    §5 / RFC 8200 §7); ``df`` and ``ip_id`` do not exist there (RFC 8200 §5: routers never fragment)
    and are ignored. ``flow_label`` (20 bits, RFC 6437) is IPv6 only.
    """

    __slots__ = ("_df", "_dst", "_dst_mac", "_ip_const", "_next_id", "_src", "_src_mac",
                 "_tcp_const", "_tos", "_ttl", "_v6", "_vtcfl", "dst_ip", "flow_label", "src_ip", "version")

    def __init__(self, src_ip: str, dst_ip: str, src_mac: bytes | None, dst_mac: bytes | None,
                 ttl: int = 64, df: bool = True, tos: int = 0, flow_label: int = 0) -> None:
        if not 0 <= ttl <= 255 or not 0 <= tos <= 255:
            raise ValueError("ttl and tos must be in 0..255")
        if not 0 <= flow_label <= 0xFFFFF:
            raise ValueError("a flow label has 20 bits: 0..0xfffff")
        for mac in (src_mac, dst_mac):
            if mac is not None and len(mac) != 6:
                raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        self.src_ip, self.dst_ip = src_ip, dst_ip
        self._v6 = _looks_v6(src_ip)
        if _looks_v6(dst_ip) != self._v6:
            raise ValueError(f"{src_ip!r} and {dst_ip!r} are of different address families")
        self.version = 6 if self._v6 else 4
        self.flow_label = flow_label
        packer = _ip6_int if self._v6 else _ip_int
        self._src, src_n = packer(src_ip)
        self._dst, dst_n = packer(dst_ip)
        self._src_mac = src_mac
        self._dst_mac = dst_mac if src_mac is not None else None
        self._ttl, self._tos = ttl, tos
        self._df = 0x4000 if df else 0  # RFC 791 flags: DF is bit 1 of the 3-bit field
        # RFC 8200 §3: version (4 bits), traffic class (8), flow label (20) in the first word.
        self._vtcfl = 6 << 28 | tos << 20 | flow_label
        # Everything constant in the IP header checksum: version/IHL/TOS, flags, TTL/protocol, addresses.
        self._ip_const = (0x4500 | tos) + self._df + ((ttl << 8) | IPPROTO_TCP) + src_n + dst_n
        # Pseudo-header constant part (RFC 9293 §3.1, RFC 8200 §8.1): addresses and protocol; the length varies.
        self._tcp_const = src_n + dst_n + IPPROTO_TCP
        self._next_id = 1

    @property
    def has_link_header(self) -> bool:
        return self._src_mac is not None and self._dst_mac is not None

    def _tcp(self, seg: Segment, bad_checksum: bool) -> tuple[bytes, bytes, int, int, int, int]:
        """(options, payload, TCP length, data offset byte, flags, checksum) of ``seg``."""
        opts = encode_options(seg.options) if seg.options else b""
        payload = seg.payload
        tcp_len = 20 + len(opts) + len(payload)
        off = (5 + (len(opts) >> 2)) << 4
        flags = int(seg.flags)
        total = (self._tcp_const + tcp_len + seg.sport + seg.dport + seg.seq + seg.ack
                 + (off << 8 | flags) + seg.window + seg.urgent)
        if opts:
            total += int.from_bytes(opts, "big")
        if payload:
            total += int.from_bytes(payload, "big") << 8 if len(payload) & 1 else int.from_bytes(payload, "big")
        tcp_sum = -total % _M
        if bad_checksum:
            tcp_sum += 1  # never 0xffff -> 0x0000, which would be the same value in one's complement
        return opts, payload, tcp_len, off, flags, tcp_sum

    def _fields(self, seg: Segment, ip_id: int | None, bad_checksum: bool) -> tuple[Any, ...]:
        opts, payload, tcp_len, off, flags, tcp_sum = self._tcp(seg, bad_checksum)
        tot_len = 20 + tcp_len
        if ip_id is None:
            ip_id = self._next_id
            self._next_id = (ip_id + 1) & 0xFFFF
        ip_sum = -(self._ip_const + tot_len + ip_id) % _M
        return (0x45, self._tos, tot_len, ip_id, self._df, self._ttl, IPPROTO_TCP, ip_sum,
                self._src, self._dst, seg.sport, seg.dport, seg.seq, seg.ack, off, flags, seg.window,
                tcp_sum, seg.urgent), opts, payload

    def _fields6(self, seg: Segment, bad_checksum: bool) -> tuple[Any, ...]:
        opts, payload, tcp_len, off, flags, tcp_sum = self._tcp(seg, bad_checksum)
        return (self._vtcfl, tcp_len, IPPROTO_TCP, self._ttl, self._src, self._dst, seg.sport, seg.dport,
                seg.seq, seg.ack, off, flags, seg.window, tcp_sum, seg.urgent), opts, payload

    def _frame4(self, seg: Segment) -> bytes:
        """:meth:`frame` for what a connection sends (IPv4 over Ethernet, the counter's IP ID, a good
        checksum) in one function: the same arithmetic as ``_tcp`` and ``_fields``, without their tuples."""
        options, payload = seg.options, seg.payload
        sport, dport, seq, ack, window, urgent = seg.sport, seg.dport, seg.seq, seg.ack, seg.window, seg.urgent
        try:
            opts = encode_options(options) if options else b""
            n_opts = len(opts)
            tcp_len = 20 + n_opts + len(payload)
            off = (5 + (n_opts >> 2)) << 4
            flags = int(seg.flags)
            total = (self._tcp_const + tcp_len + sport + dport + seq + ack + (off << 8 | flags) + window + urgent)
            if opts:
                total += int.from_bytes(opts, "big")
            if payload:
                total += int.from_bytes(payload, "big") << 8 if len(payload) & 1 else int.from_bytes(payload, "big")
            tot_len = 20 + tcp_len
            ip_id = self._next_id
            self._next_id = (ip_id + 1) & 0xFFFF
            head = _ETH_IP_TCP.pack(self._dst_mac, self._src_mac, ETH_P_IP, 0x45, self._tos, tot_len, ip_id,
                                    self._df, self._ttl, IPPROTO_TCP, -(self._ip_const + tot_len + ip_id) % _M,
                                    self._src, self._dst, sport, dport, seq, ack, off, flags, window,
                                    -total % _M, urgent)
        except struct.error as exc:
            raise ValueError(f"segment field out of range: {exc}") from None
        if payload:
            return head + opts + payload if opts else head + payload
        return head + opts if opts else head

    def packet(self, seg: Segment, ip_id: int | None = None, bad_checksum: bool = False) -> bytes:
        """IP + TCP bytes of ``seg``."""
        try:
            if self._v6:
                fields, opts, payload = self._fields6(seg, bad_checksum)
                head = _IP6_TCP.pack(*fields)
            else:
                fields, opts, payload = self._fields(seg, ip_id, bad_checksum)
                head = _IP_TCP.pack(*fields)
        except struct.error as exc:
            raise ValueError(f"segment field out of range: {exc}") from None
        return head + opts + payload if opts or payload else head

    def frame(self, seg: Segment, ip_id: int | None = None, bad_checksum: bool = False) -> bytes:
        """Ethernet + IP + TCP bytes of ``seg`` (IP + TCP when the MACs are unknown)."""
        if ip_id is None and not self._v6 and not bad_checksum and self._dst_mac is not None:
            return self._frame4(seg)
        if self._dst_mac is None:
            return self.packet(seg, ip_id, bad_checksum)
        try:
            if self._v6:
                fields, opts, payload = self._fields6(seg, bad_checksum)
                head = _ETH_IP6_TCP.pack(self._dst_mac, self._src_mac, ETH_P_IPV6, *fields)
            else:
                fields, opts, payload = self._fields(seg, ip_id, bad_checksum)
                head = _ETH_IP_TCP.pack(self._dst_mac, self._src_mac, ETH_P_IP, *fields)
        except struct.error as exc:
            raise ValueError(f"segment field out of range: {exc}") from None
        return head + opts + payload if opts or payload else head


# ---------------------------------------------------------------------------------------------
# parsing


@dataclass(frozen=True, slots=True)
class Decoded:
    """One received TCP segment and the IP fields a script checks (``[tos]``, ``[ttl]``, ``[flowlabel]``).

    For IPv6 ``ttl`` is the hop limit, ``tos`` the traffic class and ``ip_id`` 0 (there is none).
    """

    src_ip: str
    dst_ip: str
    segment: Segment
    ttl: int
    ip_id: int
    checksum_ok: bool | None  # None: not checked (e.g. the caller knows the NIC verified it)
    tos: int = 0
    flow_label: int = 0
    version: int = 4

    @property
    def hop_limit(self) -> int:
        return self.ttl

    @property
    def traffic_class(self) -> int:
        return self.tos

    @property
    def ecn(self) -> int:
        """The ECN codepoint (RFC 3168 §5): 0 not-ECT, 1 ECT(1), 2 ECT(0), 3 CE."""
        return self.tos & 3

    @property
    def dscp(self) -> int:
        return self.tos >> 2


def _tcp_at(buf: bytes | bytearray | memoryview, t: int, end: int) -> Segment | None:
    """The TCP segment in ``buf[t:end]``, or None when its data offset does not fit."""
    sport, dport, seq, ack, off, flags, window, _tcpsum, urgent = _TCP_HDR.unpack_from(buf, t)
    doff = (off >> 4) << 2
    if doff < 20 or t + doff > end:
        return None
    if doff == 32 and buf[t + 20:t + 24] == _NOP_NOP_TS_KINDS:  # the common case: NOP NOP TSopt
        options: tuple[Option, ...] = (_NOP, _NOP, ("Timestamp", _II.unpack_from(buf, t + 24)))
    else:
        options = parse_options(bytes(buf[t + 20 : t + doff])) if doff > 20 else ()
    payload = bytes(buf[t + doff : end])
    return Segment(sport, dport, seq, ack, _FLAGS[flags], window, options, payload, urgent)


def _ipv4_parts(buf: bytes | bytearray | memoryview, offset: int, verify: bool, trusted: bool
                ) -> tuple[Segment, bool | None, tuple[Any, ...]] | None:
    """(segment, checksum_ok, IP header fields) of an IPv4+TCP packet at ``offset``, or None: what
    :func:`decode_ipv4` and :func:`segment_of_frame` share. May raise on garbage (callers catch)."""
    n = len(buf)
    if n - offset < 40 or buf[offset] >> 4 != 4:
        return None
    header = _IP_HDR.unpack_from(buf, offset)
    ver_ihl, _tos, tot_len, _ip_id, frag, _ttl, proto, _ipsum, src, dst = header
    ihl = (ver_ihl & 0x0F) << 2
    if proto != IPPROTO_TCP or frag & 0x3FFF or ihl < 20 or tot_len < ihl + 20 or offset + tot_len > n:
        return None
    t = offset + ihl
    end = offset + tot_len
    seg = _tcp_at(buf, t, end)
    if seg is None:
        return None
    checksum_ok = True if trusted else None
    if verify:
        tcp_total = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + IPPROTO_TCP + (end - t)
        checksum_ok = (int.from_bytes(buf[offset:t], "big") % _M == 0
                       and (tcp_total + _words(buf[t:end])) % _M == 0)
    return seg, checksum_ok, header


def decode_ipv4(buf: bytes | bytearray | memoryview, offset: int = 0, verify: bool = True, *,
                trusted: bool = False) -> Decoded | None:
    """Parse an IPv4+TCP packet at ``offset``; None for anything else or anything malformed.

    Fragments are refused (None): a TCP segment split by IP is not ours to reassemble here. Trailing
    bytes beyond the IP total length (Ethernet padding) are ignored. Never raises on garbage.
    ``verify`` checks the IP and TCP checksums; ``checksum_ok`` is None when it is False, or True when
    ``trusted`` (the kernel said the checksum is partial or verified: see wire/link.py's ``decode``).
    """
    try:
        parts = _ipv4_parts(buf, offset, verify, trusted)
        if parts is None:
            return None
        seg, checksum_ok, (_vi, tos, _len, ip_id, _frag, ttl, _proto, _sum, src, dst) = parts
        return Decoded(socket.inet_ntoa(src), socket.inet_ntoa(dst), seg, ttl, ip_id, checksum_ok,
                       tos, 0, 4)
    except (struct.error, IndexError, ValueError, TypeError, OSError):
        return None


def ipv6_upper_layer(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int, int] | None:
    """(next header, its offset, end of the packet) past RFC 8200 §4 extension headers, or None.

    None for anything that is not a whole IPv6 packet: short, wrong version, a jumbogram (payload
    length 0), or a fragment header (a piece of a packet is not ours to reassemble).
    """
    n = len(buf)
    if n - offset < IPV6_HEADER_LEN or buf[offset] >> 4 != 6:
        return None
    plen = buf[offset + 4] << 8 | buf[offset + 5]
    nxt = buf[offset + 6]
    end = offset + IPV6_HEADER_LEN + plen
    if plen == 0 or end > n:
        return None
    pos = offset + IPV6_HEADER_LEN
    for _ in range(8):  # bounded: a chain of more extension headers than this is not a kernel's
        if nxt not in IPV6_EXTENSIONS:
            return nxt, pos, end
        if pos + 2 > end:
            return None
        nxt, pos = buf[pos], pos + ((buf[pos + 1] + 1) << 3)
    return None


def decode_ipv6(buf: bytes | bytearray | memoryview, offset: int = 0, verify: bool = True, *,
                trusted: bool = False) -> Decoded | None:
    """Parse an IPv6+TCP packet at ``offset`` (hop-by-hop, routing and destination options skipped);
    None for anything else, fragments included. Trailing bytes beyond the payload length are ignored."""
    try:
        upper = ipv6_upper_layer(buf, offset)
        if upper is None or upper[0] != IPPROTO_TCP:
            return None
        _, t, end = upper
        if end - t < 20:
            return None
        first, _plen, _nh, hlim, src, dst = _IP6_HDR.unpack_from(buf, offset)
        seg = _tcp_at(buf, t, end)
        if seg is None:
            return None
        checksum_ok = True if trusted else None
        if verify:  # RFC 8200 §8.1: IPv6 has no header checksum; the pseudo-header carries the addresses
            tcp_total = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + IPPROTO_TCP + (end - t)
            checksum_ok = (tcp_total + _words(buf[t:end])) % _M == 0
        return Decoded(socket.inet_ntop(socket.AF_INET6, src), socket.inet_ntop(socket.AF_INET6, dst), seg,
                       hlim, 0, checksum_ok, (first >> 20) & 0xFF, first & 0xFFFFF, 6)
    except (struct.error, IndexError, ValueError, TypeError, OSError):
        return None


def decode_ip(buf: bytes | bytearray | memoryview, offset: int = 0, verify: bool = True) -> Decoded | None:
    """Parse an IPv4 or IPv6 TCP packet at ``offset``, by its version nibble (links without Ethernet)."""
    try:
        version = buf[offset] >> 4
    except IndexError:
        return None
    if version == 4:
        return decode_ipv4(buf, offset, verify)
    if version == 6:
        return decode_ipv6(buf, offset, verify)
    return None


def ip_offset(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """(EtherType, offset of the IP header) of an Ethernet frame carrying IPv4 or IPv6 (one 802.1Q
    tag allowed); None for anything else."""
    try:
        ethertype = _ETH_TYPE.unpack_from(buf, offset + 12)[0]
        if ethertype == ETH_P_8021Q:
            ethertype = _ETH_TYPE.unpack_from(buf, offset + 16)[0]
            offset += 4
    except struct.error:
        return None
    if ethertype in (ETH_P_IP, ETH_P_IPV6):
        return ethertype, offset + 14
    return None


def segment_of_frame(buf: bytes | bytearray | memoryview, verify: bool = True, *, trusted: bool = False
                     ) -> tuple[Segment, bool | None] | None:
    """``(segment, checksum_ok)`` of an Ethernet frame, as :func:`decode_frame` would give them, for a
    caller that knows whose frame it is already (a demultiplexer matched its addresses and ports): an
    untagged IPv4 frame without the :class:`Decoded` record or address texts, anything else through
    :func:`decode_frame`."""
    try:
        if buf[12] == 0x08 and buf[13] == 0x00:  # ETH_P_IP, untagged: the common case
            parts = _ipv4_parts(buf, 14, verify, trusted)
            return None if parts is None else (parts[0], parts[1])
    except (struct.error, IndexError, ValueError, TypeError, OSError):
        return None
    decoded = decode_frame(buf, 0, verify, trusted=trusted)
    return None if decoded is None else (decoded.segment, decoded.checksum_ok)


def decode_frame(buf: bytes | bytearray | memoryview, offset: int = 0, verify: bool = True, *,
                 trusted: bool = False) -> Decoded | None:
    """Parse an Ethernet frame carrying IPv4+TCP or IPv6+TCP (one 802.1Q tag allowed); None for anything else.
    ``verify`` and ``trusted`` as for :func:`decode_ipv4`."""
    try:
        ethertype = _ETH_TYPE.unpack_from(buf, offset + 12)[0]
    except struct.error:
        return None
    if ethertype == ETH_P_IP:  # the common case first, without the general look-up
        return decode_ipv4(buf, offset + 14, verify, trusted=trusted)
    found = ip_offset(buf, offset)
    if found is None:
        return None
    ethertype, ip = found
    if ethertype == ETH_P_IP:
        return decode_ipv4(buf, ip, verify, trusted=trusted)
    return decode_ipv6(buf, ip, verify, trusted=trusted)
