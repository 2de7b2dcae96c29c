"""Streaming pcap writer and pcap/pcapng reader, built on ``struct`` (no scapy on the hot path).

Formats: classic pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html, both byte orders,
microsecond and nanosecond magic) and pcapng (draft-ietf-opsawg-pcapng: SHB, IDB, EPB, SPB and the
obsolete PB, several interfaces with their own link type, ``if_tsresol`` and ``if_tsoffset``, both
byte orders, unknown blocks skipped). The reader holds one chunk of the file at a time, never the
whole capture, and every malformed input ends in :class:`CaptureError` with a one-line message.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from rawtcp.capture.errors import CaptureError

# Link-layer header types (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version from the first nibble
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = frozenset({LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL,
                                 LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2})

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D

_CHUNK = 1 << 20
# libpcap refuses records above its maximum snapshot length; anything far beyond is corruption.
_MAX_RECORD = 1 << 26

_PCAP_HEADER_LE = struct.Struct("<IHHiIII")
_PCAP_RECORD_LE = struct.Struct("<IIII")


class RawPacket(NamedTuple):
    """One captured frame: when (seconds since the epoch), its link type, and its bytes."""

    ts: float
    linktype: int
    data: bytes


class PcapWriter:
    """Write frames to a classic little-endian microsecond pcap file, streaming (one record per write).

    Microsecond pcap is chosen over nanosecond pcap or pcapng because every tool reads it.
    ``fix_checksums=True`` recomputes IPv4/TCP checksums first (frames captured before veth's
    checksum offload filled them in would otherwise show as corrupt in Wireshark).
    """

    def __init__(self, path: str | os.PathLike[str], linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 65535, fix_checksums: bool = False) -> None:
        if linktype not in SUPPORTED_LINKTYPES:
            raise CaptureError(f"unsupported link type {linktype}")
        if not 0 < snaplen <= 0x7FFFFFFF:
            raise ValueError(f"snaplen out of range: {snaplen}")
        self.path = os.fspath(path)
        self.linktype = linktype
        self.snaplen = snaplen
        self.count = 0
        self._fix = None
        if fix_checksums:
            from rawtcp.capture.checksum import with_valid_checksums  # imports decode, which imports us

            self._fix = with_valid_checksums
        self._file: BinaryIO | None = open(self.path, "wb", buffering=1 << 16)  # noqa: SIM115
        self._file.write(_PCAP_HEADER_LE.pack(PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype))

    def write(self, frame: bytes, ts: float) -> None:
        """Append ``frame`` captured at ``ts`` (seconds since the epoch); longer frames are cut at snaplen."""
        if self._file is None:
            raise ValueError("write to a closed PcapWriter")
        if self._fix is not None:
            frame = self._fix(self.linktype, frame)
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        if usec >= 1_000_000:  # rounding carried into the next second
            sec += 1
            usec -= 1_000_000
        caplen = min(len(frame), self.snaplen)
        self._file.write(_PCAP_RECORD_LE.pack(sec, usec, caplen, len(frame)))
        self._file.write(frame if caplen == len(frame) else frame[:caplen])
        self.count += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_packets(path: str | os.PathLike[str]) -> Iterator[RawPacket]:
    """Every frame of a pcap or pcapng file, in file order, read in chunks (never the whole file)."""
    for ts, linktype, buf, off, caplen in iter_frames(path):
        yield RawPacket(ts, linktype, buf[off:off + caplen])


def iter_frames(path: str | os.PathLike[str]) -> Iterator[tuple[float, int, bytes, int, int]]:
    """The fast path under :func:`iter_packets`: ``(ts, linktype, buffer, offset, caplen)`` per frame.

    ``buffer`` is the reader's current chunk; the frame is ``buffer[offset:offset + caplen]``, valid
    only until the next item is taken (the chunk is then replaced), so nothing is copied per frame.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the generator's finally
    except OSError as exc:
        raise CaptureError(f"cannot open {os.fspath(path)}: {exc.strerror or exc}") from None
    try:
        head = f.read(_CHUNK)
        if not head:
            raise CaptureError("empty file")
        if len(head) >= 4:
            magic = head[:4]
            if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
                yield from _iter_pcap(f, head, "<")
                return
            if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
                yield from _iter_pcap(f, head, ">")
                return
            if magic == b"\x0a\x0d\x0d\x0a":
                yield from _iter_pcapng(f, head)
                return
        raise CaptureError("not a pcap or pcapng file")
    except OSError as exc:
        raise CaptureError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    finally:
        f.close()


def _iter_pcap(f: BinaryIO, buf: bytes, endian: str) -> Iterator[tuple[float, int, bytes, int, int]]:
    if len(buf) < 24:
        raise CaptureError("truncated capture at byte 0")
    magic, _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(endian + "IHHiIII", buf)
    scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
    # The upper bits of the link-type field may carry FCS information (pcap-savefile(5)).
    linktype = network & 0x03FFFFFF
    if linktype not in SUPPORTED_LINKTYPES:
        raise CaptureError(f"unsupported link type {linktype}")
    record = struct.Struct(endian + "IIII").unpack_from
    base = 0  # file offset of buf[0]
    pos = 24
    while True:
        n = len(buf)
        while pos + 16 <= n:
            sec, frac, caplen, _origlen = record(buf, pos)
            end = pos + 16 + caplen
            if end > n:
                if caplen > _MAX_RECORD:
                    raise CaptureError(f"corrupt record at byte {base + pos} (length {caplen})")
                break
            yield sec + frac * scale, linktype, buf, pos + 16, caplen
            pos = end
        more = f.read(_CHUNK)
        if not more:
            if pos < n:
                raise CaptureError(f"truncated capture at byte {base + pos}")
            return
        buf = buf[pos:] + more
        base += pos
        pos = 0


