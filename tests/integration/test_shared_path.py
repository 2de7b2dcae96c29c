"""Many connections through one shared packet socket (wire/shared.py) driven by one Hub (session/hub.py),
against the lab's kernel echo listener: every connection completes with its own bytes, no frame of one
reaches another, IPv4 and IPv6 share the socket, and nothing is left behind (nftables elements, sockets).
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from rawtcp.core import State
from rawtcp.lab.topology import listener_log
from rawtcp.session.hub import Hub
from rawtcp.wire import netns, nft, shared

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(module_lab):
    return module_lab.cfg  # one echo lab for the module


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _own_elements() -> list[tuple]:
    return [e for e in nft.RstGuard().entries() if e[2] == os.getpid()]


def payload(i: int) -> bytes:
    """Each connection's own bytes: several segments, none equal to another connection's."""
    return hashlib.sha256(b"%d" % i).digest() * 100  # 3200 bytes


class Checker:
    """Every segment a connection receives must be for it: its ports, and bytes at their place in its stream."""

    def __init__(self, flow, expected: bytes) -> None:
        self.flow, self.expected, self.wrong = flow, expected, []
        self.irs: int | None = None

    def __call__(self, direction, seg, frame, now) -> None:
        if direction != "in":
            return
        flow = self.flow
        if (seg.sport, seg.dport) != (flow.remote_port, flow.local_port):
            self.wrong.append(f"ports {seg.sport}->{seg.dport}")
        if self.irs is None and seg.flags & 0x02:
            self.irs = seg.seq
        if seg.payload and self.irs is not None:
            start = (seg.seq - self.irs - 1) % 2**32
            if self.expected[start:start + len(seg.payload)] != seg.payload:
                self.wrong.append(f"foreign bytes at {start}")


def _echo_all(hub: Hub, ends: list[tuple[str, int]], count: int, offset: int = 0) -> list:
    """Open ``count`` connections at once (round robin over ``ends``), echo each one's payload, close."""
    flows = []
    for i in range(count):
        ip, port = ends[i % len(ends)]
        flow = hub.connect(ip, port, profile="bare", rto_min=0.2, rto_initial=0.2, msl2=0.5)
        flow.observer = Checker(flow, payload(offset + i))
        flows.append(flow)
    assert hub.wait(lambda: all(f.established for f in flows), 20.0), [f for f in flows if not f.established]
    for i, flow in enumerate(flows):
        flow.send(payload(offset + i))
    want = len(payload(0))
    assert hub.wait(lambda: all(f.readable >= want for f in flows), 20.0)
    for i, flow in enumerate(flows):
        assert flow.read() == payload(offset + i)
        flow.close()
    assert hub.wait(lambda: all(f.finished for f in flows), 20.0)
    for flow in flows:
        assert flow.observer.wrong == [], flow
        assert flow.error is None
    return flows


def test_many_concurrent_connections_each_get_their_own_bytes(lab):
    with netns.inside(lab.client_ns):
        fds = _fds()
        hub = Hub(ports=(20000, 20999))
        try:
            flows = _echo_all(hub, [(lab.server_ip, lab.port)], 200)
            assert all(f.state is State.TIME_WAIT for f in flows)
            assert len(_fds() - fds) < 10  # TIME-WAIT holds its port, not a socket: the shared one and nftables'
            links = shared.open_links()
            assert len(links) == 1 and links[0].users == 1  # one socket for all 200
            assert hub.stats.established == 200 and hub.stats.bad_checksums == 0
            assert hub.stats.synacks_seen >= 200
        finally:
            hub.close()
        assert shared.open_links() == [] and shared.flush_closes()
        assert _fds() == fds  # the packet socket and every port reservation are closed
        assert _own_elements() == []  # every RST-suppression element removed
    ports = {f.local_port for f in flows}
    records = [r for r in _wait_log(lab, ports) if int(r["peer"].rsplit(":", 1)[1]) in ports]
    assert len(records) == 200
    digests = {hashlib.sha256(payload(i)).hexdigest() for i in range(200)}
    assert {r["sha256"] for r in records} == digests and all(r["error"] is None for r in records)


def _wait_log(lab, ports: set[int], timeout: float = 5.0) -> list[dict]:
    end = time.monotonic() + timeout
    while True:
        records = listener_log(lab)
        seen = {int(r["peer"].rsplit(":", 1)[1]) for r in records}
        if ports <= seen or time.monotonic() > end:
            return records
        time.sleep(0.02)


def test_ipv4_and_ipv6_share_the_socket(lab):
    if not lab.dual_stack:
        pytest.skip("an IPv4-only lab")
    with netns.inside(lab.client_ns), Hub(ports=(21000, 21999)) as hub:
        flows = _echo_all(hub, [(lab.server_ip, lab.port), (lab.server_ip6, lab.port)], 40)
        assert {f.local_ip for f in flows} == {lab.client_ip, lab.client_ip6}
        (link,) = shared.open_links()
        assert sorted(link.addresses) == sorted([lab.client_ip, lab.client_ip6])


def test_two_hubs_of_one_thread_share_the_socket_and_keep_their_frames(lab):
    # Hub a reads frames meant for hub b's connections: b must still get them (and a must not).
    with netns.inside(lab.client_ns), Hub(ports=(22000, 22499)) as a, Hub(ports=(22500, 22999)) as b:
        fa = [a.connect(lab.server_ip, lab.port, profile="bare") for _ in range(10)]
        fb = [b.connect(lab.server_ip, lab.port, profile="bare") for _ in range(10)]
        assert a.wait(lambda: all(f.established for f in fa), 5.0)
        assert b.wait(lambda: all(f.established for f in fb), 5.0)
        for i, f in enumerate(fa + fb):
            f.send(b"%d" % i)
        b.poll(0.0)  # b's data leaves; the listener's echoes come back while a waits
        assert a.wait(lambda: all(f.readable for f in fa) and all(f.inbox or f.readable for f in fb), 5.0)
        assert b.wait(lambda: all(f.readable for f in fb), 5.0)
        assert [f.read() for f in fa + fb] == [b"%d" % i for i in range(20)]
        assert len(shared.open_links()) == 1


def test_a_refused_connection_is_released_with_its_element(lab):
    with netns.inside(lab.client_ns), Hub(ports=(23000, 23099)) as hub:
        flow = hub.connect(lab.server_ip, lab.port + 1, profile="bare")  # nobody listens there
        assert hub.wait(lambda: flow.released, 5.0)
        assert flow.error == "refused" and flow.state is State.CLOSED
        assert hub.stats.failed == 1 and hub.flows == set()
        assert _own_elements() == []


def test_closing_the_hub_resets_what_is_still_open(lab):
    with netns.inside(lab.client_ns):
        hub = Hub(ports=(24000, 24099))
        flows = [hub.connect(lab.server_ip, lab.port, profile="bare") for _ in range(5)]
        assert hub.wait(lambda: all(f.established for f in flows), 5.0)
        hub.close()
        assert all(f.released and f.state is State.CLOSED for f in flows)
        assert _own_elements() == [] and shared.open_links() == []


def test_elements_are_removed_in_one_batch_even_when_one_is_gone(lab):
    with netns.inside(lab.client_ns):
        guard = nft.RstGuard()
        try:
            conns = [(lab.client_ip, 25000 + i, lab.server_ip, lab.port) for i in range(100)]
            for conn in conns:
                guard.add_conn(*conn)
            assert guard.remove_conn(*conns[50])  # already gone when the batch comes
            guard.remove_conns(conns)
            assert _own_elements() == []
        finally:
            guard.close()
