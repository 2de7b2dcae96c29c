"""Ladder (sequence) diagrams of TCP streams: terminal text, optionally coloured, and standalone SVG.

Each segment is one row: its frame number (tshark's ``frame.number``), time, and an arrow between the
two endpoints' columns labelled the way tcpdump prints it (flags ``S``, ``S.``, ``P.``, ``F.``, ``R``,
``.``), with seq/ack — and SACK blocks — relative as tshark counts them (or absolute), window, length,
options (``rawtcp.core.segment.segment_line``, as every text view of a segment); each end's TCP state
stands beside the arrow (states recorded during the run are marked ``*``), and Wireshark's expert
markers (``[TCP Dup ACK 7#2]``, ``[TCP Retransmission]``…) follow it. The capture's own comments on a
packet (the lab's notes) go on a line below it.

Arrows are horizontal: one vantage point cannot tell how long a segment took to cross, and a slant
would claim it knows.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import click

from rawtcp.capture.decode import Option
from rawtcp.capture.streams import StateEvent, Stream, StreamSegment
from rawtcp.core.segment import flags_str, format_options, options_word, segment_line
from rawtcp.core.seq import MASK as SEQ_MASK
from rawtcp.core.state import State

_STATE_W = 12  # len("SYN-RECEIVED")
_MIN_ARROW = 56


def seg_numbers(seg: StreamSegment, absolute: bool = False) -> tuple[int, int]:
    return (seg.tcp.seq, seg.tcp.ack) if absolute else (seg.rel_seq, seg.rel_ack)


def segment_label(seg: StreamSegment, absolute: bool = False) -> str:
    """``S. seq 0 ack 1 win 65160 len 0``: the segment line without its options (they go beneath)."""
    pkt = seg.tcp
    seq, ack = seg_numbers(seg, absolute)
    return segment_line(pkt.flags, seq, ack, pkt.window, pkt.payload_len)


def relative_options(seg: StreamSegment) -> tuple[Option, ...]:
    """The options with SACK edges made relative, as tshark shows them.

    A SACK block names bytes of the *other* direction (RFC 2018), so its base is the one the ACK
    field is made relative with: ``ack - rel_ack``.
    """
    pkt = seg.tcp
    if not pkt.flags & 0x10 or not any(k == "SAck" for k, _v in pkt.options):
        return pkt.options
    base = (pkt.ack - seg.rel_ack) & SEQ_MASK
    return tuple((k, tuple((e - base) & SEQ_MASK for e in v) if k == "SAck" and isinstance(v, tuple) else v)
                 for k, v in pkt.options)


def options_label(seg: StreamSegment, absolute: bool = False) -> str:
    return options_word(seg.tcp.options if absolute else relative_options(seg))


def markers_label(seg: StreamSegment) -> str:
    """Wireshark's expert markers, as its info column prints them: ``[TCP Dup ACK 7#2]``."""
    return " ".join(f"[{label}]" for label in seg.analysis.labels())


def segment_json(seg: StreamSegment, absolute: bool = False, t0: float = 0.0) -> dict[str, Any]:
    """One segment for ``ladder --json``: frame, time, direction, numbers, states, markers, comments."""
    pkt = seg.tcp
    seq, ack = seg_numbers(seg, absolute)
    doc: dict[str, Any] = {
        "frame": seg.number, "time": round(seg.ts - t0, 6), "direction": "client->server" if seg.from_client
        else "server->client", "flags": flags_str(pkt.flags), "seq": seq, "ack": ack if pkt.flags & 0x10 else None,
        "len": pkt.payload_len, "window": pkt.window,
        "options": format_options(pkt.options if absolute else relative_options(seg)),
        "client_state": None if seg.client_state is None else str(seg.client_state),
        "server_state": None if seg.server_state is None else str(seg.server_state),
        "client_recorded": seg.client_recorded, "server_recorded": seg.server_recorded,
        **seg.analysis.to_json(), "labels": seg.analysis.labels(),
    }
    if pkt.truncated:
        doc["truncated"] = True
    if seg.comments:
        doc["comments"] = list(seg.comments)
    return doc


def stream_json(stream: Stream, absolute: bool = False) -> dict[str, Any]:
    t0 = stream.segments[0].ts if stream.segments else 0.0
    return {"stream": stream.index, "client": stream.client_name, "server": stream.server_name,
            "numbers": "absolute" if absolute else "relative", "start": t0,
            "segments": [segment_json(s, absolute, t0) for s in stream.segments],
            "events": [{"time": round(e.ts - t0, 6), "who": e.who, "side": "client" if e.client_side else "server",
                        "old": str(e.old), "new": str(e.new)} for e in stream.events]}


