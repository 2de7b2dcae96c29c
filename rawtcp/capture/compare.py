"""Semantic comparison of the TCP exchanges in two captures, streaming both files together.

Connections are matched by order of first appearance (tshark's stream numbering) and role (client ->
server or back), never by address or port. What differs between any two runs of the same exchange is
normalised away before comparing: ISNs (seq/ack and SACK blocks are compared relative, as tshark
counts them), addresses, ports, IP ID, TTL, checksums, TCP timestamp values (the option stays, its
numbers are zeroed) and times (unless ``time_tolerance_ms`` is given, then the gaps between consecutive
segments of a connection are compared). Lengths come from the IP header, so a capture taken with a
short snapshot length compares like a full one (payloads are compared as far as both were captured).

Within a connection the segments are aligned by their place in the sequence space — direction,
flags, seq, ack and length — as a diff aligns lines: a retransmission present in one capture only is
one difference ("only in B"), not a shift that makes every later segment differ. Segments aligned
with each other are then compared field by field.

Both files are read in chunks by two generators advanced together. Records that agree are settled at
once (the common case, one tuple comparison); after a disagreement a connection's records wait in a
window of at most a few hundred segments until the diff has realigned them, so memory stays flat in
the capture size.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from itertools import zip_longest
from typing import Any

from rawtcp.capture.annotate import shown_comments
from rawtcp.capture.decode import ip_offset, parse_options
from rawtcp.capture.errors import CaptureError
from rawtcp.capture.pcap import ReadReport, iter_frames
from rawtcp.core.segment import flags_str, format_options, options_word, segment_line
from rawtcp.core.seq import MASK as SEQ_MASK

# Field names a caller may ignore, in record order (the record's first item is the connection index).
FIELDS = ("direction", "flags", "seq", "ack", "len", "window", "options", "payload", "time")
_F_DIR, _F_FLAGS, _F_SEQ, _F_ACK, _F_LEN, _F_WIN, _F_OPTS, _F_PAYLOAD, _F_TIME = range(1, 10)
# What places a segment in the sequence space: the diff aligns on these.
_ALIGN = (_F_DIR, _F_FLAGS, _F_SEQ, _F_ACK, _F_LEN)

_IP_FIELDS = struct.Struct("!2xH2xH").unpack_from  # total length, flags + fragment offset
_TCP_FIELDS = struct.Struct("!4xIIBBH").unpack_from  # seq, ack, data offset, flags, window
_NOP_NOP_TS = b"\x01\x01\x08\x0a"
_NOP_NOP_TS_ZERO = _NOP_NOP_TS + bytes(8)

# Display: how many segment pairs of how many connections are kept for the side-by-side view.
KEEP_PAIRS = 64
KEEP_CONNECTIONS = 16
MAX_ROWS = 1000
# The diff's look-ahead: after a disagreement, this many records per side are aligned at a time.
WINDOW = 128


class CutOptions(bytes):
    """Option bytes the snapshot length cut short: equal to any options they are the start of."""


def normalise_options(raw: bytes, sack_base: int | None = None) -> bytes:
    """The option bytes with TCP timestamp values zeroed (RFC 7323 §3: they differ on every run) and
    SACK edges made relative to ``sack_base`` (the other direction's ISN, as tshark shows them)."""
    if len(raw) == 12 and raw[:4] == _NOP_NOP_TS:
        return _NOP_NOP_TS_ZERO
    out = bytearray(raw)
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n or raw[i + 1] < 2:
            break
        length = raw[i + 1]
        if kind == 8 and length == 10 and i + 10 <= n:
            out[i + 2:i + 10] = bytes(8)
        elif kind == 5 and sack_base is not None and i + length <= n:
            for j in range(i + 2, i + length - 3, 4):
                edge = (int.from_bytes(raw[j:j + 4], "big") - sack_base) & SEQ_MASK
                out[j:j + 4] = edge.to_bytes(4, "big")
        i += length
    return bytes(out)


class Connections:
    """One capture's connections as :func:`scan` tracks them (tshark's numbering and base numbers).

    Per connection a list ``[index, base0, base1, set0, set1, last_ts, count, client_key]`` (a list, not
    an object: the hot loop indexes it); ``table`` maps both directions' address/port keys to it.
    ``comments`` holds the capture's comments by (connection, position), for display.
    """

    def __init__(self) -> None:
        self.table: dict[bytes, tuple[list[Any], int]] = {}
        self.convs: list[list[Any]] = []
        self.frames = 0
        self.comments: dict[tuple[int, int], tuple[str, ...]] = {}

    def new(self, key: bytes, flags: int, ts: float) -> tuple[list[Any], int]:
        half = len(key) // 2 - 2  # address length: 4 (IPv4) or 16 (IPv6)
        rev = key[half:2 * half] + key[:half] + key[-2:] + key[-4:-2]
        # The SYN-ACK's sender is the server; otherwise the first sender is taken as the client.
        d = 1 if flags & 0x12 == 0x12 else 0
        conv = [len(self.convs), 0, 0, False, False, ts, 0, rev if d else key]
        self.convs.append(conv)
        self.table[key] = (conv, d)
        self.table[rev] = (conv, 1 - d)
        return conv, d


def _key_name(key: bytes, client: bool) -> str:
    half = len(key) // 2 - 2
    addr, port = (key[:half], key[-4:-2]) if client else (key[half:2 * half], key[-2:])
    ip = socket.inet_ntop(socket.AF_INET if half == 4 else socket.AF_INET6, addr)
    port_n = int.from_bytes(port, "big")
    return f"{ip}:{port_n}" if half == 4 else f"[{ip}]:{port_n}"


def _locate(linktype: int, buf: bytes, off: int, caplen: int) -> tuple[int, int, bytes] | None:
    """Slow path: (tcp offset, IP end as the header says, connection key) for any supported frame."""
    frame = buf[off:off + caplen]
    ip = ip_offset(linktype, frame)
    if ip < 0 or len(frame) < ip + 20:
        return None
    version = frame[ip] >> 4
    if version == 4:
        ihl = (frame[ip] & 0x0F) * 4
        total, frag = _IP_FIELDS(frame, ip)
        if frame[ip + 9] != 6 or ihl < 20 or frag & 0x3FFF:
            return None
        tcp = ip + ihl
        iend = ip + total if total >= ihl else len(frame)
        addrs = frame[ip + 12:ip + 20]
    elif version == 6 and len(frame) >= ip + 40:
        nxt = frame[ip + 6]
        tcp = ip + 40
        plen = int.from_bytes(frame[ip + 4:ip + 6], "big")
        iend = tcp + plen if plen else len(frame)
        guard = 0
        while nxt in (0, 43, 60) and guard < 8 and tcp + 8 <= min(iend, len(frame)):  # hop-by-hop, routing, dest. opts
            nxt, tcp, guard = frame[tcp], tcp + (frame[tcp + 1] + 1) * 8, guard + 1
        if nxt != 6:
            return None
        addrs = frame[ip + 8:ip + 40]
    else:
        return None
    if iend < tcp + 20 or len(frame) < tcp + 20:
        return None
    return off + tcp, off + iend, addrs + frame[tcp:tcp + 4]


def scan(path: str | os.PathLike[str], conns: Connections, *, with_time: bool = False,
         with_payload: bool = True, with_options: bool = True,
         report: ReadReport | None = None) -> Iterator[tuple[Any, ...]]:
    """Normalised records ``(connection, direction, flags, rel_seq, rel_ack, len, window, options,
    payload[, gap], position, frame)`` for every TCP segment of a capture, in file order (the hot loop).

    Relative numbers follow tshark (see rawtcp.capture.streams); ``len`` is the IP header's (the
    payload may be shorter when the snapshot length cut it); ``gap`` is the time since the previous
    segment of the same connection; ``position`` counts the connection's segments from 1; ``frame``
    is the frame number in the file. With a ``report``, a file cut mid-record ends the records.
    """
    try:
        yield from _scan(path, conns, with_time, with_payload, with_options, report)
    except CaptureError as exc:  # name the file: a comparison reads two
        raise CaptureError(f"{os.fspath(path)}: {exc}") from None


def _scan(path: str | os.PathLike[str], conns: Connections, with_time: bool, with_payload: bool,
          with_options: bool, report: ReadReport | None) -> Iterator[tuple[Any, ...]]:
    table_get = conns.table.get
    new = conns.new
    ip_fields, tcp_fields, norm = _IP_FIELDS, _TCP_FIELDS, normalise_options
    nopts, nopts_zero = _NOP_NOP_TS, _NOP_NOP_TS_ZERO
    frames = 0
    for ts, linktype, buf, off, caplen in iter_frames(path, report):
        frames += 1
        cend = off + caplen
        # Fast path: Ethernet or raw IPv4 without IP options, unfragmented TCP.
        if linktype == 1 and caplen >= 54 and buf[off + 12] == 8 and buf[off + 13] == 0:
            ip = off + 14
        elif (linktype == 101 or linktype == 228) and caplen >= 40:
            ip = off
        else:
            ip = -1
        if ip >= 0 and buf[ip] == 0x45 and buf[ip + 9] == 6:
            total, frag = ip_fields(buf, ip)
            if frag & 0x3FFF:
                continue
            tcp = ip + 20
            iend = ip + total if total >= 40 else cend  # 0 on TSO segments captured at the sender
            key = buf[ip + 12:ip + 24]
        else:
            found = _locate(linktype, buf, off, caplen) if caplen >= 20 else None
            if found is None:
                continue
            tcp, iend, key = found
        seq, ack, doff, flags, win = tcp_fields(buf, tcp)
        hl = (doff >> 4) << 2
        pl = tcp + hl
        if hl < 20 or pl > iend:
            continue
        entry = table_get(key)
        if entry is None:
            entry = new(key, flags, ts)
        elif flags & 0x12 == 2:
            conv, d = entry
            # port reuse: a SYN with another ISN on a known pair is a new stream (as tshark)
            if conv[3 + d] and seq != conv[1 + d]:
                entry = new(key, flags, ts)
        conv, d = entry
        if flags & 2:
            conv[1 + d] = seq
            conv[3 + d] = True
        elif not conv[3 + d]:
            conv[1 + d] = (seq - 1) & SEQ_MASK
            conv[3 + d] = True
        rel_seq = (seq - conv[1 + d]) & SEQ_MASK
        if flags & 0x10:
            if not conv[4 - d]:
                conv[2 - d] = (ack - 1) & SEQ_MASK
                conv[4 - d] = True
            rel_ack = (ack - conv[2 - d]) & SEQ_MASK
        else:
            rel_ack = ack
        conv[6] = count = conv[6] + 1
        if hl == 20 or not with_options:
            opts = b""
        elif hl == 32 and pl <= cend and buf[tcp + 20:tcp + 24] == nopts:
            opts = nopts_zero
        else:
            opts = norm(buf[tcp + 20:min(pl, cend)], conv[2 - d] if flags & 0x10 else None)
            if pl > cend:
                opts = CutOptions(opts)
        if report is not None and report.comments:
            shown = shown_comments(report.comments)
            if shown and conv[0] < KEEP_CONNECTIONS:
                conns.comments[(conv[0], count)] = shown
        payload = buf[pl:min(iend, cend)] if with_payload else None
        if with_time:
            gap = ts - conv[5]
            conv[5] = ts
            yield (conv[0], d, flags, rel_seq, rel_ack, iend - pl, win, opts, payload, gap, count, frames)
        else:
            yield (conv[0], d, flags, rel_seq, rel_ack, iend - pl, win, opts, payload, count, frames)
    conns.frames = frames


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A normalised segment, for display and JSON."""

    direction: int  # 0 client -> server, 1 server -> client
    flags: int
    seq: int
    ack: int
    len: int
    window: int
    options: bytes
    payload: bytes | None
    gap: float | None = None
    position: int = 0  # 1-based place among its connection's segments in its capture
    frame: int = 0  # frame number in its capture
    comments: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, rec: tuple[Any, ...], comments: tuple[str, ...] = ()) -> SegmentView:
        gap = rec[9] if len(rec) == 12 else None
        return cls(*rec[1:9], gap, rec[-2], rec[-1], comments)

    @property
    def arrow(self) -> str:
        return "C\u2192S" if self.direction == 0 else "C\u2190S"

    def flag_text(self) -> str:
        return flags_str(self.flags)

    def options_text(self) -> str:
        # the timestamps were zeroed when read (they differ on every run): bare "TS"
        text = format_options(parse_options(self.options), ts_values=False)
        return text + ",\u2026" if isinstance(self.options, CutOptions) else text

    def word(self, name: str) -> str:
        """One field as a person reads it: ``[S.]``, ``C→S``, ``<mss 1460>``, ``win 65160``."""
        if name == "direction":
            return self.arrow
        if name == "flags":
            return f"[{self.flag_text()}]"
        if name == "options":
            return options_word(self.options_text()) if self.options else "no options"
        if name == "time":
            return f"gap {(self.gap or 0.0) * 1000:.3f} ms"
        if name == "window":
            return f"win {self.window}"
        return f"{name} {getattr(self, name)}"

    def text(self) -> str:
        """``C→S S.  seq 0 ack 1 win 65160 len 0 <mss 1024>``: flags padded, so the numbers line up."""
        options = self.options_text() if self.options else ""
        line = segment_line(self.flags, self.seq, self.ack, self.window, self.len, options, flags_width=3)
        return f"{self.arrow} {line}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "segment": self.position, "frame": self.frame,
            "direction": "client->server" if self.direction == 0 else "server->client",
            "flags": self.flag_text(), "seq": self.seq, "ack": self.ack, "len": self.len,
            "window": self.window, "options": self.options_text()}
        if self.payload is not None:
            out["payload"] = self.payload.hex()
        if self.gap is not None:
            out["gap_ms"] = round(self.gap * 1000, 3)
        if self.comments:
            out["comments"] = list(self.comments)
        return out


def _payload_words(a: SegmentView, b: SegmentView) -> str:
    pa, pb = a.payload or b"", b.payload or b""
    at = next((i for i, (x, y) in enumerate(zip(pa, pb, strict=False)) if x != y), min(len(pa), len(pb)))
    return f"payload differs from byte {at}"


@dataclass(slots=True)
class DiffRow:
    """One difference in a connection: a segment on one side only, or two aligned segments that differ.

    Segments are numbered from 1 within their connection, in each capture (``a.segment``,
    ``b.segment``), the same in the text and the JSON; frames are the files' frame numbers.
    """

    connection: int
    fields: tuple[str, ...]  # differing fields; ("missing",) for a one-sided segment; ("connection",)
    a: SegmentView | None
    b: SegmentView | None
    after: tuple[int, int] = (0, 0)  # for a one-sided segment: the segments each side had before it
    only: str | None = None  # "A" or "B" for a whole connection present in one capture only
    endpoints: str = ""  # that connection's client -> server, and its segment count

    @property
    def segment(self) -> int:
        """The segment's number in A (in B when A has none)."""
        return self.a.position if self.a is not None else (self.b.position if self.b is not None else 0)

    def describe(self) -> str:
        where = f"connection {self.connection}"
        if self.only is not None:
            other = "B" if self.only == "A" else "A"
            return f"{where} ({self.endpoints}) is only in {self.only}: {other} has no connection {self.connection}"
        if self.a is None or self.b is None:
            side, view = ("B", self.b) if self.a is None else ("A", self.a)
            assert view is not None
            place = f"after segment {self.after[0 if side == 'B' else 1]} of {'A' if side == 'B' else 'B'}"
            return f"{where}: only in {side}, segment {view.position} (frame {view.frame}), {place}: {view.text()}"
        a, b = self.a, self.b
        parts = []
        for name in self.fields:
            if name == "payload":
                parts.append(_payload_words(a, b))
            else:
                wa, wb = a.word(name), b.word(name)
                head_a, _, rest_b = wb.partition(" ")
                if name in ("seq", "ack", "len", "window", "time") and rest_b and wa.split(" ", 1)[0] == head_a:
                    wb = rest_b  # "win 65160 vs 1000", not "win 65160 vs win 1000"
                parts.append(f"{wa} vs {wb}")
        seg = f"segment {a.position}" if a.position == b.position else f"segment A {a.position} / B {b.position}"
        return f"{where} {seg}: {a.arrow} [{a.flag_text()}] \u2192 " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"connection": self.connection, "fields": list(self.fields),
                               "a": self.a.to_json() if self.a else None, "b": self.b.to_json() if self.b else None,
                               "text": self.describe()}
        if self.only is not None:
            doc["only_in"] = self.only
        return doc


