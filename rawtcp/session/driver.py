"""Drive one core endpoint over one packet link: the only place that reads the clock.

The driver pulls segments from the core, frames them, sends them; reads the link, decodes and checks
what arrives, feeds the core; fires the core's timer; and reports every segment and state change as a
record (see records.py) to whoever listens (the printer, the keeper's clients, the pcap writer).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

from rawtcp.capture.pcap import PcapWriter, packet_comment
from rawtcp.capture.streams import endpoint_name
from rawtcp.core import Endpoint, Flags, Segment, StateChanged
from rawtcp.core import events as ev
from rawtcp.session.records import event_record, segment_record, state_record

Record = dict[str, Any]
Listener = Callable[[Record], None]


class Driver:
    """One endpoint, one link, one clock."""

    def __init__(
        self,
        endpoint: Endpoint,
        link: Any,  # rawtcp.wire.link.PacketLink
        builder: Any,  # rawtcp.wire.packet.FrameBuilder
        local_ip: str,
        remote_ip: str | None,
        *,
        pcap: PcapWriter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rawtcp.wire.link import decode

        self.ep = endpoint
        self.link = link
        self.builder = builder  # None until a passive open learns its peer
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.pcap = pcap
        self.clock = clock
        self._decode = decode
        self.listeners: list[Listener] = []
        self.t0 = clock()
        self.wall0 = time.time()
        self.events: list[ev.Event] = []
        self.bad_checksums = 0
        # Passive open: called with the first SYN's decoded form and frame, to learn who the peer is.
        self.accept_peer: Callable[[Any, bytes], None] | None = None
        self.iss_known = False
        self.irs_known = False

    # --- reporting -------------------------------------------------------------------------------
    def _emit(self, rec: Record) -> None:
        for listener in self.listeners:
            listener(rec)

    def rel(self, now: float) -> float:
        return now - self.t0

    def _segment(self, now: float, direction: str, seg: Segment, note: str = "") -> None:
        # Relative numbers need each side's ISN: ours once our SYN left, the peer's once its SYN came.
        if seg.flags & Flags.SYN:
            if direction == "out":
                self.iss_known = True
            else:
                self.irs_known = True
        local = endpoint_name((self.local_ip, self.ep.local_port))
        remote = endpoint_name((str(self.remote_ip), seg.sport if direction == "in" else seg.dport))
        src, dst = (local, remote) if direction == "out" else (remote, local)
        self._emit(
            segment_record(
                self.rel(now), direction, seg,
                iss=self.ep.iss if self.iss_known else None,
                irs=(seg.seq if direction == "in" and seg.flags & Flags.SYN else self.ep.irs)
                if self.irs_known else None,
                state=str(self.ep.state), src=src, dst=dst, note=note,
            )
        )

    def _drain_events(self, now: float) -> None:
        while (event := self.ep.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, StateChanged):
                self._emit(state_record(self.rel(event.time), str(event.old), str(event.new), cause=event.cause))
            elif isinstance(event, ev.Retransmission):
                self._emit(event_record(self.rel(event.time), "retransmission", reason=event.reason,
                                        seq=event.segment.seq, len=len(event.segment.payload)))
            elif isinstance(event, ev.TimedOut):
                self._emit(event_record(self.rel(event.time), "timeout", what=event.what, tries=event.tries,
                                        elapsed=round(event.elapsed, 3)))
            elif isinstance(event, ev.ConnectionRefused):
                self._emit(event_record(self.rel(event.time), "refused"))
            elif isinstance(event, ev.ConnectionReset):
                self._emit(event_record(self.rel(event.time), "reset"))
            elif isinstance(event, ev.PeerClosed):
                self._emit(event_record(self.rel(event.time), "peer-closed"))

    def _capture(self, pcap: PcapWriter, frame: bytes, now: float) -> None:
        # Our own state is exact now (the kernel's is read later from the tracepoint, and added by the
        # post-pass): an outbound segment carries the state that sent it, an inbound one the state it found.
        # Classic pcap has no place for it but a side-car note per packet, which the recorded changes
        # in the side-car already make redundant.
        comment = packet_comment(self.ep.state) if pcap.pcapng else None
        pcap.write(frame, self.wall0 + (now - self.t0), comment=comment)

    # --- the loop --------------------------------------------------------------------------------
    def flush(self, now: float | None = None) -> None:
        """Send everything the core has due."""
        now = self.clock() if now is None else now
        sent = False
        for seg in self.ep.segments_to_send(now):
            frame = self.builder.frame(seg)
            self.link.send(frame)
            if self.pcap is not None:
                self._capture(self.pcap, frame, now)
                sent = True
            self._segment(now, "out", seg)
        if sent and self.pcap is not None:
            self.pcap.flush()  # on disk at once: a killed keeper's capture keeps every packet and comment
        self._drain_events(now)

    def _receive_ready(self) -> None:
        for frame, status in self.link.recv_frames():
            now = self.clock()
            decoded = self._decode(frame, status)
            if decoded is None:
                continue
            if self.remote_ip is None and self.accept_peer is not None:
                if not decoded.segment.has(Flags.SYN) or decoded.segment.has(Flags.ACK):
                    continue
                self.accept_peer(decoded, frame)
            if decoded.src_ip != self.remote_ip:
                continue
            if decoded.checksum_ok is False:
                self.bad_checksums += 1
                self._segment(now, "in", decoded.segment, note="bad checksum: dropped")
                continue
            if self.pcap is not None:
                self._capture(self.pcap, frame, now)
            seg = decoded.segment
            self._receive_segment(seg, now)
        if self.pcap is not None:
            self.pcap.flush()  # see flush()

    def _receive_segment(self, seg: Segment, now: float) -> None:
        # The record carries the state the segment found; the core's reaction follows as its own records.
        self._segment(now, "in", seg)
        self.ep.receive(seg, now)
        self._drain_events(now)
        self.flush(now)

    def pump(self, timeout: float, extra: list[Any] | tuple[Any, ...] = ()) -> list[Any]:
        """One turn: send what is due, wait up to ``timeout`` for input or the core's timer, react.

        ``extra`` are other file objects to wait on (the keeper's control sockets); the ready ones
        are returned for the caller to handle.
        """
        now = self.clock()
        self.flush(now)
        wait = timeout
        deadline = self.ep.next_timer()
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - now))
        readable, _, _ = select.select([self.link, *extra], [], [], wait)
        if self.link in readable:
            self._receive_ready()
        now = self.clock()
        deadline = self.ep.next_timer()
        if deadline is not None and now >= deadline:
            self.ep.handle_timer(now)
            self._drain_events(now)
            self.flush(now)
        return [r for r in readable if r is not self.link]

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Pump until ``done()`` or ``timeout`` seconds pass; returns ``done()``."""
        end = self.clock() + timeout
        while not done():
            left = end - self.clock()
            if left <= 0:
                return done()
            self.pump(min(left, 0.5))
        return True
