"""Streaming pcap writer and pcap/pcapng reader, built on ``struct`` (no scapy on the hot path).

Formats: classic pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html, both byte orders,
microsecond and nanosecond magic) and pcapng (draft-ietf-opsawg-pcapng: SHB, IDB, EPB, SPB and the
obsolete PB, several interfaces with their own link type, ``if_tsresol`` and ``if_tsoffset``, both
byte orders, unknown blocks skipped, per-packet ``opt_comment`` read). Like tshark, ``-`` is standard
input and a gzip-compressed capture is read as it is. The reader holds one chunk of the file at a time,
never the whole capture, and every malformed input ends in :class:`CaptureError` with a one-line
message. A file cut in the middle of a record is an error unless the caller passes a
:class:`ReadReport`: then, as tshark does, the packets before the cut are delivered and the report says
where the file ends.

The writer chooses the format by the file name: ``*.pcapng`` is pcapng with a comment per packet when
one is given (Wireshark shows them; ``tshark -T fields -e frame.comment``), anything else is classic
pcap, whose comments go to the ``.states.json`` side-car.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
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
    """Write frames to a capture file, streaming (one record per write); the name picks the format.

    ``*.pcapng`` (any case) is pcapng: one Enhanced Packet Block per frame, microsecond timestamps,
    and the ``comment`` given to :meth:`write` as its ``opt_comment``, which Wireshark shows on the
    packet. Any other name is classic little-endian microsecond pcap, which every tool reads; its
    comments are kept and written to the ``.states.json`` side-car on close. ``fix_checksums=True``
    recomputes IPv4/TCP checksums first (frames captured before veth's checksum offload filled them
    in would otherwise show as corrupt in Wireshark).
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
        self.pcapng = is_pcapng_name(self.path)
        self._notes: list[dict[str, object]] = []  # classic pcap: comments for the side-car
        self._fix = None
        if fix_checksums:
            from rawtcp.capture.checksum import with_valid_checksums  # imports decode, which imports us

            self._fix = with_valid_checksums
        self._file: BinaryIO | None = open(self.path, "wb", buffering=1 << 16)  # noqa: SIM115
        if self.pcapng:
            self._file.write(pcapng_header(linktype, snaplen))
        else:
            self._file.write(_PCAP_HEADER_LE.pack(PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype))

    def write(self, frame: bytes, ts: float, comment: str | None = None) -> None:
        """Append ``frame`` captured at ``ts`` (seconds since the epoch); longer frames are cut at snaplen.

        ``comment`` (rawtcp's state, the kernel's, the lab's note: see :func:`packet_comment`) goes on
        the packet in pcapng, and to the side-car's notes in classic pcap.
        """
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
        data = frame if caplen == len(frame) else frame[:caplen]
        self.count += 1
        if self.pcapng:
            self._file.write(epb(sec * 1_000_000 + usec, data, len(frame), [comment] if comment else []))
            return
        self._file.write(_PCAP_RECORD_LE.pack(sec, usec, caplen, len(frame)))
        self._file.write(data)
        if comment:
            self._notes.append({"frame": self.count, "time": sec + usec / 1e6, "text": comment})

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._notes:
                from rawtcp.capture.sidecar import write_notes

                write_notes(self.path, self._notes)

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_pcapng_name(path: str | os.PathLike[str]) -> bool:
    """Whether a capture's name asks for pcapng (``run.pcapng``, also ``run.pcapng.gz`` when read)."""
    name = os.fspath(path).lower()
    return name.endswith(".pcapng") or name.endswith(".pcapng.gz")


def packet_comment(rawtcp_state: object | None = None, kernel_state: object | None = None,
                   note: str | None = None, *, stack: str = "kernel") -> str:
    """The text a lab puts on a packet: ``rawtcp ESTABLISHED | kernel SYN-RECEIVED | note``.

    Callers pass it to :meth:`PcapWriter.write` with what they know when the packet is written;
    states known only later are added by rawtcp.capture.annotate. ``stack`` names the peer stack
    when it is not Linux's (``pytcp SYN-RECEIVED``). Unknown states are left out rather than guessed.
    """
    parts = []
    if rawtcp_state is not None:
        parts.append(f"rawtcp {rawtcp_state}")
    if kernel_state is not None:
        parts.append(f"{stack} {kernel_state}")
    if note:
        parts.append(" ".join(note.split()))  # one line: Wireshark shows comments in a list
    return " | ".join(parts)


# "WHO STATE" as packet_comment writes it; a state may carry a parenthesised remark.
_STATE_PART = re.compile(r"^([a-z][a-z0-9_.-]*) ([A-Z][A-Z0-9_-]*(?: \([^)]*\))?)$")


