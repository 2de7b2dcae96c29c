"""Fakes to drive a session without root or a network: an in-memory link, a hand-turned clock, a peer.

They use only what the driver uses of the real things, so that they follow it if it changes:
a link is ``send(frame)``, ``recv_frames()`` -> ``[(frame, tp_status)]`` and ``fileno()`` (the driver,
through its hub, polls it); a clock is a callable returning seconds; frames are built and decoded by the wire's own
``FrameBuilder`` and ``decode`` (pure: no socket).

Conventions, as in tests/core/helpers.py: we are 198.18.0.1:40000 with ISN 1000, the peer is
198.18.0.2:8080 with ISN 8000 (SEED.md's numbers).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rawtcp.core import Endpoint, EndpointConfig, Flags, Segment
from rawtcp.session.driver import Driver
from rawtcp.wire.link import decode
from rawtcp.wire.packet import Decoded, FrameBuilder

LOCAL_IP, PEER_IP, STRANGER_IP = "198.18.0.1", "198.18.0.2", "198.18.0.9"
LOCAL_MAC, PEER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
CPORT, SPORT = 40000, 8080
CISN, SISN = 1000, 8000
T0 = 100.0  # the fake clock's start: any value, records count from the driver's creation


class FakeClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLink:
    """Frames both ways in memory: ``sent`` holds what the driver sent, ``deliver`` queues what the
    peer puts on the wire. A pipe makes the link readable to ``poll``/``select`` while frames wait."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._closed = weakref.finalize(self, _close_pipe, self._r, self._w)
        self.sent: list[bytes] = []
        self._inbox: deque[tuple[bytes, int]] = deque()

    def fileno(self) -> int:
        return self._r

    def send(self, frame: bytes) -> int:
        self.sent.append(bytes(frame))
        return len(frame)

    def recv_frames(self, max_frames: int = 64) -> list[tuple[bytes, int]]:
        frames = [self._inbox.popleft() for _ in range(min(max_frames, len(self._inbox)))]
        with contextlib.suppress(BlockingIOError):  # nothing was waiting
            os.read(self._r, len(frames) or 1)
        return frames

    def deliver(self, frame: bytes, status: int = 0) -> None:
        """``status`` 0: the driver verifies the checksum itself (no offload trusted)."""
        self._inbox.append((bytes(frame), status))
        os.write(self._w, b"x")

    def close(self) -> None:
        self._closed()


def _close_pipe(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def corrupt_checksum(frame: bytes) -> bytes:
    """The frame with its TCP checksum flipped (Ethernet 14 + IPv4 header; the checksum is at TCP+16)."""
    ihl = (frame[14] & 0x0F) * 4
    at = 14 + ihl + 16
    return frame[:at] + bytes([frame[at] ^ 0xFF]) + frame[at + 1:]


@dataclass
class Rig:
    """A driver over a fake link with a fake clock, the peer's frame builder, and every record in order."""

    driver: Driver
    link: FakeLink
    clock: FakeClock
    peer_ip: str = PEER_IP
    records: list[dict[str, Any]] = field(default_factory=list)
    peers_learned: list[Decoded] = field(default_factory=list)

    @property
    def ep(self) -> Endpoint:
        return self.driver.ep

    def peer_frame(self, seg: Segment, src_ip: str | None = None) -> bytes:
        return FrameBuilder(src_ip or self.peer_ip, LOCAL_IP, PEER_MAC, LOCAL_MAC).frame(seg)

    def feed(self, *segs: Segment, src_ip: str | None = None) -> None:
        """The peer sends ``segs``; one turn of the driver reads them (and answers)."""
        for seg in segs:
            self.link.deliver(self.peer_frame(seg, src_ip))
        self.driver.pump(0)

    def sent(self) -> list[Decoded]:
        """What the driver put on the wire so far, decoded; the list is emptied."""
        out = [decode(frame, 0) for frame in self.link.sent]
        self.link.sent.clear()
        assert all(d is not None for d in out)
        return out  # type: ignore[return-value]

    def take_records(self) -> list[tuple[str, ...]]:
        """The records since the last call, as the CLI's lines read: ("segment", dir, flags) and
        ("state", old, new), ("event", name); the list is emptied."""
        out = []
        for rec in self.records:
            if rec["type"] == "segment":
                out.append(("segment", rec["dir"], rec["flags"]))
            elif rec["type"] == "state":
                out.append(("state", rec["old"], rec["new"]))
            else:
                out.append(("event", rec["event"]))
        self.records.clear()
        return out


def _rig(config: EndpointConfig, remote_ip: str | None, builder: FrameBuilder | None) -> Rig:
    clock, link = FakeClock(), FakeLink()
    driver = Driver(Endpoint(config), link, builder, LOCAL_IP, remote_ip, clock=clock)
    rig = Rig(driver, link, clock)
    driver.listeners.append(rig.records.append)
    return rig


def active_rig(**config: Any) -> Rig:
    """A client that knows its peer; nothing sent yet (CLOSED)."""
    cfg = EndpointConfig(local_port=CPORT, remote_port=SPORT, isn=CISN, **config)
    return _rig(cfg, PEER_IP, FrameBuilder(LOCAL_IP, PEER_IP, LOCAL_MAC, PEER_MAC))


def passive_rig(**config: Any) -> Rig:
    """A server that learns its peer from the first SYN, as session.connection does: the peer's address
    and MAC make the frame builder."""
    cfg = EndpointConfig(local_port=SPORT, isn=SISN, **config)
    rig = _rig(cfg, None, None)

    def accept_peer(decoded: Decoded, frame: bytes) -> None:
        rig.peers_learned.append(decoded)
        rig.driver.builder = FrameBuilder(LOCAL_IP, decoded.src_ip, LOCAL_MAC, bytes(frame[6:12]))
        rig.driver.remote_ip = decoded.src_ip

    rig.driver.accept_peer = accept_peer
    return rig


# What the peer sends us (sport = the server, dport = our client port), as in tests/core/helpers.py.
PEER_SYN_ACK = Segment(SPORT, CPORT, SISN, CISN + 1, Flags.SYN | Flags.ACK, 65535, (("MSS", 1460),))
# A client's SYN to our passive side (the client is the "peer" there).
CLIENT_SYN = Segment(CPORT, SPORT, CISN, 0, Flags.SYN, 65535, (("MSS", 1460),))