class _Interface:
    __slots__ = ("linktype", "offset", "scale", "snaplen")

    def __init__(self, linktype: int, snaplen: int, scale: float, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.scale = scale
        self.offset = offset


def _tsresol(value: int) -> float:
    """if_tsresol: high bit clear = negative power of 10, set = negative power of 2."""
    if value & 0x80:
        return 2.0 ** -(value & 0x7F)
    return 10.0 ** -value


def _interface(body: bytes, start: int, end: int, e: str) -> _Interface:
    """Parse an Interface Description Block body (pcapng §4.2) from buf[start:end]."""
    if end - start < 8:
        raise CaptureError(f"corrupt interface block at byte {start - 8}")
    linktype, _reserved, snaplen = struct.unpack_from(e + "HHI", body, start)
    scale, offset = 1e-6, 0
    pos = start + 8
    while pos + 4 <= end:
        code, length = struct.unpack_from(e + "HH", body, pos)
        pos += 4
        if code == 0:  # opt_endofopt
            break
        if pos + length > end:
            break  # a broken option list: keep what was read, the packets still parse
        if code == 9 and length >= 1:  # if_tsresol
            scale = _tsresol(body[pos])
        elif code == 14 and length >= 8:  # if_tsoffset, seconds
            (offset,) = struct.unpack_from(e + "q", body, pos)
        pos += (length + 3) & ~3
    return _Interface(linktype, snaplen, scale, offset)


def _iter_pcapng(f: BinaryIO, buf: bytes) -> Iterator[tuple[float, int, bytes, int, int]]:
    base = 0
    pos = 0
    e = "<"
    interfaces: list[_Interface] = []
    last_ts = 0.0
    while True:
        n = len(buf)
        while pos + 12 <= n:
            btype_raw = buf[pos:pos + 4]
            if btype_raw == b"\x0a\x0d\x0d\x0a":  # Section Header Block: fixes the byte order (§4.1)
                bom = buf[pos + 8:pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    e = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    e = ">"
                else:
                    raise CaptureError(f"corrupt pcapng section header at byte {base + pos}")
                interfaces = []
            btype, total = struct.unpack_from(e + "II", buf, pos)
            if total < 12 or total & 3:
                raise CaptureError(f"corrupt pcapng block at byte {base + pos} (length {total})")
            end = pos + total
            if end > n:
                if total > _MAX_RECORD:
                    raise CaptureError(f"corrupt pcapng block at byte {base + pos} (length {total})")
                break
            body = pos + 8
            body_end = end - 4
            if btype == 6 or btype == 2:  # Enhanced Packet Block (§4.3) / obsolete Packet Block
                if body_end - body < 20:
                    raise CaptureError(f"corrupt pcapng packet block at byte {base + pos}")
                if btype == 6:
                    ifid, hi, lo, caplen, _orig = struct.unpack_from(e + "IIIII", buf, body)
                else:
                    ifid, _drops, hi, lo, caplen, _orig = struct.unpack_from(e + "HHIIII", buf, body)
                if ifid >= len(interfaces):
                    raise CaptureError(f"packet for unknown interface {ifid} at byte {base + pos}")
                if body + 20 + caplen > body_end:
                    raise CaptureError(f"corrupt pcapng packet block at byte {base + pos}")
                iface = interfaces[ifid]
                if iface.linktype not in SUPPORTED_LINKTYPES:
                    raise CaptureError(f"unsupported link type {iface.linktype}")
                last_ts = ((hi << 32) | lo) * iface.scale + iface.offset
                yield last_ts, iface.linktype, buf, body + 20, caplen
            elif btype == 3:  # Simple Packet Block (§4.4): interface 0, no timestamp
                if not interfaces or body_end - body < 4:
                    raise CaptureError(f"corrupt pcapng simple packet block at byte {base + pos}")
                (orig,) = struct.unpack_from(e + "I", buf, body)
                iface = interfaces[0]
                caplen = min(orig, body_end - body - 4)
                if iface.snaplen:
                    caplen = min(caplen, iface.snaplen)
                if iface.linktype not in SUPPORTED_LINKTYPES:
                    raise CaptureError(f"unsupported link type {iface.linktype}")
                yield last_ts, iface.linktype, buf, body + 4, caplen
            elif btype == 1:  # Interface Description Block
                interfaces.append(_interface(buf, body, body_end, e))
            pos = end  # any other block (name resolution, statistics, custom…) is skipped
        more = f.read(_CHUNK)
        if not more:
            if pos < n:
                raise CaptureError(f"truncated capture at byte {base + pos}")
            return
        buf = buf[pos:] + more
        base += pos
        pos = 0
