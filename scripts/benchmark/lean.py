"""rawtcp's in-process client for the latency and connections rows: the core Endpoint and the wire
pieces, nothing else (no keeper, no session), so the figures are the cost of the TCP engine itself."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtcp.core import Endpoint, EndpointConfig, State
from rawtcp.core.segment import Flags
from rawtcp.wire.closer import ClosePool

LEAN_PORTS = (10000, 29999)  # below the kernel's ephemeral range, which the kernel baseline uses
_SYN_ACK = int(Flags.SYN | Flags.ACK)


@dataclass
class LeanStats:
    synacks_seen: int = 0
    retransmissions: int = 0
    failed: int = 0
    bad_checksums: int = 0


@dataclass(eq=False)
class Conn:
    ep: Endpoint
    link: Any  # rawtcp.wire.link.PacketLink
    lport: int
    fd: int


class LeanClient:
    """Connections to one lab server from one process: route, nftables context and frame builder are
    made once (one-time set-up); each connection gets its own RST entry, filtered socket and Endpoint.

    One poll set covers every open connection, so a connection whose close was started with
    ``close_in_background`` (like a kernel ``close()``, which returns at once) finishes its four-way
    close while the caller is busy with the next one.
    """

    def __init__(self, dst_ip: str, dport: int, rto_min: float = 0.2) -> None:
        from rawtcp.wire import nft, route
        from rawtcp.wire.packet import FrameBuilder

        self.dst_ip, self.dport, self.rto_min = dst_ip, dport, rto_min
        self.path = route.resolve(dst_ip)
        self.guard = nft.RstGuard()
        assert self.path.src_mac is not None and self.path.dst_mac is not None
        self.builder = FrameBuilder(self.path.src_ip, dst_ip, self.path.src_mac, self.path.dst_mac)
        self.ports = itertools.cycle(range(LEAN_PORTS[0], LEAN_PORTS[1] + 1))
        self.rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        self.stats = LeanStats()
        self.closer = ClosePool()
        self.poller = select.poll()
        self.conns: dict[int, Conn] = {}
        self.closing: list[Conn] = []
        self.close_deadline: dict[Conn, float] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.finish_closing(5.0)
        for conn in list(self.conns.values()):
            self.release(conn, abort=True)
        self.guard.close()
        self.closer.shutdown()

    def flush(self, ep: Endpoint, link: Any, now: float) -> None:
        frame = self.builder.frame
        for seg in ep.segments_to_send(now):
            link.send(frame(seg))
        while (event := ep.next_event()) is not None:
            if type(event).__name__ == "Retransmission":
                self.stats.retransmissions += 1

    def feed(self, conn: Conn, now: float) -> None:
        from rawtcp.wire.link import decode

        src, ep = self.dst_ip, conn.ep
        for raw, status in conn.link.recv_frames():
            dec = decode(raw, status)
            if dec is None or dec.src_ip != src:
                continue
            if dec.checksum_ok is False:
                self.stats.bad_checksums += 1
                continue
            seg = dec.segment
            if int(seg.flags) & _SYN_ACK == _SYN_ACK:
                self.stats.synacks_seen += 1
            ep.receive(seg, now)
        self.flush(ep, conn.link, now)

    def closing_turn(self, now: float) -> float | None:
        """Timers of the connections closing in the background; finished (or stuck) ones are released.
        Returns the earliest timer still pending."""
        earliest = None
        for conn in list(self.closing):
            ep = conn.ep
            if ep.state in (State.TIME_WAIT, State.CLOSED) or now >= self.close_deadline[conn]:
                self.release(conn, abort=ep.state not in (State.TIME_WAIT, State.CLOSED))
                continue
            deadline = ep.next_timer()
            if deadline is not None and now >= deadline:
                ep.handle_timer(now)
                self.flush(ep, conn.link, now)
                deadline = ep.next_timer()
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def _drive(self, conn: Conn | None, done: Callable[[], bool], timeout: float) -> bool:
        clock = time.perf_counter
        end = clock() + timeout
        conns = self.conns
        while True:
            now = clock()
            if conn is not None:
                self.flush(conn.ep, conn.link, now)
            if done():
                return True
            if (conn is not None and conn.ep.state is State.CLOSED) or now >= end:
                return False
            wait = end - now
            deadline = conn.ep.next_timer() if conn is not None else None
            if self.closing:
                other = self.closing_turn(now)
                if other is not None and (deadline is None or other < deadline):
                    deadline = other
                if done():  # releasing finished closes may be what we wait for
                    return True
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - now))
            ready = self.poller.poll(wait * 1000.0)
            now = clock()
            for fd, _mask in ready:
                ready_conn = conns.get(fd)
                if ready_conn is not None:
                    self.feed(ready_conn, now)
            if conn is not None:
                deadline = conn.ep.next_timer()
                if deadline is not None and now >= deadline:
                    conn.ep.handle_timer(now)

    def open(self, timeout: float = 5.0) -> Conn | None:
        """Per-connection set-up and the three-way open; None (and counted) if it did not complete."""
        conn = self.start_open()
        ep = conn.ep
        if not self._drive(conn, lambda: ep.state is State.ESTABLISHED, timeout):
            self.stats.failed += 1
            self.release(conn, abort=True)
            return None
        return conn

    def start_open(self) -> Conn:
        """Per-connection set-up (RST entry, filtered socket, Endpoint) and the SYN; returns at once."""
        from rawtcp.wire.link import PacketLink

        lport = next(self.ports)
        src = self.path.src_ip
        self.guard.add_conn(src, lport, self.dst_ip, self.dport)
        link = PacketLink(self.path.ifname, src, lport, self.dst_ip, self.dport)
        ep = Endpoint(EndpointConfig(local_port=lport, remote_port=self.dport, isn=self.rng.getrandbits(32),
                                     mss=self.path.mtu - 40, rto_min=self.rto_min, rto_initial=self.rto_min,
                                     msl2=1.0))
        conn = Conn(ep, link, lport, link.fileno())
        self.conns[conn.fd] = conn
        self.poller.register(conn.fd, select.POLLIN)
        now = time.perf_counter()
        ep.open_active(now)
        self.flush(ep, link, now)
        return conn

    def release(self, conn: Conn, abort: bool) -> None:
        if abort:
            conn.ep.abort(time.perf_counter())
            with contextlib.suppress(Exception):
                self.flush(conn.ep, conn.link, time.perf_counter())
        if self.conns.pop(conn.fd, None) is not None:
            self.poller.unregister(conn.fd)
        if conn in self.close_deadline:
            del self.close_deadline[conn]
            self.closing.remove(conn)
        self.closer.close_link(conn.link)
        self.guard.remove_conn(self.path.src_ip, conn.lport, self.dst_ip, self.dport)

    def request(self, conn: Conn, data: bytes, timeout: float = 5.0) -> bytes | None:
        ep = conn.ep
        ep.send(data, time.perf_counter())
        if not self._drive(conn, lambda: ep.readable >= len(data), timeout):
            return None
        return ep.read()

    def close_conn(self, conn: Conn, timeout: float = 5.0) -> bool:
        """Our FIN, the peer's FIN, our ACK of it: done once in TIME-WAIT (the port is not reused soon)."""
        ep = conn.ep
        ep.close(time.perf_counter())
        return self._drive(conn, lambda: ep.state in (State.TIME_WAIT, State.CLOSED), timeout)

    def close_in_background(self, conn: Conn, timeout: float = 5.0) -> None:
        """Send our FIN now; the rest of the close happens during later calls (as after a kernel close())."""
        now = time.perf_counter()
        conn.ep.close(now)
        self.flush(conn.ep, conn.link, now)
        self.closing.append(conn)
        self.close_deadline[conn] = now + timeout

    def finish_closing(self, timeout: float) -> bool:
        """Drive the background closes until none is left (bounded)."""
        return self._drive(None, lambda: not self.closing, timeout)