@dataclass(slots=True)
class ConnectionResult:
    index: int
    a_client: str | None = None
    a_server: str | None = None
    b_client: str | None = None
    b_server: str | None = None
    segments_a: int = 0
    segments_b: int = 0
    differences: int = 0
    # (A, B, differing fields) kept for the side-by-side view (bounded)
    pairs: list[tuple[SegmentView | None, SegmentView | None, tuple[str, ...]]] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.differences == 0

    @property
    def only(self) -> str | None:
        if self.segments_a and not self.segments_b:
            return "A"
        if self.segments_b and not self.segments_a:
            return "B"
        return None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "same": self.same, "differences": self.differences, "only_in": self.only,
                "a": {"client": self.a_client, "server": self.a_server, "segments": self.segments_a},
                "b": {"client": self.b_client, "server": self.b_server, "segments": self.segments_b}}


@dataclass
class CompareResult:
    a: str
    b: str
    ignore: frozenset[str]
    time_tolerance_ms: float | None
    connections: list[ConnectionResult]
    rows: list[DiffRow]  # the first MAX_ROWS differences
    differences: int  # all of them
    segments_a: int
    segments_b: int
    warnings: list[str] = field(default_factory=list)  # truncated packets, a file cut short
    damaged: bool = False  # a file was cut in the middle of a packet: only its beginning was compared

    @property
    def same(self) -> bool:
        return self.differences == 0

    def summary(self) -> str:
        n = len(self.connections)
        conns = f"{n} connection{'s' if n != 1 else ''}"
        ignored = f" (ignoring {', '.join(sorted(self.ignore))})" if self.ignore else ""
        if self.same:
            return f"same: {conns}, {self.segments_a} segments in each capture{ignored}"
        bad = sum(1 for c in self.connections if not c.same)
        first = f"; first: {self.rows[0].describe()}" if self.rows else ""
        return (f"different: {bad} of {conns} differ, {self.differences} "
                f"difference{'s' if self.differences != 1 else ''} ({self.segments_a} segments in A, "
                f"{self.segments_b} in B){ignored}{first}")

    def to_json(self) -> dict[str, Any]:
        return {"same": self.same, "a": self.a, "b": self.b, "ignore": sorted(self.ignore),
                "time_tolerance_ms": self.time_tolerance_ms, "segments": {"a": self.segments_a,
                                                                          "b": self.segments_b},
                "connections": [c.to_json() for c in self.connections],
                "differences": self.differences, "warnings": self.warnings, "damaged": self.damaged,
                "rows": [r.to_json() for r in self.rows], "summary": self.summary()}


