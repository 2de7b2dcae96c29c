"""The multi-connection hub without root: connections over an in-memory shared link (the real
demultiplexer, fed frames), answered by core endpoints playing the server, on a hand-turned clock.
Integration tests against a kernel are in tests/integration/test_shared_path.py."""

from __future__ import annotations

import os
import select
from collections import deque
from typing import Any

import pytest

from rawtcp.core import Endpoint, EndpointConfig, Flags, Segment, State
from rawtcp.session.hub import Hub
from rawtcp.wire.link import decode
from rawtcp.wire.packet import FrameBuilder
from rawtcp.wire.route import Path
from rawtcp.wire.shared import Demux

from .fakes import FakeClock, FakeLink

LOCAL_IP, SERVER_IP = "198.18.0.1", "198.18.0.2"
LOCAL_MAC, SERVER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
PORT = 8080


class MemoryLink:
    """A shared link in memory: the real Demux, a pipe that is readable while frames wait."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.demux = Demux()
        self.sent: list[bytes] = []
        self.released = False
        self._queue: deque[tuple[bytes, int]] = deque()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)

    def register(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        return self.demux.add(target, *args, **kwargs)

    def unregister(self, route: Any) -> None:
        self.demux.remove(route)

    def deliver(self, frame: bytes) -> None:
        self._queue.append((frame, 0))
        os.write(self._w, b"x")

    def read(self, max_n: int = 256) -> list[tuple[bytes, int]]:
        out = [self._queue.popleft() for _ in range(min(max_n, len(self._queue)))]
        if out:
            os.read(self._r, len(out))
        return out

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def send_many(self, frames: list[bytes]) -> None:
        self.sent += frames

    def fileno(self) -> int:
        return self._r

    def release(self) -> None:
        self.released = True
        os.close(self._r)
        os.close(self._w)


class MemoryGuard:
    def __init__(self) -> None:
        self.elements: set[tuple[str, int, str, int]] = set()

    def add_conn(self, *key: Any) -> None:
        assert key not in self.elements
        self.elements.add(key)

    def remove_conn(self, *key: Any) -> bool:
        self.elements.remove(key)
        return True

    def remove_conns(self, keys: list[tuple[str, int, str, int]]) -> None:
        for key in keys:
            self.remove_conn(*key)

    def close(self) -> None:
        pass


class Server:
    """Core endpoints playing the server, one per client port: they take what the hub sent and answer."""

    def __init__(self, link: MemoryLink, clock: FakeClock, *, listening: bool = True) -> None:
        self.link, self.clock, self.listening = link, clock, listening
        self.eps: dict[int, Endpoint] = {}
        self.builder = FrameBuilder(SERVER_IP, LOCAL_IP, SERVER_MAC, LOCAL_MAC)
        self.drop_next = 0  # frames from the hub to lose

    def run(self) -> int:
        """Answer everything the hub sent so far; returns how many frames were taken."""
        frames, self.link.sent = self.link.sent, []
        now = self.clock()
        for frame in frames:
            seg = decode(frame, 0).segment
            if self.drop_next:
                self.drop_next -= 1
                continue
            if not self.listening:
                if not seg.flags & Flags.RST:
                    self.link.deliver(self.builder.frame(Segment(PORT, seg.sport, 0, seg.seq + 1,
                                                                 Flags.RST | Flags.ACK, 0)))
                continue
            ep = self.eps.get(seg.sport)
            if ep is None:
                ep = self.eps[seg.sport] = Endpoint(EndpointConfig(local_port=PORT, isn=5000 + seg.sport))
                ep.open_passive(now)
            ep.receive(seg, now)
            for out in ep.segments_to_send(now):
                self.link.deliver(self.builder.frame(out))
            if ep.readable:  # an echo
                ep.send(ep.read(), now)
                for out in ep.segments_to_send(now):
                    self.link.deliver(self.builder.frame(out))
            if ep.state is State.CLOSE_WAIT:
                ep.close(now)
                for out in ep.segments_to_send(now):
                    self.link.deliver(self.builder.frame(out))
        return len(frames)


@pytest.fixture
def rig():
    clock = FakeClock()
    links: list[MemoryLink] = []

    def open_link(ifname: str) -> MemoryLink:
        links.append(MemoryLink(ifname))
        return links[-1]

    def resolve(remote_ip: str, iface: str | None) -> Path:
        return Path("veth-c", LOCAL_IP, LOCAL_MAC, remote_ip, SERVER_MAC, 1500)

    guard = MemoryGuard()
    hub = Hub(clock=clock, ports=(40000, 40999), reserve_ports=False, guard=guard, resolve=resolve,
              open_link=open_link)
    yield hub, clock, guard, links
    hub.close()


def turn(hub: Hub, server: Server, rounds: int = 10) -> None:
    """Hub and server answer each other until neither has anything more (bounded)."""
    for _ in range(rounds):
        hub.poll(0.0)
        if not server.run():
            hub.poll(0.0)
            return


def test_many_connections_over_one_link_each_get_their_own_echo(rig):
    hub, clock, guard, links = rig
    flows = [hub.connect(SERVER_IP, PORT, profile="bare", msl2=1.0) for _ in range(20)]
    assert len(links) == 1 and len(links[0].demux) == 20 and len(guard.elements) == 20
    server = Server(links[0], clock)
    turn(hub, server)
    assert all(f.established for f in flows)
    for i, f in enumerate(flows):
        f.send(b"flow %d" % i)
    turn(hub, server)
    assert [f.read() for f in flows] == [b"flow %d" % i for i in range(20)]
    for f in flows:
        f.close()
    turn(hub, server)
    assert all(f.state is State.TIME_WAIT for f in flows)
    assert hub.stats.established == 20 and hub.stats.synacks_seen == 20 and links[0].demux.unmatched == 0
    clock.advance(1.0)  # 2MSL: TIME-WAIT ends, each connection is released with its element
    hub.poll(0.0)
    assert all(f.released for f in flows) and hub.flows == set()
    assert len(links[0].demux) == 0 and guard.elements == set()


def test_each_flow_has_its_own_port_and_timer(rig):
    hub, clock, _guard, links = rig
    a = hub.connect(SERVER_IP, PORT, profile="bare", rto_min=0.2, rto_initial=0.2)
    b = hub.connect(SERVER_IP, PORT, profile="bare", rto_min=0.2, rto_initial=1.0)
    assert a.local_port != b.local_port
    server = Server(links[0], clock)
    server.drop_next = 2  # both SYNs lost
    turn(hub, server)
    clock.advance(0.3)  # a's RTO (0.2 s) is due, b's (1 s) is not
    turn(hub, server)
    assert a.established and b.state is State.SYN_SENT and hub.stats.retransmissions == 1
    clock.advance(1.0)
    turn(hub, server)
    assert b.established and hub.stats.retransmissions == 2


def test_a_refused_connection_is_released(rig):
    hub, clock, guard, links = rig
    flow = hub.connect(SERVER_IP, PORT, profile="bare")
    turn(hub, Server(links[0], clock, listening=False))
    assert flow.released and flow.error == "refused" and hub.stats.failed == 1
    assert guard.elements == set() and len(links[0].demux) == 0


def test_frames_for_nobody_are_counted_and_dropped(rig):
    hub, _clock, _guard, links = rig
    flow = hub.connect(SERVER_IP, PORT, profile="bare")
    hub.poll(0.0)
    stray = FrameBuilder(SERVER_IP, LOCAL_IP, SERVER_MAC, LOCAL_MAC).frame(
        Segment(PORT, flow.local_port + 1, 1, 1, Flags.SYN | Flags.ACK, 100))
    links[0].deliver(stray)
    hub.poll(0.0)
    assert links[0].demux.unmatched == 1 and flow.state is State.SYN_SENT and hub.stats.synacks_seen == 0


def test_closing_the_hub_aborts_and_releases_everything(rig):
    hub, clock, guard, links = rig
    flows = [hub.connect(SERVER_IP, PORT, profile="bare") for _ in range(3)]
    server = Server(links[0], clock)
    turn(hub, server)
    hub.close()
    rsts = [decode(f, 0).segment for f in links[0].sent]
    assert len(rsts) == 3 and all(s.flags & Flags.RST for s in rsts)
    assert all(f.released for f in flows) and guard.elements == set() and links[0].released


def test_extra_file_objects_come_back_when_readable(rig):
    hub, _clock, _guard, _links = rig
    r, w = os.pipe()
    try:
        assert hub.poll(0.0, extra=[r]) == []
        os.write(w, b"x")
        assert hub.poll(0.0, extra=[r]) == [r]
        assert hub.poll(0.0) == []  # no longer watched
    finally:
        os.close(r)
        os.close(w)


def test_attach_drives_a_link_of_its_own():
    # The single-connection case: a link that is the connection's alone (the driver's), no demultiplexer.
    clock, link = FakeClock(), FakeLink()
    hub = Hub(clock=clock)
    ep = Endpoint(EndpointConfig(local_port=40000, remote_port=PORT, isn=1000))
    flow = hub.attach(ep, link, FrameBuilder(LOCAL_IP, SERVER_IP, LOCAL_MAC, SERVER_MAC), LOCAL_IP, SERVER_IP)
    seen: list[tuple[str, int]] = []
    flow.observer = lambda direction, item, frame, now: seen.append((direction, int(getattr(item, "flags", -1))))
    ep.open_active(clock())
    hub.touch(flow)
    hub.poll(0.0)
    assert [decode(f, 0).segment.flags for f in link.sent] == [Flags.SYN]
    peer = FrameBuilder(SERVER_IP, LOCAL_IP, SERVER_MAC, LOCAL_MAC)
    link.deliver(peer.frame(Segment(PORT, 40000, 8000, 1001, Flags.SYN | Flags.ACK, 65535, (("MSS", 1460),))))
    hub.poll(0.0)
    assert flow.established and decode(link.sent[-1], 0).segment.flags == Flags.ACK
    assert [d for d, _ in seen if d != "event"] == ["out", "in", "out"]
    hub.release(flow)
    assert select.select([link], [], [], 0)[0] == []  # nothing else read it
    hub.close()
    link.close()


def test_released_elements_go_in_batches_and_a_reused_tuple_keeps_its_element(rig):
    hub, _clock, guard, _links = rig
    keep = hub.connect(SERVER_IP, PORT, profile="bare")  # alive throughout: removals wait for a batch
    first = hub.connect(SERVER_IP, PORT, profile="bare", local_port=41500)
    hub.release(first)
    assert (LOCAL_IP, 41500, SERVER_IP, PORT) in guard.elements  # not removed yet
    again = hub.connect(SERVER_IP, PORT, profile="bare", local_port=41500)  # MemoryGuard refuses a double add
    hub.release(again)
    others = [hub.connect(SERVER_IP, PORT, profile="bare") for _ in range(63)]
    for flow in others[:-1]:
        hub.release(flow)
    assert len(guard.elements) == 65  # keep and the last alive, 63 waiting
    hub.release(others[-1])  # the 64th waiting sends the batch
    assert guard.elements == {(LOCAL_IP, keep.local_port, SERVER_IP, PORT)}
    hub.release(keep)
    assert guard.elements == set()  # the last connection gone: nothing waits
