"""TCP packets grouped into streams, numbered and made relative exactly as tshark does.

tshark (checked against 4.0, single pass) numbers a stream (``tcp.stream``) when its address/port pair
is first seen, and keeps one base sequence number per direction:

* a segment with SYN sets its direction's base to its seq (a SYN-ACK retransmitted with another seq
  re-bases that direction);
* the first segment of a direction without SYN sets the base to seq - 1, so it shows as 1;
* the first segment with ACK sets the *other* direction's base to ack - 1 if that base is still unset;
* a SYN without ACK whose seq differs from its direction's base starts a new stream (port reuse);
* ``tcp.seq`` = seq - base(own direction), ``tcp.ack`` = ack - base(other direction) when ACK is set,
  and the raw ack field otherwise; both modulo 2**32.

Roles: the client is the sender of a SYN without ACK, or the receiver of a SYN-ACK, else the stream's
first sender. Both ends' states are inferred from the segments (RFC 9293 §3.3.2 diagram); recorded
states (``state …`` comments in a pcapng, else the ``<capture>.states.json`` side-car) take
precedence and are never contradicted (see :func:`overlay_states`). Each segment also carries
Wireshark's expert analysis (rawtcp.capture.analysis) and the capture's comments on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rawtcp.capture.analysis import NONE, Analysis, ConversationAnalysis
from rawtcp.capture.annotate import parse_state_comment, shown_comments
from rawtcp.capture.decode import TcpPacket, decode_tcp
from rawtcp.capture.pcap import ReadReport, iter_packets
from rawtcp.capture.sidecar import read_notes, read_sidecar
from rawtcp.core.seq import MASK as SEQ_MASK
from rawtcp.core.state import State

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# Linux's names (sock:inet_sock_set_state, ss) and the RFC names, to State.
_STATE_NAMES: dict[str, State] = {
    "SYN_RECV": State.SYN_RECEIVED, "NEW_SYN_RECV": State.SYN_RECEIVED, "SYN_RCVD": State.SYN_RECEIVED,
    "FIN_WAIT1": State.FIN_WAIT_1, "FIN_WAIT2": State.FIN_WAIT_2, "CLOSE": State.CLOSED,
}
for _state in State:
    _STATE_NAMES[_state.value] = _state
    _STATE_NAMES[_state.name] = _state


def state_from_name(name: str) -> State | None:
    """Map ``SYN_RECV``, ``FIN_WAIT1``, ``CLOSE``, ``SYN-RECEIVED``… to a State (None if unknown)."""
    return _STATE_NAMES.get(name.strip().upper().replace("TCP_", "", 1))


@dataclass(slots=True)
class StreamSegment:
    """One segment of a stream, as the ladder shows it."""

    number: int  # frame number in the file, 1-based like tshark's frame.number
    ts: float
    from_client: bool
    tcp: TcpPacket
    rel_seq: int
    rel_ack: int
    client_state: State | str | None = None
    server_state: State | str | None = None
    client_recorded: bool = False  # the state was recorded during the run, not inferred
    server_recorded: bool = False
    analysis: Analysis = NONE  # what Wireshark's expert info says about this segment
    comments: tuple[str, ...] = ()  # the capture's own comments on the packet (the lab's notes)


@dataclass(slots=True)
class StateEvent:
    """A recorded state change placed on a stream: which end, who recorded it, old -> new."""

    ts: float
    client_side: bool
    who: str
    old: State | str
    new: State | str


@dataclass
class Stream:
    index: int
    client: tuple[str, int]
    server: tuple[str, int]
    segments: list[StreamSegment] = field(default_factory=list)
    events: list[StateEvent] = field(default_factory=list)

    @property
    def client_name(self) -> str:
        return endpoint_name(self.client)

    @property
    def server_name(self) -> str:
        return endpoint_name(self.server)


def endpoint_name(end: tuple[str, int]) -> str:
    ip, port = end
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _Conv:
    """Per-stream bookkeeping; direction 0 is client -> server, 1 is server -> client."""

    __slots__ = ("base", "base_set", "client", "index", "server")

    def __init__(self, index: int, client: tuple[str, int], server: tuple[str, int]) -> None:
        self.index = index
        self.client = client
        self.server = server
        self.base = [0, 0]
        self.base_set = [False, False]


class StreamTracker:
    """Assigns tshark's stream index and relative seq/ack to TCP packets fed in capture order."""

    def __init__(self) -> None:
        self._convs: dict[tuple[str, int, str, int], tuple[_Conv, int]] = {}
        self.count = 0

    def track(self, pkt: TcpPacket) -> tuple[_Conv, int, int, int]:
        """Return ``(conv, direction, rel_seq, rel_ack)`` for the next packet in capture order."""
        flags = pkt.flags
        entry = self._convs.get((pkt.src, pkt.sport, pkt.dst, pkt.dport))
        if entry is not None:
            conv, d = entry
            # A new SYN on a known pair with another ISN is port reuse: tshark opens a new stream.
            if flags & (SYN | ACK) == SYN and conv.base_set[d] and pkt.seq != conv.base[d]:
                entry = None
        if entry is None:
            conv, d = self._new(pkt)
        base, base_set = conv.base, conv.base_set
        if flags & SYN:
            base[d] = pkt.seq
            base_set[d] = True
        elif not base_set[d]:
            base[d] = (pkt.seq - 1) & SEQ_MASK
            base_set[d] = True
        if flags & ACK:
            r = 1 - d
            if not base_set[r]:
                base[r] = (pkt.ack - 1) & SEQ_MASK
                base_set[r] = True
            rel_ack = (pkt.ack - base[r]) & SEQ_MASK
        else:
            rel_ack = pkt.ack
        return conv, d, (pkt.seq - base[d]) & SEQ_MASK, rel_ack

    def _new(self, pkt: TcpPacket) -> tuple[_Conv, int]:
        a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
        # The SYN-ACK's sender is the server; otherwise whoever speaks first is taken as the client.
        a_is_client = not (pkt.flags & SYN and pkt.flags & ACK)
        client, server = (a, b) if a_is_client else (b, a)
        conv = _Conv(self.count, client, server)
        self.count += 1
        self._convs[(*client, *server)] = (conv, 0)
        self._convs[(*server, *client)] = (conv, 1)
        return conv, 0 if a_is_client else 1