class _Differ:
    """Settles records into pairs and differences; holds a connection's records only while unaligned."""

    def __init__(self, ignored: frozenset[str], with_time: bool, tol: float, max_rows: int,
                 comments: tuple[Connections, Connections]) -> None:
        self.checked = [i for i, name in enumerate(FIELDS, 1) if name not in ignored and name != "time"]
        self.align = [i for i in _ALIGN if FIELDS[i - 1] not in ignored]
        self.with_time, self.tol, self.max_rows = with_time, tol, max_rows
        self.comments = comments
        self.results: dict[int, ConnectionResult] = {}
        self.rows: list[DiffRow] = []
        self.differences = 0
        self.queues: dict[int, tuple[deque[tuple[Any, ...]], deque[tuple[Any, ...]]]] = {}
        self.settled: dict[int, list[int]] = {}  # per connection: segments of A and B settled so far
        self.waiting = 0

    def result(self, k: int) -> ConnectionResult:
        cr = self.results.get(k)
        if cr is None:
            cr = self.results[k] = ConnectionResult(k)
        return cr

    def view(self, rec: tuple[Any, ...] | None, side: int) -> SegmentView | None:
        if rec is None:
            return None
        return SegmentView.from_record(rec, self.comments[side].comments.get((rec[0], rec[-2]), ()))

    def fields(self, ra: tuple[Any, ...], rb: tuple[Any, ...]) -> tuple[str, ...]:
        out = []
        for i in self.checked:
            if ra[i] != rb[i]:
                if i == _F_PAYLOAD and _same_captured(ra, rb):
                    continue
                if i == _F_OPTS and _same_options(ra[i], rb[i]):
                    continue
                out.append(FIELDS[i - 1])
        if self.with_time and abs(ra[_F_TIME] - rb[_F_TIME]) > self.tol:
            out.append("time")
        return tuple(out)

    def settle(self, k: int, ra: tuple[Any, ...] | None, rb: tuple[Any, ...] | None) -> None:
        fields = ("missing",) if ra is None or rb is None else self.fields(ra, rb)
        count = self.settled.setdefault(k, [0, 0])
        cr = self.result(k)
        if fields:
            self.differences += 1
            cr.differences += 1
            va, vb = self.view(ra, 0), self.view(rb, 1)
            if len(self.rows) < self.max_rows:
                self.rows.append(DiffRow(k, fields, va, vb, (count[0], count[1])))
            if k < KEEP_CONNECTIONS and len(cr.pairs) < KEEP_PAIRS + self.max_rows:
                cr.pairs.append((va, vb, fields))
        elif k < KEEP_CONNECTIONS and len(cr.pairs) < KEEP_PAIRS:
            cr.pairs.append((self.view(ra, 0), self.view(rb, 1), ()))
        count[0] += ra is not None
        count[1] += rb is not None

    def push(self, side: int, rec: tuple[Any, ...]) -> None:
        k = rec[0]
        queues = self.queues.get(k)
        if queues is None:
            queues = self.queues[k] = (deque(), deque())
        queues[side].append(rec)
        self.waiting += 1
        self.drain(k, final=False)

    def drain(self, k: int, final: bool) -> None:
        qa, qb = self.queues[k]
        align = self.align
        while qa and qb and [qa[0][i] for i in align] == [qb[0][i] for i in align]:
            self.settle(k, qa.popleft(), qb.popleft())
            self.waiting -= 2
        if not (qa and qb) and not final:
            return
        if not final and (len(qa) < WINDOW or len(qb) < WINDOW):
            return
        a, b = list(qa)[:WINDOW * 2] if not final else list(qa), list(qb)[:WINDOW * 2] if not final else list(qb)
        ops = SequenceMatcher(None, [tuple(r[i] for i in align) for r in a],
                              [tuple(r[i] for i in align) for r in b], autojunk=False).get_opcodes()
        if not final and len(ops) > 1:
            ops = ops[:-1]  # the window's tail may align with what has not been read yet
        used_a = used_b = 0
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                for x in range(i2 - i1):
                    self.settle(k, a[i1 + x], b[j1 + x])
            else:
                paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
                for x in range(paired):
                    self.settle(k, a[i1 + x], b[j1 + x])
                for x in range(i1 + paired, i2):
                    self.settle(k, a[x], None)
                for x in range(j1 + paired, j2):
                    self.settle(k, None, b[x])
            used_a, used_b = i2, j2
        for _ in range(used_a):
            qa.popleft()
        for _ in range(used_b):
            qb.popleft()
        self.waiting -= used_a + used_b


