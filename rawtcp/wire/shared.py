"""One receive socket per interface, shared by every connection of this process, demultiplexed here.

A connection of its own socket (:class:`rawtcp.wire.link.PacketLink`) costs ~100 µs to set up (socket,
BPF program, bind) and an RCU grace period to close. Here the socket of an interface is opened once
per namespace, with one classic BPF program: "TCP (and ICMP) to one of this host's addresses in use",
IPv4 and IPv6 alike (:func:`rawtcp.wire.bpf.local_filter`). Which connection a frame belongs to is
decided in user space by :class:`Demux`, from its addresses and ports, so opening a connection is a
dictionary entry. The guarantees of a connection's own socket are kept: the socket and its filter
exist before a connection's first send (register first, then send), PACKET_AUXDATA says per frame
whether the checksum is partial or NIC-verified, and PACKET_IGNORE_OUTGOING keeps our own frames out.

Sends go out through the same socket, one ``send`` per frame.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from rawtcp.wire import netns
from rawtcp.wire.bpf import DROP_ALL, FilterProgram, attach, local_filter
from rawtcp.wire.closer import ClosePool
from rawtcp.wire.errors import WireError
from rawtcp.wire.link import (
    _MAX_FRAME,
    ARPHRD_ETHER,
    ARPHRD_LOOPBACK,
    _hw_address,
    filter_and_bind,
    read_frames,
)
from rawtcp.wire.packet import pack_ip
from rawtcp.wire.rawsock import (
    ETH_P_ALL,
)

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP, IPPROTO_ICMP, IPPROTO_ICMPV6 = 6, 1, 58
ICMPV6_LAST_KEPT = 129  # as the per-connection filter: errors and echo, not neighbour discovery
_PORTS = struct.Struct("!HH")
_PORT = struct.Struct("!H")

Frame = tuple[bytes, int]  # (Ethernet frame, PACKET_AUXDATA tp_status)


class Target(Protocol):
    """Whatever a route delivers to: frames are appended to its ``inbox``."""

    inbox: list[Frame]


@dataclass(frozen=True, slots=True)
class Route:
    """One registration in a :class:`Demux` (what ``remove`` needs)."""

    table: str  # "conns", "peers", "binds"
    key: bytes
    icmp_key: bytes | None
    target: Any

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, table: str, key: bytes, icmp_key: bytes | None, target: Any) -> None:
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "icmp_key", icmp_key)
        object.__setattr__(self, "target", target)


class Demux:
    """Which registered target a received frame belongs to, by addresses and ports. No sockets: feed it frames.

    Keys are the frame's own bytes, so a look-up is one slice and one dictionary probe: for TCP the
    source (remote) address, destination (local) address, source and destination ports, as they lie in
    the headers. A frame goes to the connection of its exact 4-tuple; else to one registered with the
    remote address but no remote port; else to one bound to the local address and port (a passive open
    whose peer is unknown). ICMP (and ICMPv6 errors and echo) from a remote address to a local one go to
    every target registered with ``icmp=True`` for that pair, or for that local address with no remote.
    """

    def __init__(self) -> None:
        self._conns: dict[bytes, Any] = {}  # remote . local . rport . lport
        self._peers: dict[bytes, Any] = {}  # remote . local . lport
        self._binds: dict[bytes, Any] = {}  # local . lport
        self._icmp: dict[bytes, list[Any]] = {}  # remote . local, or local alone
        self.unmatched = 0  # frames that passed the socket's filter but belong to no target

    def __len__(self) -> int:
        return len(self._conns) + len(self._peers) + len(self._binds)

    def add(self, target: Any, local_ip: str, local_port: int, remote_ip: str | None = None,
            remote_port: int | None = None, *, icmp: bool = False) -> Route:
        """Deliver frames from ``remote_ip:remote_port`` to ``local_ip:local_port`` (None: any) to ``target``.

        ValueError if that exact registration exists already (two targets cannot share frames)."""
        local = pack_ip(local_ip)
        remote = None if remote_ip is None else pack_ip(remote_ip)
        if remote is not None and len(remote) != len(local):
            raise ValueError(f"{local_ip} and {remote_ip} are of different address families")
        if remote is None:
            if remote_port is not None:
                raise ValueError("a remote port needs a remote address")
            table, key = "binds", local + _PORT.pack(local_port)
        elif remote_port is None:
            table, key = "peers", remote + local + _PORT.pack(local_port)
        else:
            table, key = "conns", remote + local + _PORTS.pack(remote_port, local_port)
        found = getattr(self, "_" + table)
        if key in found:
            raise ValueError(f"{local_ip}:{local_port} from {remote_ip}:{remote_port} is taken already")
        found[key] = target
        icmp_key = None
        if icmp:
            icmp_key = local if remote is None else remote + local
            self._icmp.setdefault(icmp_key, []).append(target)
        return Route(table, key, icmp_key, target)

    def remove(self, route: Route) -> None:
        found = getattr(self, "_" + route.table)
        if found.get(route.key) is route.target:
            del found[route.key]
        if route.icmp_key is not None:
            targets = self._icmp.get(route.icmp_key, [])
            with contextlib.suppress(ValueError):
                targets.remove(route.target)
            if not targets:
                self._icmp.pop(route.icmp_key, None)

    def dispatch(self, frames: Iterable[Frame]) -> list[Any]:
        """Append each frame to its target's ``inbox``; returns the targets whose inbox was empty before."""
        touched: list[Any] = []
        conns, peers, binds, icmp = self._conns, self._peers, self._binds, self._icmp
        for item in frames:
            frame = item[0]
            if len(frame) < 34:
                self.unmatched += 1
                continue
            ethertype = frame[12] << 8 | frame[13]
            if ethertype == ETH_P_IP:
                proto = frame[23]
                addrs = frame[26:34]
                t = 14 + ((frame[14] & 0x0F) << 2)
            elif ethertype == ETH_P_IPV6:
                proto = frame[20]
                addrs = frame[22:54]
                t = 54
            else:
                self.unmatched += 1
                continue
            if proto == IPPROTO_TCP:
                target = conns.get(addrs + frame[t:t + 4])
                if target is None:
                    if peers:
                        target = peers.get(addrs + frame[t + 2:t + 4])
                    if target is None and binds:
                        target = binds.get(addrs[len(addrs) >> 1:] + frame[t + 2:t + 4])
                    if target is None:
                        self.unmatched += 1
                        continue
                inbox = target.inbox
                if not inbox:
                    touched.append(target)
                inbox.append(item)
                continue
            if not icmp or not (proto == IPPROTO_ICMP or (proto == IPPROTO_ICMPV6 and len(frame) > t
                                                           and frame[t] <= ICMPV6_LAST_KEPT)):
                self.unmatched += 1
                continue
            targets = icmp.get(addrs, []) + icmp.get(addrs[len(addrs) >> 1:], [])
            if not targets:
                self.unmatched += 1
            for target in targets:
                inbox = target.inbox
                if not inbox:
                    touched.append(target)
                inbox.append(item)
        return touched


