"""Recorded socket states as pcapng packet comments, written into a capture and read back.

Wireshark shows a packet's comments in its tree and under Statistics › Capture File Properties, and
``tshark -T fields -e frame.comment`` prints them, so a capture annotated here tells its whole story
without rawtcp. Each packet of a connection with recorded states gets::

    states: rawtcp ESTABLISHED | kernel SYN-RECEIVED        (each recorder's state when it was captured)

and each recorded change rides on the first packet captured after it (the last packet takes the
late ones), exact enough for the ladder to place it again::

    state kernel 198.18.0.2:8080 peer 198.18.0.1:40000 LISTEN -> SYN-RECEIVED at 1700000000.001000

Comments a writer was given (see rawtcp.capture.pcap.packet_comment: the states it knew as it wrote
the packet, the lab's notes) are kept; the summary then names only the recorders the writer did not.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Iterable
from typing import Any

from rawtcp.capture.decode import decode_tcp
from rawtcp.capture.errors import CaptureError
from rawtcp.capture.pcap import ReadReport, _block, epb, iter_frames, pcapng_header, split_comment

STATE_PREFIX = "state "
SUMMARY_PREFIX = "states: "
_STATE_RE = re.compile(r"^state (\S+) (\S+) peer (\S+) (\S+) -> (\S+) at (-?[0-9]+(?:\.[0-9]*)?)$")
_WHO_ORDER = ("rawtcp", "kernel")


def _state_name(name: str) -> str:
    from rawtcp.capture.streams import state_from_name

    state = state_from_name(name)
    return str(state) if state is not None else name


def _peer_key(peer: str) -> str:
    """Listener records carry no peer (``0.0.0.0:0``, ``*``, empty): one key for all of them."""
    peer = peer.strip()
    return "*" if not peer or peer == "*" or peer.endswith(":0") else peer


def state_comment(event: dict[str, Any]) -> str:
    """One recorded change as a comment line (see the module docstring)."""
    peer = _peer_key(str(event["peer"]))
    return (f"{STATE_PREFIX}{event['who']} {event['addr']} peer {peer} {_state_name(str(event['old']))} -> "
            f"{_state_name(str(event['new']))} at {float(event['time']):.6f}")


def parse_state_comment(text: str) -> dict[str, Any] | None:
    """The event a ``state …`` comment holds, as the side-car spells it; None for any other comment."""
    m = _STATE_RE.match(text.strip())
    if m is None:
        return None
    who, addr, peer, old, new, time = m.groups()
    return {"time": float(time), "who": who, "addr": addr, "peer": "" if peer == "*" else peer,
            "old": old, "new": new}


def is_generated(text: str) -> bool:
    """Comments this module writes (replaced when a capture is annotated again)."""
    return text.startswith(STATE_PREFIX) or text.startswith(SUMMARY_PREFIX)


def shown_comments(comments: Iterable[str]) -> tuple[str, ...]:
    """What a reader shows of a packet's comments: the lab's notes. States are drawn from the recorded
    changes instead (a per-packet "rawtcp X" beside every arrow would only repeat them)."""
    notes = (split_comment(c)[1] for c in comments if not is_generated(c))
    return tuple(n for n in notes if n)


class _Sweep:
    """Each recorder's current state per socket, advanced through the events in time order."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = sorted(events, key=lambda ev: float(ev["time"]))
        self.i = 0
        self.current: dict[tuple[str, str, str], tuple[float, str]] = {}

    def advance(self, ts: float) -> list[dict[str, Any]]:
        """Take every event up to ``ts``; return them (they ride on the packet captured at ``ts``)."""
        taken = []
        while self.i < len(self.events) and float(self.events[self.i]["time"]) <= ts:
            ev = self.events[self.i]
            self.current[(str(ev["who"]), str(ev["addr"]).strip(), _peer_key(str(ev["peer"])))] = (
                float(ev["time"]), _state_name(str(ev["new"])))
            taken.append(ev)
            self.i += 1
        return taken

    def summary(self, a: str, b: str, known: Iterable[str] = ()) -> str | None:
        """``rawtcp X | kernel Y`` for the connection between endpoints ``a`` and ``b``, leaving out
        the recorders in ``known`` (the writer put their state on the packet itself)."""
        parts = []
        whos = sorted({key[0] for key in self.current} - set(known), key=lambda w: (*_WHO_ORDER, w).index(w))
        for who in whos:
            found = [self.current.get((who, x, y)) for x, y in ((a, b), (b, a), (a, "*"), (b, "*"))]
            best = max((f for f in found if f is not None), default=None)
            if best is not None:
                parts.append(f"{who} {best[1]}")
        return SUMMARY_PREFIX + " | ".join(parts) if parts else None


def annotate_capture(path: str | os.PathLike[str], events: Iterable[dict[str, Any]]) -> None:
    """Rewrite ``path`` as pcapng with the recorded ``events`` as packet comments (see above).

    Any pcap or pcapng is accepted (tcpdump writes classic pcap whatever the name); frames, their
    times (to the microsecond), link types and the writer's own comments are kept.
    """
    from rawtcp.capture.streams import endpoint_name

    name = os.fspath(path)
    sweep = _Sweep(list(events))
    report = ReadReport(name)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(name) or ".", suffix=".pcapng")
    try:
        with os.fdopen(fd, "wb") as out:
            interfaces: dict[int, int] = {}
            pending: tuple[int, int, bytes, int, list[str], tuple[str, str] | None] | None = None

            def flush(last: bool) -> None:
                assert pending is not None
                ifid, units, data, origlen, comments, _ends = pending
                if last:  # changes after the last packet still belong to the run
                    comments += [state_comment(ev) for ev in sweep.advance(float("inf"))]
                out.write(epb(units, data, origlen, comments, ifid))

            for ts, linktype, buf, off, caplen in iter_frames(name, report):
                data = bytes(buf[off:off + caplen])
                if linktype not in interfaces:
                    if not interfaces:
                        out.write(pcapng_header(linktype, 262144))
                    else:
                        out.write(_block(1, struct.pack("<HHI", linktype, 0, 262144)))
                    interfaces[linktype] = len(interfaces)
                if pending is not None:
                    flush(False)
                pkt = decode_tcp(linktype, data)
                ends = None
                if pkt is not None:
                    ends = (endpoint_name((pkt.src, pkt.sport)), endpoint_name((pkt.dst, pkt.dport)))
                comments = [c for c in report.comments if not is_generated(c)]
                changes = [state_comment(ev) for ev in sweep.advance(ts)]
                # A writer's own "rawtcp X" is exact (taken as the packet was written): only the
                # recorders it did not know of (the kernel's, read later from the tracepoint) are added.
                known = {who for c in comments for who in split_comment(c)[0]}
                summary = sweep.summary(*ends, known) if ends is not None else None
                if summary is not None:
                    comments.append(summary)
                units = round(ts * 1_000_000)
                pending = (interfaces[linktype], units, data, max(report.wire_len, caplen), comments + changes, ends)
            if pending is not None:
                flush(True)
            elif report.packets == 0:
                raise CaptureError(f"no packets in {name} to annotate")
        os.replace(tmp, name)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