def _same_options(a: bytes, b: bytes) -> bool:
    """Options cut by a snapshot length agree with the options they are the start of."""
    if not isinstance(a, CutOptions) and not isinstance(b, CutOptions):
        return False
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _same_captured(ra: tuple[Any, ...], rb: tuple[Any, ...]) -> bool:
    """Payloads cut by a snapshot length agree when the bytes both captures hold agree."""
    pa, pb = ra[_F_PAYLOAD], rb[_F_PAYLOAD]
    if pa is None or pb is None or ra[_F_LEN] != rb[_F_LEN]:
        return False
    if len(pa) == ra[_F_LEN] and len(pb) == rb[_F_LEN]:
        return False  # both whole: they really differ
    n = min(len(pa), len(pb))
    return bytes(pa[:n]) == bytes(pb[:n])


def compare_captures(a: str | os.PathLike[str], b: str | os.PathLike[str], *,
                     ignore: Iterable[str] = (), time_tolerance_ms: float | None = None,
                     max_rows: int = MAX_ROWS) -> CompareResult:
    """Compare the TCP exchanges of captures ``a`` and ``b`` (see the module docstring).

    ``ignore`` names fields from FIELDS to leave out (e.g. ``{"window", "options"}``). Raises
    CaptureError for unreadable captures, unknown field names, or when a capture holds no TCP. A
    capture cut in the middle of a packet is compared as far as it goes (``damaged``, ``warnings``).
    """
    ignored = frozenset(ignore)
    unknown = ignored - set(FIELDS)
    if unknown:
        raise CaptureError(f"unknown field {sorted(unknown)[0]!r} (choose from {', '.join(FIELDS)})")
    if os.fspath(a) == "-" and os.fspath(b) == "-":
        raise CaptureError("only one of A and B can be standard input ('-')")
    with_time = time_tolerance_ms is not None and "time" not in ignored
    tol = (time_tolerance_ms or 0.0) / 1000.0
    ca, cb = Connections(), Connections()
    reports = (ReadReport(_shown(a)), ReadReport(_shown(b)))
    opts = {"with_time": with_time, "with_payload": "payload" not in ignored,
            "with_options": "options" not in ignored}
    ga, gb = scan(a, ca, report=reports[0], **opts), scan(b, cb, report=reports[1], **opts)
    differ = _Differ(ignored, with_time, tol, max_rows, (ca, cb))
    cut = -2  # records compared up to the frame number (the part without position and frame)

    for ra, rb in zip_longest(ga, gb):
        if differ.waiting == 0 and ra is not None and rb is not None and ra[:cut] == rb[:cut]:
            k = ra[0]
            if k < KEEP_CONNECTIONS:  # keep the first pairs for display
                differ.settle(k, ra, rb)
            else:
                count = differ.settled.setdefault(k, [0, 0])
                count[0] += 1
                count[1] += 1
            continue
        if ra is not None:
            differ.push(0, ra)
        if rb is not None:
            differ.push(1, rb)

    # a file cut before its first complete packet is the more useful thing to name, so it goes first
    empty = [(rep.damaged, path) for path, conns, rep in ((a, ca, reports[0]), (b, cb, reports[1]))
             if not conns.convs]
    for damaged, path in sorted(empty, key=lambda item: not item[0]):
        cut = " (truncated before its first complete packet)" if damaged else ""
        raise CaptureError(f"no TCP segments in {_shown(path)}{cut}")
    n = max(len(ca.convs), len(cb.convs))
    results = []
    for k in range(n):
        cr = differ.result(k)
        if k < len(ca.convs):
            conv = ca.convs[k]
            cr.a_client, cr.a_server, cr.segments_a = _key_name(conv[7], True), _key_name(conv[7], False), conv[6]
        if k < len(cb.convs):
            conv = cb.convs[k]
            cr.b_client, cr.b_server, cr.segments_b = _key_name(conv[7], True), _key_name(conv[7], False), conv[6]
        if cr.only is not None:  # one plain difference, not a row per segment
            differ.queues.pop(k, None)
            cr.pairs = []
            cr.differences = 1
            differ.differences += 1
            client, server, count = ((cr.a_client, cr.a_server, cr.segments_a) if cr.only == "A"
                                     else (cr.b_client, cr.b_server, cr.segments_b))
            if len(differ.rows) < max_rows:
                differ.rows.append(DiffRow(k, ("connection",), None, None, only=cr.only,
                                           endpoints=f"{client} \u2192 {server}, {count} segments"))
        elif k in differ.queues:
            differ.drain(k, final=True)
        results.append(cr)
    differ.rows.sort(key=lambda r: r.connection)
    warnings = [w for r in reports for w in r.warnings()]
    return CompareResult(_shown(a), _shown(b), ignored, time_tolerance_ms, results, differ.rows,
                         differ.differences, sum(c[6] for c in ca.convs), sum(c[6] for c in cb.convs),
                         warnings, any(r.damaged for r in reports))


