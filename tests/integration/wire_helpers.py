"""Helpers for the wire layer's integration tests: two namespaces joined by a veth pair, and reading
what arrives on a packet link. IPv4-only (``Pair``) or dual-stack (``Pair6``): the addresses are all
that differ between the families' tests.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine_helpers import nft_tables

from rawtcp.core.segment import Flags, Segment
from rawtcp.wire import netns
from rawtcp.wire.icmp import IcmpMessage
from rawtcp.wire.link import PacketLink, decode_any
from rawtcp.wire.nft import RstGuard
from rawtcp.wire.packet import Decoded, FrameBuilder
from rawtcp.wire.route import Path, resolve

# RstGuard's three ways to talk to nftables, as keyword arguments.
BACKENDS = {"netlink": {}, "libnftables": {"fast": False}, "nft-program": {"fast": False, "use_library": False}}


@dataclass(frozen=True)
class Pair:
    """A (where rawtcp runs, and whose kernel it silences) and B (the peer), IPv4 only."""

    a: str
    b: str
    a_if: str = "vwa"
    b_if: str = "vwb"
    a_ip: str = "198.19.7.1"
    b_ip: str = "198.19.7.2"

    def addresses(self, end: str) -> list[list[str]]:
        """``ip addr add`` arguments for one end ("a" or "b")."""
        return [[f"{getattr(self, end + '_ip')}/24"]]


@dataclass(frozen=True)
class Pair6(Pair):
    """Dual-stack: ``a_ip``/``b_ip`` are the IPv6 addresses (no DAD: usable at once), ``*_ip4`` the IPv4 ones."""

    a_if: str = "v6a"
    b_if: str = "v6b"
    a_ip: str = "2001:db8:7::1"
    b_ip: str = "2001:db8:7::2"
    a_ip4: str = "198.19.9.1"
    b_ip4: str = "198.19.9.2"

    def addresses(self, end: str) -> list[list[str]]:
        return [[f"{getattr(self, end + '_ip')}/64", "nodad"], [f"{getattr(self, end + '_ip4')}/24"]]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@contextmanager
def veth_pair(tag: str, dual_stack: bool = False) -> Iterator[Pair]:
    """Namespaces ``rtt-wire-<pid>-<tag>a``/``b`` (``rtt-wire6-`` when dual-stack), removed in a finally."""
    prefix = f"rtt-wire6-{os.getpid()}-{tag}" if dual_stack else f"rtt-wire-{os.getpid()}-{tag}"
    pair = (Pair6 if dual_stack else Pair)(a=f"{prefix}a", b=f"{prefix}b")
    try:
        _ip("netns", "add", pair.a)
        _ip("netns", "add", pair.b)
        # both ends are created inside their namespaces: no name can clash with the host's
        _ip("link", "add", pair.a_if, "netns", pair.a, "type", "veth", "peer", "name", pair.b_if, "netns", pair.b)
        for ns, ifname, end in ((pair.a, pair.a_if, "a"), (pair.b, pair.b_if, "b")):
            for addr, *flags in pair.addresses(end):
                _ip("-n", ns, "addr", "add", addr, "dev", ifname, *flags)
            _ip("-n", ns, "link", "set", ifname, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in (pair.a, pair.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def backend_round_trip(ns: str, backend: str, conns: list[tuple[str, int, str, int]], bind: tuple[str, int],
                       want: list[tuple[str, tuple[Any, ...]]]) -> None:
    """In ``ns``, a guard on ``backend`` adds ``conns`` and ``bind``, lists them as ``want`` (set, key; each
    owned by this process), removes the bind once (a second time finds nothing); closing removes the
    entries it still owns, then the empty table."""
    with netns.inside(ns):
        guard = RstGuard(**BACKENDS[backend])
        try:
            for conn in conns:
                guard.add_conn(*conn)
            guard.add_bind(*bind)
            assert sorted(guard.entries()) == sorted((name, key, os.getpid()) for name, key in want)
            assert guard.remove_bind(*bind) is True
            assert guard.remove_bind(*bind) is False
        finally:
            guard.close()
    assert "rawtcp" not in nft_tables(ns)


def left_by_a_dead_process(ns: str, conns: Sequence[tuple[str, int, str, int]] = (),
                           binds: Sequence[tuple[str, int]] = ()) -> int:
    """RST-suppression entries added in ``ns`` by a process that then dies without removing them (as if
    killed); returns its pid."""
    child = "\n".join(["import os", "from rawtcp.wire.nft import RstGuard", "g = RstGuard()",
                        *(f"g.add_conn{conn!r}" for conn in conns), *(f"g.add_bind{bind!r}" for bind in binds),
                        "print(os.getpid(), flush=True)", "os._exit(0)"])  # no close()
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", child],
                          capture_output=True, text=True, timeout=60, check=True)
    return int(proc.stdout.split()[0])


def mac_of(ns: str, ifname: str) -> bytes:
    out = subprocess.run(["ip", "-n", ns, "-br", "link", "show", ifname], capture_output=True, text=True,
                         check=True).stdout
    return bytes.fromhex(out.split()[2].replace(":", ""))


def wait_for(link: PacketLink, want: Callable[[Decoded | IcmpMessage], bool], timeout: float = 2.0,
             seen: list[Decoded | IcmpMessage] | None = None) -> Decoded | IcmpMessage | None:
    """First received TCP segment or ICMP message satisfying ``want`` within ``timeout`` (a link opened
    without ``icmp=True`` only gets TCP); everything read goes to ``seen``."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([link], [], [], left)[0]:
            return None
        for frame, status in link.recv_frames():
            got = decode_any(frame, status)
            if got is None:
                continue
            if seen is not None:
                seen.append(got)
            if want(got):
                return got
    return None


def rst_counters(ns: str, chain: str = "output") -> list[int]:
    """The packet counts of the RST-suppression rules (chain ``output``, or ``output6`` for IPv6)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "rawtcp", chain],
                         capture_output=True, text=True, check=False).stdout
    return [int(line.split("counter packets ")[1].split()[0]) for line in out.splitlines() if "counter" in line]


@contextmanager
def from_b(pair: Pair, port: int | None, b_ip: str | None = None, a_ip: str | None = None,
           ) -> Iterator[tuple[PacketLink, FrameBuilder, Path]]:
    """Inside B: a link that sees what A sends to B's ``port`` (any port: None), opened before anything
    is sent, a frame builder from B to A (the pair's own family unless addresses are given), B's path to A."""
    b_ip, a_ip = b_ip or pair.b_ip, a_ip or pair.a_ip
    with netns.inside(pair.b):
        path = resolve(a_ip)
        with PacketLink(pair.b_if, b_ip, port or 0, a_ip, None) as sniff:
            yield sniff, FrameBuilder(b_ip, a_ip, path.src_mac, path.dst_mac), path


def only_the_marker_answered(sniff: PacketLink, fb: FrameBuilder, segments: list[Segment], silenced: int,
                             marker: int) -> Decoded:
    """Send ``segments`` from B to A; A's kernel answers the one to port ``marker`` with RST, and none to
    port ``silenced`` (packets on one veth arrive in order: a RST for it would have come first)."""
    for seg in segments:
        sniff.send(fb.frame(seg))
    seen: list[Decoded | IcmpMessage] = []
    got = wait_for(sniff, lambda d: isinstance(d, Decoded) and d.segment.sport == marker, seen=seen)
    assert isinstance(got, Decoded) and got.segment.has(Flags.RST), seen
    assert [d for d in seen if isinstance(d, Decoded) and d.segment.sport == silenced] == []
    return got