def split_comment(text: str) -> tuple[dict[str, str], str]:
    """A :func:`packet_comment` read back: ``({who: state}, note)``; the note is "" when there is none."""
    states: dict[str, str] = {}
    notes = []
    for part in text.split(" | "):
        m = _STATE_PART.match(part.strip())
        if m is not None and m.group(1) not in states:
            states[m.group(1)] = m.group(2)
        else:
            notes.append(part)
    return states, " | ".join(notes)


# --- pcapng blocks (draft-ietf-opsawg-pcapng), little-endian --------------------------------------

def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) & 3)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad4(value) for code, value in options)
    return out + b"\0\0\0\0"  # opt_endofopt


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def pcapng_header(linktype: int, snaplen: int) -> bytes:
    """A Section Header Block (unknown section length) and one interface with microsecond timestamps."""
    shb = struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1) + _options([(4, b"rawtcp")])  # shb_userappl
    idb = struct.pack("<HHI", linktype, 0, snaplen)
    return _block(PCAPNG_SHB, shb) + _block(1, idb)


def epb(ts_units: int, data: bytes, origlen: int, comments: list[str], ifid: int = 0) -> bytes:
    """An Enhanced Packet Block; each comment is one ``opt_comment`` (code 1, UTF-8)."""
    body = struct.pack("<IIIII", ifid, (ts_units >> 32) & 0xFFFFFFFF, ts_units & 0xFFFFFFFF, len(data), origlen)
    body += _pad4(data) + _options([(1, c.encode("utf-8")) for c in comments])
    return _block(6, body)


# --- reading --------------------------------------------------------------------------------------

@dataclass
class ReadReport:
    """What a read found besides packets: truncated packets, where a cut file ends, comments.

    Passing one to :func:`iter_frames` also makes a file cut in the middle of a record end the
    iteration (the packets before the cut are delivered) instead of raising.
    """

    path: str
    packets: int = 0
    truncated: int = 0  # packets captured shorter than they were on the wire (snapshot length)
    shortest: int = 0  # the smallest captured length among them
    cut_at: int | None = None  # byte offset (after decompression) of the record the file ends in
    comments: tuple[str, ...] = ()  # the current packet's opt_comments, valid until the next one
    wire_len: int = 0  # the current packet's length on the wire
    want_comments: bool = True

    def warnings(self) -> list[str]:
        """One line per problem, tshark's wording where it has one; [] for a sound file."""
        out = []
        if self.truncated:
            many = "s were" if self.truncated != 1 else " was"
            out.append(f"{self.path}: {self.truncated} packet{many} cut short by the snapshot length "
                       f"(down to {self.shortest} bytes); lengths are taken from the IP header")
        if self.cut_at is not None:
            out.append(f"{self.path}: the file appears to have been cut short in the middle of a packet "
                       f"(at byte {self.cut_at}); {self.packets} complete packets read")
        return out

    @property
    def damaged(self) -> bool:
        return self.cut_at is not None


def iter_packets(path: str | os.PathLike[str], report: ReadReport | None = None) -> Iterator[RawPacket]:
    """Every frame of a pcap or pcapng file, in file order, read in chunks (never the whole file)."""
    for ts, linktype, buf, off, caplen in iter_frames(path, report):
        yield RawPacket(ts, linktype, buf[off:off + caplen])


class _Prefixed:
    """A stream whose first bytes were already read (to sniff gzip) and are served again first."""

    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if n < 0:
                return head + self._f.read()
            return head if len(head) >= n else head + self._f.read(n - len(head))
        return self._f.read(n)