def _state_text(state: State | str | None, recorded: bool) -> str:
    if state is None:
        return ""
    return f"{state}{'*' if recorded else ''}"


def _flag_colour(flags: int) -> str:
    if flags & 0x04:
        return "red"
    if flags & 0x02:
        return "green"
    if flags & 0x01:
        return "blue"
    return "cyan" if flags & 0x08 else "white"


def render_text(stream: Stream, *, absolute: bool = False, color: bool = False) -> str:
    """The stream as a text ladder; ``color`` adds ANSI colours (the CLI decides: TTY or forced)."""

    def style(text: str, **kw: object) -> str:
        return click.style(text, **kw) if color else text  # type: ignore[arg-type]

    segs = stream.segments
    labels = [segment_label(s, absolute) for s in segs]
    opts = [options_label(s, absolute) for s in segs]
    width = max([_MIN_ARROW, *(len(x) + 10 for x in labels), *(len(x) + 4 for x in opts)])
    left, right = stream.client_name, stream.server_name
    t0 = segs[0].ts if segs else 0.0
    numbers = "absolute" if absolute else "relative (tshark)"
    lines = [style(f"stream {stream.index}: {left} (client) <-> {right} (server), {len(segs)} segments, "
                   f"{numbers} seq/ack", bold=True)]
    head_mid = left.ljust(width // 2) + right.rjust(width - width // 2)
    lines.append(f"{'frame':>6}  {'time':>10}  {'client':<{_STATE_W}}  {head_mid}  server")
    pad = " " * (6 + 2 + 10 + 2 + _STATE_W + 2)

    events = sorted(stream.events, key=lambda e: e.ts)
    ei = 0
    prev: tuple[str, str] | None = None
    recorded_seen = bool(events)

    def event_line(ev: StateEvent) -> str:
        text = f"({ev.who}) {ev.old} -> {ev.new}"
        cstate = _state_text(ev.new, True) if ev.client_side else ""
        sstate = "" if ev.client_side else _state_text(ev.new, True)
        mid = ("  " + text).ljust(width) if ev.client_side else (text + "  ").rjust(width)
        return (f"{'':>6}  {ev.ts - t0:>10.6f}  {style(cstate.ljust(_STATE_W), fg='magenta')}  :"
                f"{style(mid[1:-1], fg='magenta', dim=True)}:  {style(sstate, fg='magenta')}")

    for seg, label, opt in zip(segs, labels, opts, strict=True):
        while ei < len(events) and events[ei].ts < seg.ts:
            lines.append(event_line(events[ei]))
            ei += 1
        inner = width - 2
        body = f" {label} "
        dashes = inner - len(body) - 1
        if seg.from_client:
            arrow = "-" * (dashes // 2) + body + "-" * (dashes - dashes // 2) + ">"
        else:
            arrow = "<" + "-" * (dashes // 2) + body + "-" * (dashes - dashes // 2)
        colour = _flag_colour(seg.tcp.flags)
        cstate = _state_text(seg.client_state, seg.client_recorded)
        sstate = _state_text(seg.server_state, seg.server_recorded)
        changed = prev is None or (cstate, sstate) != prev
        cs = style(cstate.ljust(_STATE_W), bold=changed, dim=not changed)
        ss = style(sstate, bold=changed, dim=not changed)
        row = f"{seg.number:>6}  {seg.ts - t0:>10.6f}  {cs}  |{style(arrow, fg=colour)}|  {ss}"
        marks = markers_label(seg)
        if marks:
            row += " " * (_STATE_W + 1 - len(sstate)) + "  " + style(marks, fg="red", bold=True)
        lines.append(row)
        if opt:
            lines.append(f"{pad}|{style(opt.center(inner), dim=True)}|")
        for comment in seg.comments:
            lines.append(f"{pad}|{style(('  # ' + comment).ljust(inner), fg='magenta', dim=True)}|")
        prev = (cstate, sstate)
    while ei < len(events):
        lines.append(event_line(events[ei]))
        ei += 1
    if recorded_seen:
        whos = sorted({e.who for e in events})
        lines.append(f"{pad}* state recorded during the run ({', '.join(whos)})")
    return "\n".join(lines) + "\n"


# --- SVG ---------------------------------------------------------------------------------------

_SVG_W = 1000
_X_LEFT, _X_RIGHT = 290, 710
_ROW = 50
_LINE = 13  # each extra line under an arrow (options, markers, comments)
_HEADER = 92
_SVG_COLOURS = {"red": "#c0392b", "green": "#1e8449", "blue": "#1f4e9c", "cyan": "#117a8b", "white": "#333333"}


def _t(x: float, y: float, text: str, *, anchor: str = "start", size: int = 13, cls: str = "",
       fill: str | None = None, weight: str | None = None) -> str:
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
    if cls:
        attrs += f' class="{cls}"'
    if fill:
        attrs += f' fill="{fill}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    return f"<text {attrs}>{escape(text)}</text>"


def _row_lines(seg: StreamSegment, absolute: bool) -> list[tuple[str, str]]:
    """The small lines under a segment's arrow: options, expert markers, comments (class, text)."""
    lines = []
    opt = options_label(seg, absolute)
    if opt:
        lines.append(("options", opt))
    marks = markers_label(seg)
    if marks:
        lines.append(("marker", marks))
    lines += [("comment", f"# {c}") for c in seg.comments]
    return lines


def _stream_svg(stream: Stream, top: float, absolute: bool) -> tuple[list[str], float]:
    out: list[str] = []
    segs = stream.segments
    t0 = segs[0].ts if segs else 0.0
    items: list[tuple[float, int, StreamSegment | StateEvent]] = [(s.ts, 1, s) for s in segs]
    items += [(e.ts, 0, e) for e in stream.events]
    items.sort(key=lambda item: (item[0], item[1]))
    extra = {id(s): _row_lines(s, absolute) for s in segs}
    height = sum(_ROW + (_LINE * max(0, len(extra[id(i)]) - 1) if isinstance(i, StreamSegment) else _ROW)
                 for _t0, _k, i in items)
    bottom = top + _HEADER + height + 30
    numbers = "absolute" if absolute else "relative"
    out.append(f'<g class="stream" id="stream-{stream.index}">')
    out.append(_t(_SVG_W / 2, top + 22, f"TCP stream {stream.index} ({numbers} seq/ack)", anchor="middle",
                  size=16, weight="bold"))
    for x, name, role in ((_X_LEFT, stream.client_name, "client"), (_X_RIGHT, stream.server_name, "server")):
        out.append(f'<rect x="{x - 95}" y="{top + 34}" width="190" height="40" rx="6" class="endpoint"/>')
        out.append(_t(x, top + 51, role, anchor="middle", weight="bold"))
        out.append(_t(x, top + 67, name, anchor="middle", size=12))
        out.append(f'<line x1="{x}" y1="{top + 74}" x2="{x}" y2="{bottom - 10}" class="lifeline"/>')
    out.append(_t(12, top + _HEADER - 6, "frame", size=11, cls="muted"))
    out.append(_t(62, top + _HEADER - 6, "time (s)", size=11, cls="muted"))
    out.append(_t(_X_LEFT - 12, top + _HEADER - 6, "client state", anchor="end", size=11, cls="muted"))
    out.append(_t(_X_RIGHT + 12, top + _HEADER - 6, "server state", size=11, cls="muted"))
    y = top + _HEADER + 16
    for _ts, _kind, item in items:
        if isinstance(item, StateEvent):
            x = _X_LEFT - 12 if item.client_side else _X_RIGHT + 12
            out.append(_t(x, y + 4, f"{item.new}*", anchor="end" if item.client_side else "start",
                          cls="recorded", weight="bold"))
            out.append(_t(_SVG_W / 2, y + 4, f"{item.who}: {item.old} \u2192 {item.new}", anchor="middle",
                          size=11, cls="recorded"))
            out.append(_t(62, y + 4, f"{item.ts - t0:.6f}", size=11, cls="muted"))
            y += _ROW
            continue
        seg = item
        x1, x2 = (_X_LEFT, _X_RIGHT) if seg.from_client else (_X_RIGHT, _X_LEFT)
        name = _flag_colour(seg.tcp.flags)
        colour = _SVG_COLOURS[name]
        marked = " marked" if seg.analysis else ""
        # Horizontal: the capture saw the segment at one instant, from one place.
        out.append(f'<line x1="{x1}" y1="{y:.1f}" x2="{x2}" y2="{y:.1f}" stroke="{colour}" '
                   f'class="segment{marked}" marker-end="url(#arrow-{name})"><title>frame {seg.number}</title></line>')
        out.append(_t(_SVG_W / 2, y - 7, segment_label(seg, absolute), anchor="middle", fill=colour, cls="label"))
        for k, (cls, text) in enumerate(extra[id(seg)]):
            out.append(_t(_SVG_W / 2, y + 15 + k * _LINE, text, anchor="middle", size=10, cls=cls))
        out.append(_t(12, y + 4, str(seg.number), size=11, cls="frame"))
        out.append(_t(62, y + 4, f"{seg.ts - t0:.6f}", size=11, cls="muted"))
        cstate = _state_text(seg.client_state, seg.client_recorded)
        sstate = _state_text(seg.server_state, seg.server_recorded)
        out.append(_t(_X_LEFT - 12, y + 4, cstate, anchor="end", cls="recorded state" if seg.client_recorded
                      else "state"))
        out.append(_t(_X_RIGHT + 12, y + 4, sstate, cls="recorded state" if seg.server_recorded else "state"))
        y += _ROW + _LINE * max(0, len(extra[id(seg)]) - 1)
    out.append("</g>")
    return out, bottom


_LEGEND = [
    ("#1e8449", "S", "SYN"), ("#1f4e9c", "F", "FIN"), ("#c0392b", "R", "RST"), ("#117a8b", "P", "PSH (data)"),
    ("#333333", ".", "ACK only"),
]


def _legend(top: float) -> tuple[list[str], float]:
    """What the colours, stars and red lines mean, and why the arrows are flat."""
    out = [f'<g class="legend" transform="translate(20,{top:.1f})">',
           '<rect x="0" y="0" width="960" height="96" rx="6" class="legend-box"/>',
           _t(12, 20, "Legend", weight="bold", size=12)]
    x = 80.0
    for rgb, letter, meaning in _LEGEND:
        out.append(f'<line x1="{x}" y1="16" x2="{x + 28}" y2="16" stroke="{rgb}" stroke-width="2"/>')
        out.append(_t(x + 34, 20, f"{letter} {meaning}", size=11))
        x += 150
    out.append(_t(12, 42, "flags as tcpdump prints them (S. = SYN-ACK, P. = data with ACK); seq/ack/SACK relative "
                  "as tshark counts them unless absolute", size=11, cls="muted"))
    out.append(_t(12, 59, "STATE* = recorded during the run (kernel or rawtcp), never overridden; "
                  "STATE = inferred from the segments", size=11, cls="recorded"))
    out.append(_t(12, 76, "[TCP …] = Wireshark's expert info for that frame (same rules as tcp.analysis.*); "
                  "# = the capture's comment on the packet", size=11, cls="marker"))
    out.append(_t(12, 91, "arrows are horizontal: one capture point cannot tell how long a segment took to cross",
                  size=10, cls="muted"))
    out.append("</g>")
    return out, top + 106


def render_svg(streams: list[Stream], *, absolute: bool = False, title: str | None = None) -> str:
    """A standalone SVG document (no scripts, no external resources) with one ladder per stream."""
    body: list[str] = []
    top = 40.0 if title else 0.0
    if title:
        body.append(_t(_SVG_W / 2, 26, title, anchor="middle", size=18, weight="bold"))
    for stream in streams:
        part, top = _stream_svg(stream, top, absolute)
        body += part
        top += 20
    legend, bottom = _legend(top + 4)
    body += legend
    height = int(bottom)
    head = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_SVG_W}" height="{height}" '
        f'viewBox="0 0 {_SVG_W} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">',
        f"<title>{escape(title or 'TCP ladder')}</title>",
        "<defs>",
        *(f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
          f'markerHeight="8" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="{rgb}"/></marker>'
          for name, rgb in _SVG_COLOURS.items()),
        "<style>.lifeline{stroke:#888;stroke-width:2;stroke-dasharray:4 3}"
        ".endpoint{fill:#f4f6f8;stroke:#555}.segment{stroke-width:1.6}.muted{fill:#777}"
        ".options{fill:#555}.state{fill:#222;font-weight:bold}.recorded{fill:#8e44ad}"
        ".marker{fill:#c0392b;font-weight:bold}.comment{fill:#8e44ad;font-style:italic}.frame{fill:#555}"
        ".segment.marked{stroke-dasharray:6 3}.legend-box{fill:#fafafa;stroke:#bbb}</style>",
        "</defs>",
        f'<rect x="0" y="0" width="{_SVG_W}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"