def iter_tracked(path: str | os.PathLike[str], report: ReadReport | None = None,
                 ) -> Iterator[tuple[int, float, TcpPacket, _Conv, int, int, int]]:
    """``(frame_number, ts, packet, conv, direction, rel_seq, rel_ack)`` for every TCP packet."""
    tracker = StreamTracker()
    for number, (ts, linktype, data) in enumerate(iter_packets(path, report), 1):
        pkt = decode_tcp(linktype, data)
        if pkt is not None:
            conv, d, rel_seq, rel_ack = tracker.track(pkt)
            yield number, ts, pkt, conv, d, rel_seq, rel_ack


def read_capture(path: str | os.PathLike[str], stream: int | None = None,
                 events: list[dict[str, Any]] | None = None,
                 report: ReadReport | None = None) -> tuple[list[Stream], int]:
    """The TCP streams of a capture (or only stream number ``stream``) and how many streams it has.

    States are inferred, then recorded ones laid over them: ``events`` if given, else the capture's
    ``state …`` comments, else its side-car. Every segment gets Wireshark's expert analysis and the
    packet's other comments. Non-TCP packets are skipped. The file is read once (it may be stdin).
    """
    report = report if report is not None else ReadReport(os.fspath(path))
    streams: dict[int, Stream] = {}
    analyses: dict[int, ConversationAnalysis] = {}
    recorded: list[dict[str, Any]] = []
    tracker = StreamTracker()
    notes = read_notes(path)
    for number, (ts, linktype, data) in enumerate(iter_packets(path, report), 1):
        comments: tuple[str, ...] = report.comments
        if comments:
            for text in comments:
                event = parse_state_comment(text)
                if event is not None:
                    recorded.append(event)
            comments = shown_comments(comments)
        if notes:
            comments += shown_comments(notes.get(number, ()))
        pkt = decode_tcp(linktype, data)
        if pkt is None:
            continue
        conv, d, rel_seq, rel_ack = tracker.track(pkt)
        if stream is not None and conv.index != stream:
            continue
        st = streams.get(conv.index)
        if st is None:
            st = streams[conv.index] = Stream(conv.index, conv.client, conv.server)
            analyses[conv.index] = ConversationAnalysis()
        analysis = analyses[conv.index].segment(d, pkt, number, ts)
        st.segments.append(StreamSegment(number, ts, d == 0, pkt, rel_seq, rel_ack, analysis=analysis,
                                         comments=comments))
    if events is None:
        events = sorted(recorded, key=lambda ev: ev["time"]) if recorded else read_sidecar(path)
    result = [streams[i] for i in sorted(streams)]
    for st in result:
        infer_states(st)
        if events:
            overlay_states(st, events)
    return result, tracker.count


def read_streams(path: str | os.PathLike[str], stream: int | None = None,
                 events: list[dict[str, Any]] | None = None,
                 report: ReadReport | None = None) -> list[Stream]:
    """All TCP streams of a capture (or only stream number ``stream``): see :func:`read_capture`.

    Meant for ladders: it keeps the selected streams in memory.
    """
    return read_capture(path, stream, events, report)[0]


def count_streams(path: str | os.PathLike[str]) -> int:
    """How many TCP streams a capture holds (streams through it without keeping packets)."""
    tracker = StreamTracker()
    for _ts, linktype, data in iter_packets(path):
        pkt = decode_tcp(linktype, data)
        if pkt is not None:
            tracker.track(pkt)
    return tracker.count


def _seq_ge(a: int, b: int) -> bool:
    return ((a - b) & SEQ_MASK) < 0x80000000


class _End:
    __slots__ = ("fin_end", "state")

    def __init__(self, state: State) -> None:
        self.state = state
        self.fin_end: int | None = None  # sequence number just after this end's FIN


