"""Semantic comparison of the TCP exchanges in two captures, streaming both files in lockstep.

Connections are matched by order of first appearance (tshark's stream numbering) and segments by
role (client -> server or back) and position in their connection, never by address or port. What
differs between any two runs of the same exchange is normalised away before comparing: ISNs (seq/ack
are compared relative, as tshark counts them), addresses, ports, IP ID, TTL, checksums, TCP timestamp
values (the option stays, its numbers are zeroed) and times (unless ``time_tolerance_ms`` is given,
then the gaps between consecutive segments of a connection are compared).

Both files are read in chunks by two generators advanced together; a segment waits in its
connection's queue only until the other file delivers its counterpart, so memory stays flat in the
capture size when the captures are alike. Identical normalised records on both sides (the common
case) are settled by one tuple comparison.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from rawtcp.capture.decode import ip_offset, parse_options
from rawtcp.capture.errors import CaptureError
from rawtcp.capture.pcap import iter_frames

# Field names a caller may ignore, in record order (the record's first item is the connection index).
FIELDS = ("direction", "flags", "seq", "ack", "len", "window", "options", "payload", "time")
_F_DIR, _F_FLAGS, _F_SEQ, _F_ACK, _F_LEN, _F_WIN, _F_OPTS, _F_PAYLOAD, _F_TIME = range(1, 10)

_MOD = 0xFFFFFFFF
_IP_FIELDS = struct.Struct("!2xH2xH").unpack_from  # total length, flags + fragment offset
_TCP_FIELDS = struct.Struct("!4xIIBBH").unpack_from  # seq, ack, data offset, flags, window
_NOP_NOP_TS = b"\x01\x01\x08\x0a"
_NOP_NOP_TS_ZERO = _NOP_NOP_TS + bytes(8)

# Display: how many segment pairs of how many connections are kept for the side-by-side view.
KEEP_PAIRS = 64
KEEP_CONNECTIONS = 16
MAX_ROWS = 1000


def normalise_options(raw: bytes) -> bytes:
    """The option bytes with TCP timestamp values zeroed (RFC 7323 §3: they differ on every run)."""
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
        if kind == 8 and raw[i + 1] == 10 and i + 10 <= n:
            out[i + 2:i + 10] = bytes(8)
        i += raw[i + 1]
    return bytes(out)


class Connections:
    """One capture's connections as :func:`scan` tracks them (tshark's numbering and base numbers).

    Per connection a list ``[index, base0, base1, set0, set1, last_ts, count, client_key]`` (a list, not
    an object: the hot loop indexes it); ``table`` maps both directions' address/port keys to it.
    """

    def __init__(self) -> None:
        self.table: dict[bytes, tuple[list[Any], int]] = {}
        self.convs: list[list[Any]] = []
        self.frames = 0

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
    """Slow path: (tcp offset, IP end, connection key) for any supported frame, or None if not TCP."""
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
        iend = min(ip + total, len(frame)) if total >= ihl else len(frame)
        addrs = frame[ip + 12:ip + 20]
    elif version == 6 and len(frame) >= ip + 40:
        nxt = frame[ip + 6]
        tcp = ip + 40
        iend = min(len(frame), tcp + int.from_bytes(frame[ip + 4:ip + 6], "big"))
        guard = 0
        while nxt in (0, 43, 60) and guard < 8 and tcp + 8 <= iend:  # hop-by-hop, routing, dest. opts
            nxt, tcp, guard = frame[tcp], tcp + (frame[tcp + 1] + 1) * 8, guard + 1
        if nxt != 6:
            return None
        addrs = frame[ip + 8:ip + 40]
    else:
        return None
    if iend < tcp + 20:
        return None
    return off + tcp, off + iend, addrs + frame[tcp:tcp + 4]


def scan(path: str | os.PathLike[str], conns: Connections, *, with_time: bool = False,
         with_payload: bool = True, with_options: bool = True) -> Iterator[tuple[Any, ...]]:
    """Normalised records ``(connection, direction, flags, rel_seq, rel_ack, len, window, options,
    payload[, gap], position)`` for every TCP segment of a capture, in file order (the hot loop).

    Relative numbers follow tshark (see rawtcp.capture.streams); ``gap`` is the time since the previous
    segment of the same connection; ``position`` counts the connection's segments from 1.
    """
    try:
        yield from _scan(path, conns, with_time, with_payload, with_options)
    except CaptureError as exc:  # name the file: a comparison reads two
        raise CaptureError(f"{os.fspath(path)}: {exc}") from None


def _scan(path: str | os.PathLike[str], conns: Connections, with_time: bool, with_payload: bool,
          with_options: bool) -> Iterator[tuple[Any, ...]]:
    table_get = conns.table.get
    new = conns.new
    ip_fields, tcp_fields, norm = _IP_FIELDS, _TCP_FIELDS, normalise_options
    nopts, nopts_zero = _NOP_NOP_TS, _NOP_NOP_TS_ZERO
    frames = 0
    for ts, linktype, buf, off, caplen in iter_frames(path):
        frames += 1
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
            iend = ip + total
            if iend > off + caplen or total < 40:
                iend = off + caplen
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
            conv[1 + d] = (seq - 1) & _MOD
            conv[3 + d] = True
        rel_seq = (seq - conv[1 + d]) & _MOD
        if flags & 0x10:
            if not conv[4 - d]:
                conv[2 - d] = (ack - 1) & _MOD
                conv[4 - d] = True
            rel_ack = (ack - conv[2 - d]) & _MOD
        else:
            rel_ack = ack
        conv[6] = count = conv[6] + 1
        if hl == 20 or not with_options:
            opts = b""
        elif hl == 32 and buf[tcp + 20:tcp + 24] == nopts:
            opts = nopts_zero
        else:
            opts = norm(buf[tcp + 20:pl])
        if with_time:
            gap = ts - conv[5]
            conv[5] = ts
            yield (conv[0], d, flags, rel_seq, rel_ack, iend - pl, win, opts,
                   buf[pl:iend] if with_payload else None, gap, count)
        else:
            yield (conv[0], d, flags, rel_seq, rel_ack, iend - pl, win, opts,
                   buf[pl:iend] if with_payload else None, count)
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

    @classmethod
    def from_record(cls, rec: tuple[Any, ...]) -> SegmentView:
        return cls(*rec[1:9], rec[9] if len(rec) > 10 else None)

    def value(self, name: str) -> Any:
        return {"direction": self.direction, "flags": self.flags, "seq": self.seq, "ack": self.ack,
                "len": self.len, "window": self.window, "options": self.options_text(),
                "payload": self.payload.hex() if self.payload is not None else None,
                "time": self.gap}[name]

    def options_text(self) -> str:
        from rawtcp.core.segment import format_options  # core is allowed; lazy keeps import light

        opts = parse_options(self.options)
        text = format_options(opts)
        return text.replace("TS val 0 ecr 0", "TS")

    def text(self) -> str:
        from rawtcp.core.segment import flags_str

        arrow = "C->S" if self.direction == 0 else "C<-S"
        text = f"{arrow} {flags_str(self.flags):<3} seq {self.seq}"
        if self.flags & 0x10:
            text += f" ack {self.ack}"
        text += f" win {self.window} len {self.len}"
        if self.options:
            text += f" <{self.options_text()}>"
        return text

    def to_json(self) -> dict[str, Any]:
        from rawtcp.core.segment import flags_str

        out: dict[str, Any] = {
            "direction": "client->server" if self.direction == 0 else "server->client",
            "flags": flags_str(self.flags), "seq": self.seq, "ack": self.ack, "len": self.len,
            "window": self.window, "options": self.options_text()}
        if self.payload is not None:
            out["payload"] = self.payload.hex()
        if self.gap is not None:
            out["gap_ms"] = round(self.gap * 1000, 3)
        return out


@dataclass(slots=True)
class DiffRow:
    """One differing (or unmatched) segment position of a connection."""

    connection: int
    segment: int  # 0-based position within the connection
    fields: tuple[str, ...]  # differing fields; ("missing",) when one side has no such segment
    a: SegmentView | None
    b: SegmentView | None

    def describe(self) -> str:
        where = f"connection {self.connection} segment {self.segment + 1}"
        if self.a is None:
            return f"{where}: only in B: {self.b.text() if self.b else ''}"
        if self.b is None:
            return f"{where}: only in A: {self.a.text()}"
        parts = []
        for name in self.fields:
            va, vb = self.a.value(name), self.b.value(name)
            if name == "payload":
                parts.append("payload differs")
            elif name == "time":
                parts.append(f"gap {va * 1000:.3f} ms != {vb * 1000:.3f} ms")
            else:
                parts.append(f"{name} {va} != {vb}")
        return f"{where}: " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"connection": self.connection, "segment": self.segment, "fields": list(self.fields),
                "a": self.a.to_json() if self.a else None, "b": self.b.to_json() if self.b else None}


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
    # (segment position, A, B, differing fields) kept for the side-by-side view (bounded)
    pairs: list[tuple[int, SegmentView | None, SegmentView | None, tuple[str, ...]]] = field(
        default_factory=list)

    @property
    def same(self) -> bool:
        return self.differences == 0

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "same": self.same, "differences": self.differences,
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
        return (f"different: {bad} of {conns} differ, {self.differences} segment "
                f"difference{'s' if self.differences != 1 else ''} ({self.segments_a} segments in A, "
                f"{self.segments_b} in B){ignored}{first}")

    def to_json(self) -> dict[str, Any]:
        return {"same": self.same, "a": self.a, "b": self.b, "ignore": sorted(self.ignore),
                "time_tolerance_ms": self.time_tolerance_ms, "segments": {"a": self.segments_a,
                                                                          "b": self.segments_b},
                "connections": [c.to_json() for c in self.connections],
                "differences": self.differences,
                "rows": [r.to_json() for r in self.rows], "summary": self.summary()}


def compare_captures(a: str | os.PathLike[str], b: str | os.PathLike[str], *,
                     ignore: Iterable[str] = (), time_tolerance_ms: float | None = None,
                     max_rows: int = MAX_ROWS) -> CompareResult:
    """Compare the TCP exchanges of captures ``a`` and ``b`` (see the module docstring).

    ``ignore`` names fields from FIELDS to leave out (e.g. ``{"window", "options"}``). Raises
    CaptureError for unreadable captures, unknown field names, or when a capture holds no TCP.
    """
    ignored = frozenset(ignore)
    unknown = ignored - set(FIELDS)
    if unknown:
        raise CaptureError(f"unknown field {sorted(unknown)[0]!r} (choose from {', '.join(FIELDS)})")
    with_time = time_tolerance_ms is not None and "time" not in ignored
    tol = (time_tolerance_ms or 0.0) / 1000.0
    checked = [i for i, name in enumerate(FIELDS, 1) if name not in ignored and name != "time"]
    ca, cb = Connections(), Connections()
    opts = {"with_time": with_time, "with_payload": "payload" not in ignored,
            "with_options": "options" not in ignored}
    ga, gb = scan(a, ca, **opts), scan(b, cb, **opts)

    conn_results: dict[int, ConnectionResult] = {}
    rows: list[DiffRow] = []
    pending: tuple[dict[int, deque[tuple[Any, ...]]], dict[int, deque[tuple[Any, ...]]]] = ({}, {})
    n_pending = 0
    differences = 0

    def settle(ra: tuple[Any, ...] | None, rb: tuple[Any, ...] | None, k: int) -> None:
        nonlocal differences
        pos = (ra if ra is not None else rb)[-1] - 1  # type: ignore[index]
        if ra is None or rb is None:
            fields: tuple[str, ...] = ("missing",)
        else:
            fields = tuple(FIELDS[i - 1] for i in checked if ra[i] != rb[i])
            if with_time and abs(ra[_F_TIME] - rb[_F_TIME]) > tol:
                fields += ("time",)
        cr = conn_results.get(k)
        if cr is None:
            cr = conn_results[k] = ConnectionResult(k)
        keep = k < KEEP_CONNECTIONS and len(cr.pairs) < KEEP_PAIRS
        if fields:
            differences += 1
            cr.differences += 1
            va = SegmentView.from_record(ra) if ra is not None else None
            vb = SegmentView.from_record(rb) if rb is not None else None
            if len(rows) < max_rows:
                rows.append(DiffRow(k, pos, fields, va, vb))
            if k < KEEP_CONNECTIONS and len(cr.pairs) < KEEP_PAIRS + max_rows:
                cr.pairs.append((pos, va, vb, fields))
        elif keep:
            cr.pairs.append((pos, SegmentView.from_record(ra) if ra is not None else None,
                             SegmentView.from_record(rb) if rb is not None else None, ()))

    for ra, rb in zip_longest(ga, gb):
        if n_pending == 0 and ra == rb:
            k = ra[0]
            if k < KEEP_CONNECTIONS:  # keep the first pairs for display
                settle(ra, rb, k)
            continue
        for side, rec in ((0, ra), (1, rb)):
            if rec is None:
                continue
            k = rec[0]
            other = pending[1 - side].get(k)
            if other:
                mate = other.popleft()
                n_pending -= 1
                if side == 0:
                    settle(rec, mate, k)
                else:
                    settle(mate, rec, k)
            else:
                queue = pending[side].get(k)
                if queue is None:
                    queue = pending[side][k] = deque()
                queue.append(rec)
                n_pending += 1
    for side in (0, 1):  # whatever is still waiting has no counterpart
        for k, queue in sorted(pending[side].items()):
            for rec in queue:
                settle(rec, None, k) if side == 0 else settle(None, rec, k)

    for path, conns in ((a, ca), (b, cb)):
        if not conns.convs:
            raise CaptureError(f"no TCP segments in {os.fspath(path)}")
    n = max(len(ca.convs), len(cb.convs))
    results = []
    for k in range(n):
        cr = conn_results.get(k) or ConnectionResult(k)
        if k < len(ca.convs):
            conv = ca.convs[k]
            cr.a_client, cr.a_server, cr.segments_a = _key_name(conv[7], True), _key_name(conv[7], False), conv[6]
        if k < len(cb.convs):
            conv = cb.convs[k]
            cr.b_client, cr.b_server, cr.segments_b = _key_name(conv[7], True), _key_name(conv[7], False), conv[6]
        results.append(cr)
    return CompareResult(os.fspath(a), os.fspath(b), ignored, time_tolerance_ms, results, rows, differences,
                         sum(c[6] for c in ca.convs), sum(c[6] for c in cb.convs))


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def render_compare(result: CompareResult, *, color: bool = False, width: int = 72) -> str:
    """The two captures' ladders side by side, differing segments marked, then the summary line.

    Connections that are the same are listed with their pairs only when there are few of them;
    differing ones always show their kept pairs (the first KEEP_PAIRS) and their differences.
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
        verdict = style("same", fg="green") if conn.same else style(
            f"{conn.differences} difference{'s' if conn.differences != 1 else ''}", fg="red", bold=True)
        lines.append("")
        lines.append(f"connection {conn.index}: A {conn.a_client or '-'} -> {conn.a_server or '-'} "
                     f"({conn.segments_a} segments) | B {conn.b_client or '-'} -> {conn.b_server or '-'} "
                     f"({conn.segments_b} segments): {verdict}")
        pairs = conn.pairs
        if not pairs:  # beyond the kept connections: show the recorded differences only
            pairs = [(r.segment, r.a, r.b, r.fields) for r in rows_by_conn.get(conn.index, [])]
        col = min(width, max([len(v.text()) for _p, va, vb, _f in pairs for v in (va, vb) if v] or [6]))
        lines.append(f"  {'#':>4}  {'A':<{col}}  B")
        last = -1
        for pos, va, vb, fields in pairs:
            if pos != last + 1:
                lines.append(f"  {'…':>4}")
            last = pos
            ta = _fit(va.text(), col) if va else "(none)"
            tb = _fit(vb.text(), col) if vb else "(none)"
            if fields:
                ta = style(ta.ljust(col), fg="red")
                tb = style(tb.ljust(col), fg="red")
                note = style(" " + ", ".join(fields), fg="yellow")
                lines.append(f"! {pos + 1:>4}  {ta}  {tb}{note}")
            else:
                lines.append(f"  {pos + 1:>4}  {ta.ljust(col)}  {tb}")
        shown = sum(1 for p in pairs if p[3])
        if conn.differences > shown:
            lines.append(f"  … {conn.differences - shown} more differences not shown")
    if hidden:
        lines.append("")
        lines.append(f"({hidden} identical connection{'s' if hidden != 1 else ''} not shown)")
    lines.append("")
    summary = result.summary()
    lines.append(style(summary, fg="green" if result.same else "red", bold=True))
    return "\n".join(lines) + "\n"