class _Reader:
    """read(n) over a plain or gzip-compressed stream; a cut gzip stream just ends (like a cut file)."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        head = b""
        while len(head) < 2:
            more = raw.read(2 - len(head))
            if not more:
                break
            head += more
        self.name = name
        self.gzipped = head == b"\x1f\x8b"
        stream = _Prefixed(head, raw)
        self._f = gzip.GzipFile(fileobj=stream, mode="rb") if self.gzipped else stream  # type: ignore[arg-type]

    def read(self, n: int) -> bytes:
        try:
            return self._f.read(n)
        except EOFError:  # the compressed stream was cut: what came out is all there is
            return b""
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise CaptureError(f"corrupt gzip data in {self.name}: {exc}") from None


def _open(path: str | os.PathLike[str]) -> tuple[BinaryIO | None, _Reader]:
    name = os.fspath(path)
    if name == "-":
        return None, _Reader(sys.stdin.buffer, "standard input")
    try:
        f = open(name, "rb")  # noqa: SIM115 - closed by the generator's finally
    except OSError as exc:
        raise CaptureError(f"cannot open {name}: {exc.strerror or exc}") from None
    try:
        return f, _Reader(f, name)
    except OSError as exc:
        f.close()
        raise CaptureError(f"cannot read {name}: {exc.strerror or exc}") from None


def iter_frames(path: str | os.PathLike[str],
                report: ReadReport | None = None) -> Iterator[tuple[float, int, bytes, int, int]]:
    """The fast path under :func:`iter_packets`: ``(ts, linktype, buffer, offset, caplen)`` per frame.

    ``buffer`` is the reader's current chunk; the frame is ``buffer[offset:offset + caplen]``, valid
    only until the next item is taken (the chunk is then replaced), so nothing is copied per frame.
    ``path`` may be ``-`` (standard input) and the data gzip-compressed. With a ``report``, the
    current frame's comments are in ``report.comments``, truncated frames are counted, and a file
    cut in the middle of a record ends the iteration with ``report.cut_at`` set.
    """
    f, reader = _open(path)
    try:
        head = reader.read(_CHUNK)
        if not head:
            raise CaptureError("empty file")
        if len(head) >= 4:
            magic = head[:4]
            if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
                yield from _iter_pcap(reader, head, "<", report)
                return
            if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
                yield from _iter_pcap(reader, head, ">", report)
                return
            if magic == b"\x0a\x0d\x0d\x0a":
                yield from _iter_pcapng(reader, head, report)
                return
        raise CaptureError("not a pcap or pcapng file")
    except OSError as exc:
        raise CaptureError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    finally:
        if f is not None:
            f.close()


def _cut(report: ReadReport | None, at: int) -> None:
    """The data ended inside a record: an error, or (with a report) the end of what can be read."""
    if report is None or at == 0:
        raise CaptureError(f"truncated capture at byte {at}")
    report.cut_at = at


def _iter_pcap(f: _Reader, buf: bytes, endian: str,
               report: ReadReport | None) -> Iterator[tuple[float, int, bytes, int, int]]:
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
            sec, frac, caplen, origlen = record(buf, pos)
            end = pos + 16 + caplen
            if end > n:
                if caplen > _MAX_RECORD:
                    raise CaptureError(f"corrupt record at byte {base + pos} (length {caplen})")
                break
            if report is not None:
                report.packets += 1
                report.wire_len = origlen
                if origlen > caplen:
                    _short(report, caplen)
            yield sec + frac * scale, linktype, buf, pos + 16, caplen
            pos = end
        more = f.read(_CHUNK)
        if not more:
            if pos < n:
                _cut(report, base + pos)
            return
        buf = buf[pos:] + more
        base += pos
        pos = 0


def _short(report: ReadReport, caplen: int) -> None:
    report.shortest = caplen if not report.truncated else min(report.shortest, caplen)
    report.truncated += 1


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


def _comments(buf: bytes, pos: int, end: int, e: str) -> tuple[str, ...]:
    """The opt_comment values (code 1) of an option list in buf[pos:end]; a broken list ends it."""
    out = []
    while pos + 4 <= end:
        code, length = struct.unpack_from(e + "HH", buf, pos)
        pos += 4
        if code == 0 or pos + length > end:
            break
        if code == 1:
            out.append(bytes(buf[pos:pos + length]).decode("utf-8", "replace"))
        pos += (length + 3) & ~3
    return tuple(out)


def _iter_pcapng(f: _Reader, buf: bytes,
                 report: ReadReport | None) -> Iterator[tuple[float, int, bytes, int, int]]:
    base = 0
    pos = 0
    e = "<"
    interfaces: list[_Interface] = []
    last_ts = 0.0
    comments = report is not None and report.want_comments
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
                    ifid, hi, lo, caplen, orig = struct.unpack_from(e + "IIIII", buf, body)
                else:
                    ifid, _drops, hi, lo, caplen, orig = struct.unpack_from(e + "HHIIII", buf, body)
                if ifid >= len(interfaces):
                    raise CaptureError(f"packet for unknown interface {ifid} at byte {base + pos}")
                if body + 20 + caplen > body_end:
                    raise CaptureError(f"corrupt pcapng packet block at byte {base + pos}")
                iface = interfaces[ifid]
                if iface.linktype not in SUPPORTED_LINKTYPES:
                    raise CaptureError(f"unsupported link type {iface.linktype}")
                last_ts = ((hi << 32) | lo) * iface.scale + iface.offset
                if report is not None:
                    report.packets += 1
                    report.wire_len = orig
                    if orig > caplen:
                        _short(report, caplen)
                    if comments:
                        report.comments = _comments(buf, body + 20 + ((caplen + 3) & ~3), body_end, e)
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
                if report is not None:
                    report.packets += 1
                    report.comments = ()
                    report.wire_len = orig
                    if orig > caplen:
                        _short(report, caplen)
                yield last_ts, iface.linktype, buf, body + 4, caplen
            elif btype == 1:  # Interface Description Block
                interfaces.append(_interface(buf, body, body_end, e))
            pos = end  # any other block (name resolution, statistics, custom…) is skipped
        more = f.read(_CHUNK)
        if not more:
            if pos < n:
                _cut(report, base + pos)
            return
        buf = buf[pos:] + more
        base += pos
        pos = 0
