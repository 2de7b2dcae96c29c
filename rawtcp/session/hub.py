"""Many connections from one process and one poll loop, over the shared receive path of wire/shared.py.

A :class:`Hub` owns the clock, the timers and the waiting for every connection (:class:`Flow`) it
drives. What a connection opened with :meth:`Hub.connect` costs to set up is a dictionary entry in its
interface's demultiplexer, one RST-suppression element and a core ``Endpoint``: the packet socket, its
filter, the route and the nftables context are made once per hub. Each turn (:meth:`Hub.poll`) reads
what arrived, hands each frame to its connection's core (and sends what that core answers), fires the
timers that are due, and sends what the cores still have to send, batched per interface. A connection
with a link of its own (:meth:`Hub.attach`: a PacketLink, or a test's fake) is driven the same way;
that is how the single-connection Driver runs. One thread drives a hub.

    >>> hub = Hub(netns="rawtcp-client")
    >>> flow = hub.connect("198.18.0.2", 8080)
    >>> hub.wait(lambda: flow.established, 5.0)
    True
    >>> flow.send(b"hello"); hub.wait(lambda: flow.readable >= 5, 5.0); flow.read()
    b'hello'
    >>> flow.close(); hub.close(linger=1.0)
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import random
import select
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rawtcp.core import Endpoint, EndpointConfig, Flags, State
from rawtcp.core import events as ev
from rawtcp.core.rto import RTO_MIN
from rawtcp.session.errors import SessionError

if TYPE_CHECKING:
    from rawtcp.wire.route import Path
    from rawtcp.wire.shared import Route

EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range
PROFILES = ("linux", "bare")
_SYN, _ACK = int(Flags.SYN), int(Flags.ACK)
_SYN_ACK = _SYN | _ACK
_FINISHED = (State.TIME_WAIT, State.CLOSED)
_NO_FDS: dict[int, Any] = {}  # the extra file objects of a turn that watches none (never written to)

# Called with (direction, item, frame, now): ("out", segment, frame) for every segment built; ("in",
# segment, frame) for every segment received, before the core sees it (frame None: bad checksum,
# dropped); ("event", core event, None) for every event the core reports.
Observer = Callable[[str, Any, "bytes | None", float], None]


class RstSuppression(Protocol):
    """What the hub asks of the RST-suppression entries: rawtcp.wire.nft.RstGuard, or a test's fake (a
    protocol, not the class: the compiled hub would refuse anything but an RstGuard)."""

    def add_conn(self, local_ip: str, lport: int, remote_ip: str, rport: int) -> None: ...

    def remove_conn(self, local_ip: str, lport: int, remote_ip: str, rport: int) -> bool: ...

    def remove_conns(self, conns: list[tuple[str, int, str, int]]) -> None: ...

    def close(self) -> None: ...


@dataclass
class HubStats:
    """Counts over every connection the hub has driven."""

    opened: int = 0
    established: int = 0
    released: int = 0
    synacks_seen: int = 0  # SYN-ACKs received (the benchmark's missed-replies row compares with the server's)
    retransmissions: int = 0
    bad_checksums: int = 0
    failed: int = 0  # connections that ended without being established (refused, timed out, aborted)
    reset: int = 0  # established connections reset by the peer
    handed_over: int = 0  # frames this hub read for another hub of its thread


class Flow:
    """One connection of a hub: its core endpoint, addresses, frame builder and link.

    The calls below queue work for the hub's next turn (nothing is sent until :meth:`Hub.poll`, one of
    the waits or :meth:`Hub.flush` runs). ``error`` says why a connection ended early ("refused",
    "reset", "timed out ..."). ``observer`` (if set) sees every segment and event (see Observer).
    ``accept_peer`` (a passive open whose peer is unknown) is called with the first SYN's decoded form
    and frame, and must set ``remote_ip`` and ``builder``.
    """

    __slots__ = ("accept_peer", "builder", "dedicated", "ep", "error", "hub", "inbox", "link", "local_ip",
                 "local_port", "observer", "pending", "released", "remote_ip", "remote_port", "reservation",
                 "route", "timer_at", "was_established")

    def __init__(self, hub: Hub, ep: Endpoint, link: Any, builder: Any, local_ip: str, local_port: int,
                 remote_ip: str | None, remote_port: int, *, dedicated: bool,
                 reservation: socket.socket | None = None) -> None:
        self.hub, self.ep, self.link, self.builder = hub, ep, link, builder
        self.local_ip, self.local_port, self.remote_ip, self.remote_port = local_ip, local_port, remote_ip, remote_port
        self.dedicated = dedicated  # a link of its own (attach) rather than the interface's shared one
        self.reservation = reservation
        self.inbox: list[tuple[bytes, int]] = []  # filled by the demultiplexer (or from the own link)
        self.route: Route | None = None
        self.timer_at: float | None = None
        self.pending = False  # on the hub's list of connections to look at this turn
        self.released = False
        self.was_established = False
        self.error: str | None = None
        self.observer: Observer | None = None
        self.accept_peer: Callable[[Any, bytes], None] | None = None

    # -- what the user does ---------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self.ep.state

    @property
    def established(self) -> bool:
        return self.ep.state is State.ESTABLISHED

    @property
    def finished(self) -> bool:
        """TIME-WAIT or CLOSED: nothing more will be exchanged (TIME-WAIT still answers a repeated FIN)."""
        return self.ep.state in _FINISHED

    @property
    def readable(self) -> int:
        return self.ep.readable

    def send(self, data: bytes) -> int:
        """Queue ``data``; returns how many bytes the send buffer took."""
        n = self.ep.send(data, self.hub.clock())
        self.hub.touch(self)
        return n

    def read(self, max_bytes: int = -1) -> bytes:
        data = self.ep.read(max_bytes)
        self.hub.touch(self)  # reading may reopen the window: an ACK may be owed
        return data

    def close(self) -> None:
        """Our FIN after the queued data; the hub completes the close (and TIME-WAIT) in later turns."""
        self.ep.close(self.hub.clock())
        self.hub.touch(self)

    def abort(self) -> None:
        """RST (if the peer knows us) and CLOSED; the hub releases the connection at its next turn."""
        self.ep.abort(self.hub.clock())
        self.hub.touch(self)

    def __repr__(self) -> str:
        return (f"<Flow {self.local_ip}:{self.local_port} -> {self.remote_ip}:{self.remote_port} "
                f"{self.ep.state}>")


class Hub:
    """Many connections, one clock, one poll set, one shared socket per interface.

    ``netns``: the namespace connections leave from (sockets, routes and nftables entries are made
    there; this thread stays where it is); None: this thread's. ``ports`` is the local port range
    :meth:`connect` chooses from; ``reserve_ports`` holds each chosen port with a bound (never
    listening) kernel socket until TIME-WAIT, so the kernel's own connections cannot take it meanwhile.
    ``guard`` (an RstGuard, or anything with its RstSuppression calls), ``resolve`` (remote ip, interface ->
    route.Path) and ``open_link`` (interface -> a shared link) replace the real ones, e.g. by in-memory fakes
    in tests.
    """

    def __init__(self, *, netns: str | None = None, clock: Callable[[], float] = time.monotonic,
                 ports: tuple[int, int] = EPHEMERAL, reserve_ports: bool = True, rng: random.Random | None = None,
                 guard: RstSuppression | None = None, resolve: Callable[[str, str | None], Path] | None = None,
                 open_link: Callable[[str], Any] | None = None) -> None:
        from rawtcp.wire import netns as wire_netns
        from rawtcp.wire.link import decode, decode_segment

        if not 1 <= ports[0] <= ports[1] <= 65535:
            raise SessionError(f"bad port range {ports[0]}-{ports[1]}", 2)
        self.netns = netns
        self._netns_inode = None if netns is None else wire_netns.inode(netns)
        self.clock = clock
        self._decode = decode
        self._decode_segment = decode_segment
        self.rng = rng or random.Random(int.from_bytes(os.urandom(8), "big"))
        self.ports = ports
        self.reserve_ports = reserve_ports
        self._next_port = self.rng.randint(*ports)
        self._own_guard = guard is None
        self._guard = guard  # made with the first connect() (attach() needs none)
        self._resolve = resolve
        self._open_link = open_link
        self.stats = HubStats()
        self.flows: set[Flow] = set()
        self._ports_in_use: set[tuple[str, int]] = set()
        self._paths: dict[tuple[str, str | None], Path] = {}
        self._builders: dict[tuple[str, str, bytes, bytes], Any] = {}
        self._links: dict[int, Any] = {}  # fd -> shared link
        self._dedicated: dict[int, Flow] = {}  # fd -> the flow that owns the link
        self._poller = select.poll()
        self._extra: dict[int, Any] = {}
        self._pending: list[Flow] = []  # flows to look at this turn (something to send, a state to check)
        self._foreign: list[Flow] = []  # flows whose inbox another hub of this thread filled
        self._out: dict[Any, list[bytes]] = {}  # link -> frames to send at the end of this step
        self._ended: list[Flow] = []  # flows found CLOSED: released once their last frames are sent
        self._timers: list[tuple[float, int, Flow]] = []
        self._tie = 0
        self._closed = False
        # RST-suppression elements of released connections, removed in batches (one message per 64)
        self._removals: dict[tuple[str, int, str, int], None] = {}

    # -- set-up, in the hub's namespace ---------------------------------------------------------
    @contextlib.contextmanager
    def _home(self) -> Iterator[None]:
        """Run a block in the hub's namespace (entered only when this thread is elsewhere)."""
        from rawtcp.wire import netns as wire_netns

        if self.netns is None or wire_netns.current_inode() == self._netns_inode:
            yield
            return
        with wire_netns.inside(self.netns):
            yield

    @property
    def guard(self) -> RstSuppression:
        if self._guard is None:
            from rawtcp.wire import nft

            with self._home():
                self._guard = nft.RstGuard()
        return self._guard

    def path(self, remote_ip: str, iface: str | None = None) -> Path:
        """The route to ``remote_ip`` (asked of the kernel once per hub, then kept)."""
        key = (remote_ip, iface)
        found = self._paths.get(key)
        if found is None:
            from rawtcp.wire import route

            with self._home():
                found = (self._resolve or route.resolve)(remote_ip, iface)
            if found.src_mac is None or found.dst_mac is None:
                raise SessionError(f"{found.ifname} has no Ethernet addresses: the hub needs an Ethernet link")
            self._paths[key] = found
        return found

    def _shared_link(self, ifname: str) -> Any:
        for link in self._links.values():
            if link.ifname == ifname:
                return link
        from rawtcp.wire import shared

        with self._home():
            link = (self._open_link or shared.acquire)(ifname)
        self._links[link.fileno()] = link
        self._poller.register(link.fileno(), select.POLLIN)
        return link

    def _builder(self, path: Path, remote_ip: str) -> Any:
        # One per peer: a builder is constant but for its IP ID counter, which the peer's connections share.
        assert path.src_mac is not None and path.dst_mac is not None
        key = (path.src_ip, remote_ip, path.src_mac, path.dst_mac)
        builder = self._builders.get(key)
        if builder is None:
            from rawtcp.wire.packet import FrameBuilder

            builder = self._builders[key] = FrameBuilder(path.src_ip, remote_ip, path.src_mac, path.dst_mac)
        return builder

    def _local_port(self, local_ip: str, wanted: int | None) -> tuple[int, socket.socket | None]:
        if wanted is not None:
            if (local_ip, wanted) in self._ports_in_use:
                raise SessionError(f"local port {wanted} is in use by another connection of this hub")
            if not self.reserve_ports:
                return wanted, None
            try:
                return wanted, self._reserve(local_ip, wanted)
            except OSError as exc:
                raise SessionError(f"local port {wanted} is in use on {local_ip}: "
                                   f"{os.strerror(exc.errno or 0)}") from None
        lo, hi = self.ports
        for _ in range(min(hi - lo + 1, 4096)):
            port = self._next_port
            self._next_port = lo if port >= hi else port + 1
            if (local_ip, port) in self._ports_in_use:
                continue
            if not self.reserve_ports:
                return port, None
            try:
                return port, self._reserve(local_ip, port)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    raise SessionError("too many open files to hold another local port (one socket per "
                                       "connection until TIME-WAIT): raise `ulimit -n`") from None
        raise SessionError(f"no free local port on {local_ip} in {lo}-{hi}")

    def _reserve(self, ip: str, port: int) -> socket.socket:
        v6 = ":" in ip
        family = socket.AF_INET6 if v6 else socket.AF_INET
        if self.netns is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
        else:
            with self._home():
                sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # this family's port only
            sock.bind((ip, port))
        except OSError:
            sock.close()
            raise
        return sock

    # -- opening --------------------------------------------------------------------------------
    def connect(self, remote_ip: str, remote_port: int, *, iface: str | None = None, local_port: int | None = None,
                isn: int | None = None, profile: str = "linux", **tcp: Any) -> Flow:
        """Start an active open (the SYN leaves with the next turn); returns the connection, not yet
        established. Its RST-suppression element and its place in the demultiplexer exist before then.

        ``profile`` "linux" is what a Linux socket offers (SACK, timestamps, window scale, Nagle, delayed
        ACK); "bare" the SEED SYN (``<mss>`` only) and RFC-plain behaviour (RTO min 1 s). ``tcp``
        overrides single :class:`rawtcp.core.EndpointConfig` fields (``rto_min``, ``msl2``, ``mss`` ...).
        """
        if self._closed:
            raise SessionError("the hub is closed")
        if profile not in PROFILES:
            raise SessionError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})", 2)
        path = self.path(remote_ip, iface)
        src = path.src_ip
        guard = self.guard
        lport, reservation = self._local_port(src, local_port)
        try:
            tcp.setdefault("mss", max(536 if path.version == 4 else 1220, path.mss))
            chosen = {"local_port": lport, "remote_port": remote_port,
                      "isn": self.rng.getrandbits(32) if isn is None else isn, **tcp}
            if profile == "linux":
                config = EndpointConfig.linux_like(**chosen)
            else:
                chosen.setdefault("rto_min", RTO_MIN)  # RFC 6298 §2.4's floor, as the CLI's bare profile
                config = EndpointConfig(**chosen)
            link = self._shared_link(path.ifname)
            flow = Flow(self, Endpoint(config), link, self._builder(path, remote_ip), src, lport, remote_ip,
                        remote_port, dedicated=False, reservation=reservation)
            # Both before the SYN: the kernel's RST to the SYN-ACK is dropped, the SYN-ACK is delivered.
            element = (src, lport, remote_ip, remote_port)
            if element in self._removals:
                del self._removals[element]  # an earlier connection's element, not removed yet: keep it
            else:
                guard.add_conn(*element)
        except BaseException:
            if reservation is not None:
                reservation.close()
            raise
        try:
            flow.route = link.register(flow, src, lport, remote_ip, remote_port)
        except BaseException:
            guard.remove_conn(src, lport, remote_ip, remote_port)
            if reservation is not None:
                reservation.close()
            raise
        self._ports_in_use.add((src, lport))
        self.flows.add(flow)
        self.stats.opened += 1
        flow.ep.open_active(self.clock())
        self.touch(flow)
        return flow

    def attach(self, ep: Endpoint, link: Any, builder: Any, local_ip: str, remote_ip: str | None) -> Flow:
        """Drive ``ep`` over a link of its own (``send(frame)``, ``recv_frames()``, ``fileno()``): a
        PacketLink, or a test's in-memory link. Its owner keeps the link, port and RST entries; the hub
        only drives. ``remote_ip`` None: a passive open (set ``accept_peer`` on the flow)."""
        flow = Flow(self, ep, link, builder, local_ip, ep.local_port, remote_ip, ep.remote_port, dedicated=True)
        fd = link.fileno()
        if fd in self._dedicated or fd in self._links:
            raise SessionError("that link is driven by this hub already")
        self._dedicated[fd] = flow
        self._poller.register(fd, select.POLLIN)
        self.flows.add(flow)
        self.stats.opened += 1
        return flow

    # -- the loop -------------------------------------------------------------------------------
    def touch(self, flow: Flow) -> None:
        """``flow`` may have something to send (or has changed state): look at it this turn."""
        if not flow.pending and not flow.released:
            flow.pending = True
            self._pending.append(flow)

    def flush(self, now: float | None = None) -> None:
        """Send now what the connections touched since the last turn have to send."""
        self._step(self.clock() if now is None else now)

    def poll(self, timeout: float, extra: Iterable[Any] = ()) -> list[Any]:
        """One turn: send what is due, wait up to ``timeout`` s for frames (or a timer, or ``extra``
        file objects), hand frames to their connections, fire due timers, send again.

        Returns the ``extra`` objects that are readable."""
        now = self.clock()
        if self._pending:
            self._step(now)
        wait = timeout
        if self._foreign:
            wait = 0.0
        elif self._timers:
            wait = max(0.0, min(wait, self._timers[0][0] - now))
        extra_fds = self._watch(extra) if extra or self._extra else _NO_FDS
        ready = self._poller.poll(wait * 1000.0)
        now = self.clock()
        out = []
        for fd, _mask in ready:
            link = self._links.get(fd)
            if link is not None:
                self._receive(link, now)
                continue
            flow = self._dedicated.get(fd)
            if flow is not None:
                flow.inbox += flow.link.recv_frames()
                if flow.inbox:
                    self._deliver(flow, now)
            elif fd in extra_fds:
                out.append(extra_fds[fd])
        if self._foreign:
            foreign, self._foreign = self._foreign, []
            for flow in foreign:
                self._deliver(flow, now)
        if self._timers and self._timers[0][0] <= now:
            self._fire(now)
        self._step(now)
        return out

    def _watch(self, extra: Iterable[Any]) -> dict[int, Any]:
        """Put the ``extra`` file objects (only them) in the poll set beside the links."""
        fds: dict[int, Any] = {}
        for obj in extra:
            fds[obj if isinstance(obj, int) else obj.fileno()] = obj
        if fds or self._extra:
            for fd in fds.keys() - self._extra.keys():
                self._poller.register(fd, select.POLLIN)
            for fd in self._extra.keys() - fds.keys():
                self._poller.unregister(fd)
            self._extra = fds
        return fds

    def _receive(self, link: Any, now: float) -> None:
        dispatch = link.demux.dispatch
        for _ in range(16):  # bounded: a turn also fires timers and sends
            frames = link.read(256)
            for flow in dispatch(frames):
                if flow.hub is self:
                    self._deliver(flow, now)
                elif isinstance(flow, Flow):
                    self.stats.handed_over += len(flow.inbox)
                    flow.hub._foreign.append(flow)  # another hub of this thread: it looks at it next turn
            if len(frames) < 256:
                return

    def _deliver(self, flow: Flow, now: float) -> None:
        """Feed the core what the flow's inbox holds, one segment at a time, each followed by what the
        core answers (as the kernel answers segment by segment)."""
        items, flow.inbox = flow.inbox, []
        if flow.released:
            return
        ep, stats = flow.ep, self.stats
        # On the shared link the demultiplexer matched the frame's exact 4-tuple: only the segment and
        # its checksum verdict are needed, not the addresses as text.
        matched = not flow.dedicated and flow.remote_ip is not None
        decode_segment = self._decode_segment
        for frame, status in items:
            if matched:
                found = decode_segment(frame, status)
                if found is None:
                    continue
                seg, checksum_ok = found
            else:
                decoded = self._decode(frame, status)
                if decoded is None:
                    continue
                seg, checksum_ok = decoded.segment, decoded.checksum_ok
                if flow.remote_ip is None:  # passive open: the first SYN names the peer
                    if flow.accept_peer is None or int(seg.flags) & _SYN_ACK != _SYN:
                        continue
                    flow.accept_peer(decoded, frame)
                if decoded.src_ip != flow.remote_ip:
                    continue  # a link of its own with a wider filter, e.g. a passive one
            observer = flow.observer
            if checksum_ok is False:
                stats.bad_checksums += 1
                if observer is not None:
                    observer("in", seg, None, now)
                continue
            if int(seg.flags) & _SYN_ACK == _SYN_ACK:
                stats.synacks_seen += 1
            if observer is not None:
                observer("in", seg, frame, now)
            ep.receive(seg, now)
            self._events(flow, now)  # what the segment did is reported before what the core answers
            self._flush_flow(flow, now)

    def _fire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _tie, flow = heapq.heappop(timers)
            if flow.released or flow.timer_at != deadline:
                continue  # replaced by a later deadline, or gone
            flow.timer_at = None
            ep = flow.ep
            due = ep.next_timer()
            if due is not None and due <= now:
                ep.handle_timer(now)
                self._events(flow, now)
            self.touch(flow)

    def _step(self, now: float) -> None:
        """Look at every pending connection, send what they all have (one batch per link), then release
        the connections that have ended."""
        while self._pending:
            pending, self._pending = self._pending, []
            for flow in pending:
                flow.pending = False
                if not flow.released:
                    self._flush_flow(flow, now)
        if self._out:
            out, self._out = self._out, {}
            for link, frames in out.items():
                send_many = getattr(link, "send_many", None)
                if send_many is not None:
                    send_many(frames)
                else:
                    for frame in frames:
                        link.send(frame)
        if self._ended:
            ended, self._ended = self._ended, []
            for flow in ended:
                # A link of its own stays with its owner, who may still want a CLOSED core to answer.
                if flow.ep.state is State.CLOSED and not flow.dedicated:
                    self.release(flow)

    def _flush_flow(self, flow: Flow, now: float) -> None:
        """What one core has to send, framed and queued for its link; its events; its timer."""
        ep = flow.ep
        segs = ep.segments_to_send(now)
        if segs:
            frame, observer, link = flow.builder.frame, flow.observer, flow.link
            out = self._out.get(link)
            if out is None:
                out = self._out[link] = []
            if observer is None:
                out += map(frame, segs)
            else:
                for seg in segs:
                    data = frame(seg)
                    out.append(data)
                    observer("out", seg, data, now)
        self._events(flow, now)
        state = ep.state
        if not flow.was_established and state is State.ESTABLISHED:
            flow.was_established = True
            self.stats.established += 1
        elif state is State.CLOSED:
            self._ended.append(flow)
        elif state is State.TIME_WAIT and flow.reservation is not None:
            # The port stays this hub's until 2MSL ends, but not its descriptor: thousands of connections
            # in TIME-WAIT would otherwise hold thousands of sockets (a kernel's TIME-WAIT holds none).
            flow.reservation.close()
            flow.reservation = None
        due = ep.next_timer()
        if due != flow.timer_at:
            flow.timer_at = due
            if due is not None:
                self._tie += 1
                heapq.heappush(self._timers, (due, self._tie, flow))

    def _events(self, flow: Flow, now: float) -> None:
        """Drain the core's events: counted, remembered on the flow, shown to its observer."""
        ep, observer = flow.ep, flow.observer
        while (event := ep.next_event()) is not None:
            kind = type(event)
            if kind is ev.Retransmission:
                self.stats.retransmissions += 1
            elif kind is ev.ConnectionRefused:
                flow.error = "refused"
            elif kind is ev.ConnectionReset:
                flow.error = "reset"
            elif kind is ev.TimedOut:
                flow.error = f"timed out ({event.what}, {event.tries} tries)"  # type: ignore[attr-defined]
            if observer is not None:
                observer("event", event, None, now)

    def wait(self, done: Callable[[], bool], timeout: float, extra: Iterable[Any] = ()) -> bool:
        """Turn until ``done()`` or ``timeout`` seconds pass; returns ``done()``."""
        end = self.clock() + timeout
        while not done():
            left = end - self.clock()
            if left <= 0:
                return done()
            self.poll(min(left, 0.5), extra)
        return True

    # -- ending ---------------------------------------------------------------------------------
    def release(self, flow: Flow) -> None:
        """Forget a connection: out of the poll set or demultiplexer; for one opened by :meth:`connect`,
        its RST-suppression element and port are freed. One not yet CLOSED is aborted first (RST if the
        peer knows it)."""
        if flow.released:
            return
        if flow.ep.state is not State.CLOSED:
            now = self.clock()
            flow.ep.abort(now)
            with contextlib.suppress(Exception):
                for seg in flow.ep.segments_to_send(now):
                    flow.link.send(flow.builder.frame(seg))
        flow.released = True
        stats = self.stats
        stats.released += 1
        if not flow.was_established:
            stats.failed += 1
        elif flow.error == "reset":
            stats.reset += 1
        self.flows.discard(flow)
        if flow.dedicated:
            fd = flow.link.fileno()
            if self._dedicated.get(fd) is flow:
                del self._dedicated[fd]
                with contextlib.suppress(KeyError, ValueError):
                    self._poller.unregister(fd)
            return
        if flow.route is not None:
            flow.link.unregister(flow.route)
        self._ports_in_use.discard((flow.local_ip, flow.local_port))
        if flow.reservation is not None:
            flow.reservation.close()
        assert flow.remote_ip is not None
        self._removals[(flow.local_ip, flow.local_port, flow.remote_ip, flow.remote_port)] = None
        if len(self._removals) >= 64 or not self.flows:
            self.flush_removals()

    def flush_removals(self) -> None:
        """Remove the RST-suppression elements of released connections now (they go in batches)."""
        if self._removals:
            removals, self._removals = list(self._removals), {}
            self.guard.remove_conns(removals)

    def close(self, linger: float = 0.0) -> None:
        """Release every connection (after up to ``linger`` s for those closing to finish), the shared
        sockets and the nftables entries."""
        if self._closed:
            return
        try:
            if linger > 0:
                self.wait(lambda: all(f.finished for f in self.flows), linger)
            for flow in list(self.flows):
                self.release(flow)
            self.flush_removals()
        finally:
            self._closed = True
            for fd, link in self._links.items():
                with contextlib.suppress(KeyError, ValueError):
                    self._poller.unregister(fd)
                link.release()
            self._links.clear()
            if self._own_guard and self._guard is not None:
                self._guard.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