def _shown(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    return "standard input" if name == "-" else name


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def render_compare(result: CompareResult, *, color: bool = False, width: int = 72) -> str:
    """The two captures' ladders side by side, aligned as the diff aligned them, then the summary.

    Each row shows the segment's number in A and in B (from 1 within the connection, as in the JSON);
    ``+`` marks a segment only in that capture, ``!`` two aligned segments that differ, with the
    difference in words. Connections that are the same are listed only when there are few of them.
    """
    import click  # the CLI's dependency; imported here so the hot comparison never needs it

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    lines = [style(f"A: {result.a}", bold=True) + "  vs  " + style(f"B: {result.b}", bold=True)]
    show_all = len(result.connections) <= 4
    rows_by_conn: dict[int, list[DiffRow]] = {}
    for row in result.rows:
        rows_by_conn.setdefault(row.connection, []).append(row)
    hidden = 0
    for conn in result.connections:
        if conn.same and not show_all:
            hidden += 1
            continue
        lines.append("")
        if conn.only is not None:
            row = rows_by_conn[conn.index][0] if conn.index in rows_by_conn else None
            lines.append(style(row.describe() if row else f"connection {conn.index} is only in {conn.only}",
                               fg="red", bold=True))
            continue
        verdict = style("same", fg="green") if conn.same else style(
            f"{conn.differences} difference{'s' if conn.differences != 1 else ''}", fg="red", bold=True)
        lines.append(f"connection {conn.index}: A {conn.a_client or '-'} \u2192 {conn.a_server or '-'} "
                     f"({conn.segments_a} segments) | B {conn.b_client or '-'} \u2192 {conn.b_server or '-'} "
                     f"({conn.segments_b} segments): {verdict}")
        pairs = conn.pairs
        if not pairs:  # beyond the kept connections: show the recorded differences only
            pairs = [(r.a, r.b, r.fields) for r in rows_by_conn.get(conn.index, [])]
        col = min(width, max([len(v.text()) for va, vb, _f in pairs for v in (va, vb) if v] or [6]))
        lines.append(f"  {'A#':>4} {'B#':>4}  {'A':<{col}}  B")
        last = (0, 0)
        for va, vb, fields in pairs:
            pa, pb = (va.position if va else last[0]), (vb.position if vb else last[1])
            if (va and pa != last[0] + 1) or (vb and pb != last[1] + 1):
                lines.append(f"  {'…':>4} {'…':>4}")
            last = (pa, pb)
            ta = _fit(va.text(), col) if va else ""
            tb = _fit(vb.text(), col) if vb else ""
            na = str(va.position) if va else ""
            nb = str(vb.position) if vb else ""
            if va is None or vb is None:
                mark, note = "+", style(f" only in {'B' if va is None else 'A'}", fg="yellow")
                ta, tb = style(ta.ljust(col), fg="red"), style(tb.ljust(col), fg="red")
                lines.append(f"{mark} {na:>4} {nb:>4}  {ta}  {tb}{note}")
            elif fields:
                words = DiffRow(conn.index, fields, va, vb).describe().split(" \u2192 ", 1)[-1]
                ta, tb = style(ta.ljust(col), fg="red"), style(tb.ljust(col), fg="red")
                lines.append(f"! {na:>4} {nb:>4}  {ta}  {tb} " + style(words, fg="yellow"))
            else:
                lines.append(f"  {na:>4} {nb:>4}  {ta.ljust(col)}  {tb}")
            for side, view in (("A", va), ("B", vb)):
                for comment in view.comments if view else ():
                    lines.append(style(f"  {'':>4} {'':>4}  {side} # {comment}", fg="magenta", dim=True))
        shown = sum(1 for p in pairs if p[2])
        if conn.differences > shown:
            lines.append(f"  … {conn.differences - shown} more differences not shown")
    if hidden:
        lines.append("")
        lines.append(f"({hidden} identical connection{'s' if hidden != 1 else ''} not shown)")
    lines.append("")
    summary = result.summary()
    lines.append(style(summary, fg="green" if result.same else "red", bold=True))
    return "\n".join(lines) + "\n"