def infer_states(stream: Stream) -> None:
    """Fill each segment's client/server state: the state of both ends once it has been delivered.

    A small model of RFC 9293 §3.3.2's diagram that assumes every segment arrives at once. A stream
    caught without its handshake starts ESTABLISHED on both sides.
    """
    if not stream.segments:
        return
    first = stream.segments[0].tcp.flags
    if first & SYN:
        client, server = _End(State.CLOSED), _End(State.LISTEN)
    else:
        client, server = _End(State.ESTABLISHED), _End(State.ESTABLISHED)
    for seg in stream.segments:
        snd, rcv = (client, server) if seg.from_client else (server, client)
        _advance(snd, rcv, seg.tcp)
        seg.client_state, seg.server_state = client.state, server.state


def _advance(snd: _End, rcv: _End, pkt: TcpPacket) -> None:
    flags = pkt.flags
    if flags & RST:
        # RFC 9293 §3.10.7.4: a valid RST closes the receiver; a listener ignores it (§3.10.7.2).
        snd.state = State.CLOSED if snd.state is not State.LISTEN else snd.state
        if rcv.state is not State.LISTEN:
            rcv.state = State.CLOSED
        return
    s = snd.state
    # The sender's own transitions (RFC 9293 §3.3.2): OPEN/SYN, CLOSE/FIN.
    if flags & SYN:
        if flags & ACK:
            if s in (State.LISTEN, State.CLOSED, State.SYN_SENT):
                snd.state = State.SYN_RECEIVED
        elif s in (State.CLOSED, State.LISTEN):
            snd.state = State.SYN_SENT
    if flags & FIN:
        snd.fin_end = (pkt.seq + pkt.seg_len) & SEQ_MASK
        if snd.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            snd.state = State.FIN_WAIT_1
        elif snd.state is State.CLOSE_WAIT:
            snd.state = State.LAST_ACK
    # The receiver: SYN first, then the ACK field, then FIN (the order of RFC 9293 §3.10.7.4).
    r = rcv.state
    if flags & SYN:
        if flags & ACK:
            if r in (State.SYN_SENT, State.SYN_RECEIVED):
                rcv.state = State.ESTABLISHED
        elif r in (State.LISTEN, State.CLOSED, State.SYN_SENT):
            rcv.state = State.SYN_RECEIVED
        return
    if flags & ACK:
        if rcv.state is State.SYN_RECEIVED:
            rcv.state = State.ESTABLISHED
        if rcv.fin_end is not None and _seq_ge(pkt.ack, rcv.fin_end):
            if rcv.state is State.FIN_WAIT_1:
                rcv.state = State.FIN_WAIT_2
            elif rcv.state is State.CLOSING:
                rcv.state = State.TIME_WAIT
            elif rcv.state is State.LAST_ACK:
                rcv.state = State.CLOSED
    if flags & FIN:
        if rcv.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            rcv.state = State.CLOSE_WAIT
        elif rcv.state is State.FIN_WAIT_1:
            rcv.state = State.CLOSING
        elif rcv.state is State.FIN_WAIT_2:
            rcv.state = State.TIME_WAIT


def _addr_matches(text: str, end: tuple[str, int]) -> bool:
    text = text.strip()
    return text in (f"{end[0]}:{end[1]}", endpoint_name(end))


def overlay_states(stream: Stream, events: Iterable[dict[str, Any]]) -> None:
    """Put recorded state changes on the stream and let them override the inferred states.

    Call after :func:`infer_states`.
    An event belongs to an end when its ``addr`` is that end; its ``peer`` must be the other end,
    except for listener events (LISTEN, or a peer of port 0) which carry no peer.
    """
    mine: list[StateEvent] = []
    for ev in events:
        for client_side, me, other in ((True, stream.client, stream.server),
                                       (False, stream.server, stream.client)):
            if not _addr_matches(ev["addr"], me):
                continue
            peer = ev["peer"].strip()
            if peer and not _addr_matches(peer, other) and not peer.endswith(":0") and peer != "*":
                continue
            mine.append(StateEvent(float(ev["time"]), client_side, ev["who"],
                                   state_from_name(ev["old"]) or ev["old"],
                                   state_from_name(ev["new"]) or ev["new"]))
    mine.sort(key=lambda e: e.ts)
    stream.events = mine
    if not mine:
        return
    for client_side in (True, False):
        side = [e for e in mine if e.client_side == client_side]
        if not side:
            continue
        # From an end's first record to its last the records alone say its state (what was recorded
        # last), so no inferred state can contradict them. Before the first record nothing was recorded
        # yet, and after the last one the segments may show a later change (a recorder that stopped
        # early): there the inferred state shows, unmarked.
        i, current, recorded_at = 0, None, float("-inf")
        changed_at, previous = float("-inf"), None
        for seg in stream.segments:
            inferred = seg.client_state if client_side else seg.server_state
            if inferred != previous:
                changed_at, previous = seg.ts, inferred
            while i < len(side) and side[i].ts <= seg.ts:
                current, recorded_at = side[i].new, side[i].ts
                i += 1
            if current is None or (i == len(side) and recorded_at < changed_at):
                continue
            if client_side:
                seg.client_state, seg.client_recorded = current, True
            else:
                seg.server_state, seg.server_recorded = current, True
