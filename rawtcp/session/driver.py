"""Drive one core endpoint over one packet link: the single-connection case of a Hub (hub.py).

The hub reads the clock, pulls segments from the core, frames and sends them, reads the link, decodes
and checks what arrives, feeds the core and fires its timer, exactly as it does for many connections.
The driver adds what a session reports: every segment and state change as a record (see records.py)
to whoever listens (the printer, the keeper's clients), and each packet to the pcap writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rawtcp.capture.pcap import PcapWriter, packet_comment
from rawtcp.capture.streams import endpoint_name
from rawtcp.core import Endpoint, Flags, Segment, StateChanged
from rawtcp.core import events as ev
from rawtcp.session.hub import Hub
from rawtcp.session.records import event_record, segment_record, state_record

Record = dict[str, Any]
Listener = Callable[[Record], None]


class Driver:
    """One endpoint, one link, one clock."""

    def __init__(
        self,
        endpoint: Endpoint,
        link: Any,  # rawtcp.wire.link.PacketLink: send(frame), recv_frames(), fileno()
        builder: Any,  # rawtcp.wire.packet.FrameBuilder
        local_ip: str,
        remote_ip: str | None,
        *,
        pcap: PcapWriter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ep = endpoint
        self.link = link
        self.local_ip = local_ip
        self.pcap = pcap
        self.clock = clock
        self.hub = Hub(clock=clock)
        self.flow = self.hub.attach(endpoint, link, builder, local_ip, remote_ip)  # builder None: a passive
        self.flow.observer = self._observe                                          # open learns its peer
        self.flow.accept_peer = self._learn_peer
        self.listeners: list[Listener] = []
        self.t0 = clock()
        self.wall0 = time.time()
        self.events: list[ev.Event] = []
        self.bad_checksums = 0
        # Passive open: called with the first SYN's decoded form and frame, to learn who the peer is.
        self.accept_peer: Callable[[Any, bytes], None] | None = None
        self.iss_known = False
        self.irs_known = False
        self._captured = False  # packets written to the pcap since its last flush

    @property
    def builder(self) -> Any:
        return self.flow.builder

    @builder.setter
    def builder(self, builder: Any) -> None:
        self.flow.builder = builder

    @property
    def remote_ip(self) -> str | None:
        return self.flow.remote_ip

    @remote_ip.setter
    def remote_ip(self, ip: str | None) -> None:
        self.flow.remote_ip = ip

    # --- reporting -------------------------------------------------------------------------------
    def _emit(self, rec: Record) -> None:
        for listener in self.listeners:
            listener(rec)

    def rel(self, now: float) -> float:
        return now - self.t0

    def _learn_peer(self, decoded: Any, frame: bytes) -> None:
        if self.accept_peer is not None:
            self.accept_peer(decoded, frame)

    def _observe(self, what: str, item: Any, frame: bytes | None, now: float) -> None:
        """The hub's report of one segment built or received, or one core event."""
        if what == "event":
            self._event(item)
            return
        if frame is None:  # received with a bad checksum: the core never sees it
            self.bad_checksums += 1
            self._segment(now, what, item, note="bad checksum: dropped")
            return
        if self.pcap is not None:
            self._capture(self.pcap, frame, now)
            self._captured = True
        self._segment(now, what, item)

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

    def _event(self, event: ev.Event) -> None:
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

    def _flush_capture(self) -> None:
        if self._captured and self.pcap is not None:
            self.pcap.flush()  # on disk at once: a killed keeper's capture keeps every packet and comment
            self._captured = False

    # --- the loop --------------------------------------------------------------------------------
    def flush(self, now: float | None = None) -> None:
        """Send everything the core has due."""
        self.hub.touch(self.flow)
        self.hub.flush(now)
        self._flush_capture()

    def pump(self, timeout: float, extra: list[Any] | tuple[Any, ...] = ()) -> list[Any]:
        """One turn: send what is due, wait up to ``timeout`` for input or the core's timer, react.

        ``extra`` are other file objects to wait on (the keeper's control sockets); the ready ones
        are returned for the caller to handle.
        """
        self.hub.touch(self.flow)
        ready = self.hub.poll(timeout, extra)
        self._flush_capture()
        return ready

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Pump until ``done()`` or ``timeout`` seconds pass; returns ``done()``."""
        end = self.clock() + timeout
        while not done():
            left = end - self.clock()
            if left <= 0:
                return done()
            self.pump(min(left, 0.5))
        return True