# Closing a bound packet socket waits for an RCU grace period: at most one per interface and process, so
# a pool thread of its own does it.
_CLOSER: ClosePool | None = None


class SharedLink:
    """The receive and send socket of one interface in the namespace it was opened in.

    Get it with :func:`acquire` (one per namespace and interface, counted) and give it back with
    :meth:`release`. :meth:`register` adds a connection (and its local address to the filter) before
    its first frame is sent; :meth:`receive` reads what is queued and hands each frame to its target.
    Wait for readability on :meth:`fileno` (select/poll/epoll).
    """

    def __init__(self, ifname: str, *, rcvbuf: int = 32 << 20, qdisc_bypass: bool = False) -> None:
        self.ifname = ifname
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing until bind()
        except PermissionError:
            raise WireError("opening a packet socket needs root (CAP_NET_RAW): run it with sudo") from None
        self._sock = sock
        try:
            hw = _hw_address(sock, ifname)
            if hw is None:
                raise WireError(f"no such interface: {ifname}", 2)
            kind, self.mac = hw
            if kind not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
                raise WireError(f"{ifname} is not an Ethernet interface (link type {kind}); "
                                "only Ethernet is supported")
            # Nothing passes until connections add their addresses (the filter is rebuilt as they come).
            self._filter: FilterProgram = filter_and_bind(sock, ifname, DROP_ALL, ETH_P_ALL,
                                                          qdisc_bypass=qdisc_bypass, rcvbuf=rcvbuf)
        except BaseException:
            sock.close()
            raise
        self.demux = Demux()
        self.addresses: list[str] = []
        self.users = 0
        self.key: tuple[int, str, int] | None = None  # where acquire() keeps it
        self._buf = bytearray(_MAX_FRAME)
        self._view = memoryview(self._buf)
        self._more = select.poll()  # is another frame queued? (see read_frames)
        self._more.register(sock.fileno(), select.POLLIN)
        self.frames_received = 0

    # -- connections ---------------------------------------------------------------------------

    def add_address(self, ip: str) -> None:
        """Let TCP and ICMP to ``ip`` through the socket's filter (a new program, swapped atomically)."""
        if ip in self.addresses:
            return
        program = local_filter([*self.addresses, ip])
        self._filter = attach(self._sock, program)
        self.addresses.append(ip)

    def register(self, target: Any, local_ip: str, local_port: int, remote_ip: str | None = None,
                 remote_port: int | None = None, *, icmp: bool = False) -> Route:
        """Deliver this connection's frames to ``target.inbox`` from now on (see :meth:`Demux.add`)."""
        self.add_address(local_ip)
        return self.demux.add(target, local_ip, local_port, remote_ip, remote_port, icmp=icmp)

    def unregister(self, route: Route) -> None:
        self.demux.remove(route)

    # -- receiving -----------------------------------------------------------------------------

    def read(self, max_n: int = 256) -> list[Frame]:
        """Up to ``max_n`` queued frames as ``(frame, tp_status)``, without blocking; none of our own."""
        out: list[Frame] = read_frames(self._sock, self._buf, self._view, max_n, self._more)
        self.frames_received += len(out)
        return out

    def receive(self, max_n: int = 256) -> list[Any]:
        """Read up to ``max_n`` frames and put each in its target's inbox; returns the targets that got
        their first frame (see :meth:`Demux.dispatch`)."""
        return self.demux.dispatch(self.read(max_n))

    # -- sending -------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Transmit one complete Ethernet frame on the interface (bypasses netfilter OUTPUT)."""
        try:
            self._sock.send(frame)
        except OSError as exc:
            raise self._send_error(exc, len(frame)) from None

    def send_many(self, frames: list[bytes]) -> None:
        """Transmit ``frames`` in order, one ``send`` each: a ``sendmmsg(2)`` through ctypes cost more per
        frame than it saved here (the kernel's work per frame dominates and its system call entry is
        cheap), at every batch size from 2 to 64."""
        send = self._sock.send
        frame = b""
        try:
            for frame in frames:
                send(frame)
        except OSError as exc:
            raise self._send_error(exc, len(frame)) from None

    def _send_error(self, exc: OSError, size: int) -> WireError:
        if exc.errno == errno.EMSGSIZE:
            return WireError(f"frame of {size} bytes is larger than {self.ifname}'s MTU")
        return WireError(f"send on {self.ifname} failed: {exc.strerror or exc}")

    # -- lifetime ------------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() == -1

    def release(self) -> None:
        """Give back what :func:`acquire` gave: the last user closes the socket."""
        with _LOCK:
            self.users -= 1
            if self.users > 0:
                return
            if self.key is not None and _LINKS.get(self.key) is self:
                del _LINKS[self.key]
        self.close(wait=False)

    def close(self, wait: bool = True) -> None:
        """Close the socket now (``wait=False``: its RCU wait in a background thread)."""
        global _CLOSER
        if self._sock.fileno() == -1:
            return
        if wait:
            self._sock.close()
            return
        with _LOCK:
            if _CLOSER is None:
                _CLOSER = ClosePool(threads=1)
        _CLOSER.close_fd(self._sock.detach())

    def __repr__(self) -> str:
        return (f"<SharedLink {self.ifname} fd={self.fileno()} users={self.users} "
                f"routes={len(self.demux)} addresses={self.addresses}>")


_LINKS: dict[tuple[int, str, int], SharedLink] = {}
_LOCK = threading.Lock()


def acquire(ifname: str) -> SharedLink:
    """The shared link of ``ifname`` in this thread's network namespace, for this thread (opened on first
    use). Per thread: the demultiplexer fills connections' inboxes, which only their own thread reads."""
    key = (netns.current_inode(), ifname, threading.get_ident())
    with _LOCK:
        link = _LINKS.get(key)
        if link is None or link.closed:
            link = SharedLink(ifname)
            link.key = key
            _LINKS[key] = link
        link.users += 1
        return link


def open_links() -> list[SharedLink]:
    """The shared links this process holds (tests check that nothing is left behind)."""
    with _LOCK:
        return list(_LINKS.values())


def flush_closes(timeout: float = 5.0) -> bool:
    """Wait until every background close has completed; False on timeout."""
    return _CLOSER is None or _CLOSER.flush(timeout)
