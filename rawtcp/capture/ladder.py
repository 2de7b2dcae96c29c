"""Ladder (sequence) diagrams of TCP streams: terminal text, optionally coloured, and standalone SVG.

Each segment is one arrow between the two endpoints' columns, labelled the way tcpdump prints it
(flags ``S``, ``S.``, ``P.``, ``F.``, ``R``, ``.``), with seq/ack relative as tshark counts them (or
absolute), length, window, options and time; each end's TCP state stands beside the arrow (recorded
states from a side-car are marked ``*``).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import click

from rawtcp.capture.streams import StateEvent, Stream, StreamSegment
from rawtcp.core.segment import flags_str, format_options
from rawtcp.core.state import State

_STATE_W = 12  # len("SYN-RECEIVED")
_MIN_ARROW = 56


def seg_numbers(seg: StreamSegment, absolute: bool = False) -> tuple[int, int]:
    return (seg.tcp.seq, seg.tcp.ack) if absolute else (seg.rel_seq, seg.rel_ack)


def segment_label(seg: StreamSegment, absolute: bool = False) -> str:
    """``S. seq 0 ack 1 len 0 win 65160`` (ack only when the ACK flag is set, as tcpdump)."""
    pkt = seg.tcp
    seq, ack = seg_numbers(seg, absolute)
    text = f"{flags_str(pkt.flags)} seq {seq}"
    if pkt.flags & 0x10:
        text += f" ack {ack}"
    return text + f" len {pkt.payload_len} win {pkt.window}"


def options_label(seg: StreamSegment) -> str:
    return f"<{format_options(seg.tcp.options)}>" if seg.tcp.options else ""


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
    opts = [options_label(s) for s in segs]
    width = max([_MIN_ARROW, *(len(x) + 10 for x in labels), *(len(x) + 4 for x in opts)])
    left, right = stream.client_name, stream.server_name
    t0 = segs[0].ts if segs else 0.0
    numbers = "absolute" if absolute else "relative (tshark)"
    lines = [style(f"stream {stream.index}: {left} (client) <-> {right} (server), {len(segs)} segments, "
                   f"{numbers} seq/ack", bold=True)]
    head_mid = left.ljust(width // 2) + right.rjust(width - width // 2)
    lines.append(f"{'time':>10}  {'client':<{_STATE_W}}  {head_mid}  server")
    pad = " " * (10 + 2 + _STATE_W + 2)

    events = sorted(stream.events, key=lambda e: e.ts)
    ei = 0
    prev: tuple[str, str] | None = None
    recorded_seen = bool(events)

    def event_line(ev: StateEvent) -> str:
        text = f"({ev.who}) {ev.old} -> {ev.new}"
        cstate = _state_text(ev.new, True) if ev.client_side else ""
        sstate = "" if ev.client_side else _state_text(ev.new, True)
        mid = ("  " + text).ljust(width) if ev.client_side else (text + "  ").rjust(width)
        return (f"{ev.ts - t0:>10.6f}  {style(cstate.ljust(_STATE_W), fg='magenta')}  :"
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
        lines.append(f"{seg.ts - t0:>10.6f}  {cs}  |{style(arrow, fg=colour)}|  {ss}")
        if opt:
            lines.append(f"{pad}|{style(opt.center(inner), dim=True)}|")
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
_ROW = 46
_DROP = 22  # how far an arrow slants down: the segment takes time to cross
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


def _stream_svg(stream: Stream, top: float, absolute: bool) -> tuple[list[str], float]:
    out: list[str] = []
    segs = stream.segments
    rows = len(segs) + len(stream.events)
    bottom = top + _HEADER + rows * _ROW + 30
    numbers = "absolute" if absolute else "relative"
    out.append(f'<g class="stream" id="stream-{stream.index}">')
    out.append(_t(_SVG_W / 2, top + 22, f"TCP stream {stream.index} ({numbers} seq/ack)", anchor="middle",
                  size=16, weight="bold"))
    for x, name, role in ((_X_LEFT, stream.client_name, "client"), (_X_RIGHT, stream.server_name, "server")):
        out.append(f'<rect x="{x - 95}" y="{top + 34}" width="190" height="40" rx="6" class="endpoint"/>')
        out.append(_t(x, top + 51, role, anchor="middle", weight="bold"))
        out.append(_t(x, top + 67, name, anchor="middle", size=12))
        out.append(f'<line x1="{x}" y1="{top + 74}" x2="{x}" y2="{bottom - 10}" class="lifeline"/>')
    out.append(_t(20, top + _HEADER - 6, "time (s)", size=11, cls="muted"))
    out.append(_t(_X_LEFT - 12, top + _HEADER - 6, "client state", anchor="end", size=11, cls="muted"))
    out.append(_t(_X_RIGHT + 12, top + _HEADER - 6, "server state", size=11, cls="muted"))
    t0 = segs[0].ts if segs else 0.0
    items: list[tuple[float, int, StreamSegment | StateEvent]] = [(s.ts, 1, s) for s in segs]
    items += [(e.ts, 0, e) for e in stream.events]
    items.sort(key=lambda item: (item[0], item[1]))
    y = top + _HEADER + 10
    for _ts, _kind, item in items:
        if isinstance(item, StateEvent):
            x = _X_LEFT - 12 if item.client_side else _X_RIGHT + 12
            out.append(_t(x, y + 12, f"{item.new}*", anchor="end" if item.client_side else "start",
                          cls="recorded", weight="bold"))
            out.append(_t(_SVG_W / 2, y + 12, f"{item.who}: {item.old} \u2192 {item.new}", anchor="middle",
                          size=11, cls="recorded"))
            out.append(_t(20, y + 12, f"{item.ts - t0:.6f}", size=11, cls="muted"))
            y += _ROW
            continue
        seg = item
        x1, x2 = (_X_LEFT, _X_RIGHT) if seg.from_client else (_X_RIGHT, _X_LEFT)
        name = _flag_colour(seg.tcp.flags)
        colour = _SVG_COLOURS[name]
        out.append(f'<line x1="{x1}" y1="{y:.1f}" x2="{x2}" y2="{y + _DROP:.1f}" stroke="{colour}" '
                   f'class="segment" marker-end="url(#arrow-{name})"/>')
        mid_y = y + _DROP / 2
        # Above the arrow (it passes through mid_y at the centre), not through it.
        out.append(_t(_SVG_W / 2, mid_y - 10, segment_label(seg, absolute), anchor="middle", fill=colour,
                      cls="label"))
        opt = options_label(seg)
        if opt:
            out.append(_t(_SVG_W / 2, mid_y + 15, opt, anchor="middle", size=10, cls="options"))
        out.append(_t(20, y + 5, f"{seg.ts - t0:.6f}", size=11, cls="muted"))
        arrive = y + _DROP + 4
        cstate = _state_text(seg.client_state, seg.client_recorded)
        sstate = _state_text(seg.server_state, seg.server_recorded)
        out.append(_t(_X_LEFT - 12, (arrive if not seg.from_client else y + 4), cstate, anchor="end",
                      cls="state"))
        out.append(_t(_X_RIGHT + 12, (arrive if seg.from_client else y + 4), sstate, cls="state"))
        y += _ROW
    out.append("</g>")
    return out, bottom


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
    legend_y = top + 10
    body.append(_t(20, legend_y, "flags as tcpdump prints them: S SYN, F FIN, R RST, P PSH, . ACK;"
                   " * = state recorded during the run", size=11, cls="muted"))
    height = int(legend_y + 20)
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
        ".options{fill:#555}.state{fill:#222;font-weight:bold}.recorded{fill:#8e44ad}</style>",
        "</defs>",
        f'<rect x="0" y="0" width="{_SVG_W}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"
