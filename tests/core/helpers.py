"""Test helpers for the sans-IO core: endpoints in every state, segment templates, and a pair of cores
piped together over a lossy, reorderable in-memory wire (no root, no sockets, synthetic time).

Conventions: "the endpoint" is a client on port 40000 with ISN 1000; "the peer" is a scripted server on
port 8080 with ISN 8000, like SEED.md. Templates are varied with ``dataclasses.replace``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from rawtcp.core import Endpoint, EndpointConfig, Flags, Segment, State

A = Flags.ACK
S = Flags.SYN
F = Flags.FIN
R = Flags.RST
P = Flags.PSH

CPORT = 40000
SPORT = 8080
CISN = 1000
SISN = 8000

# What the scripted peer sends to the endpoint (sport=server, dport=client).
PEER_SYN = Segment(SPORT, CPORT, SISN, 0, S, 65535, (("MSS", 1460),))
PEER_SYN_ACK = Segment(SPORT, CPORT, SISN, CISN + 1, S | A, 65535, (("MSS", 1460),))
PEER_ACK = Segment(SPORT, CPORT, SISN + 1, CISN + 1, A, 65535)
PEER_FIN = replace(PEER_ACK, flags=F | A)
PEER_RST = Segment(SPORT, CPORT, SISN + 1, 0, R)


def client_config(**kw: object) -> EndpointConfig:
    base: dict[str, object] = {"local_port": CPORT, "remote_port": SPORT, "isn": CISN}
    base.update(kw)
    return EndpointConfig(**base)  # type: ignore[arg-type]


def server_config(**kw: object) -> EndpointConfig:
    base: dict[str, object] = {"local_port": SPORT, "isn": SISN}
    base.update(kw)
    return EndpointConfig(**base)  # type: ignore[arg-type]


def peer_data(payload: bytes, seq: int = SISN + 1, ack: int = CISN + 1, **kw: object) -> Segment:
    return replace(PEER_ACK, seq=seq, ack=ack, flags=kw.pop("flags", P | A), payload=payload, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- feeding and expecting
def feed(ep: Endpoint, t: float, *segs: Segment) -> None:
    for seg in segs:
        ep.receive(seg, t)


def shape(seg: Segment) -> tuple[str, int, int | None, int]:
    """What the tests compare: flags (tcpdump letters), seq, ack (None without ACK), payload length."""
    return (seg.flags.short(), seg.seq, seg.ack if seg.has(Flags.ACK) else None, len(seg.payload))


@dataclass(frozen=True)
class Want:
    """An expected segment: flags in tcpdump letters (``"S"``, ``"S."``, ``"P."``, ``"F."``, ``"R"``…)."""

    flags: str
    seq: int
    ack: int | None = None
    length: int = 0
    window: int | None = None
    payload: bytes | None = None

    def matches(self, seg: Segment) -> bool:
        if (self.flags, self.seq, self.ack, self.length) != shape(seg):
            return False
        if self.window is not None and seg.window != self.window:
            return False
        return self.payload is None or seg.payload == self.payload


def expect(ep: Endpoint, t: float, wanted: Iterable[Want | Segment]) -> list[Segment]:
    """Pull the endpoint's output and check it segment by segment, in order."""
    got = ep.segments_to_send(t)
    wanted = list(wanted)
    shown = [seg.summary() for seg in got]
    assert len(got) == len(wanted), f"expected {len(wanted)} segments, got {shown}"
    for i, (w, seg) in enumerate(zip(wanted, got, strict=True)):
        if isinstance(w, Segment):
            assert shape(seg) == shape(w) and seg.payload == w.payload, f"segment {i}: {shown[i]} != {w.summary()}"
        else:
            assert w.matches(seg), f"segment {i}: got {shown[i]}, wanted {w}"
    return got


def expect_nothing(ep: Endpoint, t: float) -> None:
    got = ep.segments_to_send(t)
    assert got == [], f"expected no output, got {[s.summary() for s in got]}"


def drain_events(ep: Endpoint) -> list[object]:
    events = []
    while (event := ep.next_event()) is not None:
        events.append(event)
    return events


def states(ep: Endpoint) -> list[State]:
    """The states the endpoint went through, from its trace (first old state included)."""
    if not ep.trace:
        return [ep.state]
    return [ep.trace[0].old] + [change.new for change in ep.trace]


# ---------------------------------------------------------------- endpoints in every state (at t=0, output drained)
def endpoint_closed(**kw: object) -> Endpoint:
    return Endpoint(client_config(**kw))


def endpoint_listen(**kw: object) -> Endpoint:
    ep = Endpoint(server_config(**kw))
    ep.open_passive(0.0)
    return ep


def endpoint_syn_received(**kw: object) -> Endpoint:
    """A passive endpoint (port 8080, ISN 8000) that got a client's SYN (ISN 1000) and sent its SYN-ACK."""
    ep = endpoint_listen(**kw)
    feed(ep, 0.0, Segment(CPORT, SPORT, CISN, 0, S, 65535, (("MSS", 1460),)))
    ep.segments_to_send(0.0)
    return ep


def endpoint_syn_sent(**kw: object) -> Endpoint:
    ep = Endpoint(client_config(**kw))
    ep.open_active(0.0)
    ep.segments_to_send(0.0)
    return ep


def endpoint_established(**kw: object) -> Endpoint:
    ep = endpoint_syn_sent(**kw)
    feed(ep, 0.0, PEER_SYN_ACK)
    ep.segments_to_send(0.0)
    drain_events(ep)
    return ep


def endpoint_fin_wait_1(**kw: object) -> Endpoint:
    ep = endpoint_established(**kw)
    ep.close(0.0)
    ep.segments_to_send(0.0)  # FIN seq 1001; SND.NXT becomes 1002
    return ep


def endpoint_fin_wait_2(**kw: object) -> Endpoint:
    ep = endpoint_fin_wait_1(**kw)
    feed(ep, 0.0, replace(PEER_ACK, ack=CISN + 2))
    ep.segments_to_send(0.0)
    return ep


def endpoint_close_wait(**kw: object) -> Endpoint:
    ep = endpoint_established(**kw)
    feed(ep, 0.0, PEER_FIN)
    ep.segments_to_send(0.0)
    return ep


def endpoint_closing(**kw: object) -> Endpoint:
    ep = endpoint_fin_wait_1(**kw)
    feed(ep, 0.0, PEER_FIN)  # the peer's FIN crossed ours: it does not acknowledge our FIN
    ep.segments_to_send(0.0)
    return ep


def endpoint_last_ack(**kw: object) -> Endpoint:
    ep = endpoint_close_wait(**kw)
    ep.close(0.0)
    ep.segments_to_send(0.0)
    return ep


def endpoint_time_wait(**kw: object) -> Endpoint:
    ep = endpoint_fin_wait_2(**kw)
    feed(ep, 0.0, replace(PEER_FIN, ack=CISN + 2))
    ep.segments_to_send(0.0)
    return ep


ENDPOINT_IN = {
    State.CLOSED: endpoint_closed,
    State.LISTEN: endpoint_listen,
    State.SYN_SENT: endpoint_syn_sent,
    State.SYN_RECEIVED: endpoint_syn_received,
    State.ESTABLISHED: endpoint_established,
    State.FIN_WAIT_1: endpoint_fin_wait_1,
    State.FIN_WAIT_2: endpoint_fin_wait_2,
    State.CLOSE_WAIT: endpoint_close_wait,
    State.CLOSING: endpoint_closing,
    State.LAST_ACK: endpoint_last_ack,
    State.TIME_WAIT: endpoint_time_wait,
}


# ---------------------------------------------------------------- two cores on one wire
@dataclass
class Sent:
    time: float
    src: str  # "a" or "b"
    seg: Segment
    dropped: bool = False


@dataclass
class _Rule:
    src: str
    pred: Callable[[Segment], bool]
    count: int


@dataclass
class EndpointPair:
    """Two cores piped together. ``a`` and ``b`` name the directions: queue "a" holds what a sent to b."""

    a: Endpoint
    b: Endpoint
    t: float = 0.0
    queues: dict[str, list[Segment]] = field(default_factory=lambda: {"a": [], "b": []})
    log: list[Sent] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=list)
    received: dict[str, bytearray] = field(default_factory=lambda: {"a": bytearray(), "b": bytearray()})
    auto_read: bool = True  # the applications read everything as soon as it arrives

    @classmethod
    def client_server(cls, client: dict[str, object] | None = None,
                      server: dict[str, object] | None = None) -> EndpointPair:
        a = Endpoint(client_config(**(client or {})))
        b = Endpoint(server_config(**(server or {})))
        b.open_passive(0.0)
        a.open_active(0.0)
        return cls(a, b)

    def ep(self, name: str) -> Endpoint:
        return self.a if name == "a" else self.b

    def drop_next(self, src: str, pred: Callable[[Segment], bool] = lambda s: True, count: int = 1) -> None:
        """Lose the next ``count`` segments from ``src`` that match ``pred`` as they are pulled."""
        self.rules.append(_Rule(src, pred, count))

    def pull(self) -> None:
        """Move both endpoints' due output onto the wire (applying drop rules)."""
        for name in ("a", "b"):
            for seg in self.ep(name).segments_to_send(self.t):
                lost = False
                for rule in self.rules:
                    if rule.count > 0 and rule.src == name and rule.pred(seg):
                        rule.count -= 1
                        lost = True
                        break
                self.log.append(Sent(self.t, name, seg, lost))
                if not lost:
                    self.queues[name].append(seg)

    def drop(self, src: str, index: int = 0) -> Segment:
        """Remove a segment already on the wire."""
        return self.queues[src].pop(index)

    def duplicate(self, src: str, index: int = 0) -> None:
        q = self.queues[src]
        q.insert(index + 1, q[index])

    def reorder(self, src: str, i: int = 0, j: int = 1) -> None:
        q = self.queues[src]
        q[i], q[j] = q[j], q[i]

    def deliver(self, src: str | None = None) -> list[Segment]:
        """Hand every queued segment (from ``src``, or both) to its receiver."""
        delivered = []
        for name in ("a", "b") if src is None else (src,):
            dst = self.ep("b" if name == "a" else "a")
            q, self.queues[name] = self.queues[name], []
            for seg in q:
                dst.receive(seg, self.t)
                delivered.append(seg)
        self._read_all()
        return delivered

    def _read_all(self) -> None:
        if not self.auto_read:
            return
        for name in ("a", "b"):
            self.received[name] += self.ep(name).read()

    def transfer(self, rounds: int = 1000) -> int:
        """Pull and deliver until the wire is quiet; returns how many segments crossed it."""
        moved = 0
        for _ in range(rounds):
            self.pull()
            if not self.queues["a"] and not self.queues["b"]:
                return moved
            moved += len(self.deliver())
        raise AssertionError("wire never went quiet")

    def next_timer(self) -> float | None:
        timers = [t for t in (self.a.next_timer(), self.b.next_timer()) if t is not None]
        return min(timers) if timers else None

    def run(self, until: float, rounds: int = 10000) -> None:
        """Transfer, then fire timers in time order, until nothing is due before ``until``."""
        for _ in range(rounds):
            self.transfer()
            due = self.next_timer()
            if due is None or due > until:
                self.t = max(self.t, until)
                return
            self.t = max(self.t, due)
            self.a.handle_timer(self.t)
            self.b.handle_timer(self.t)
        raise AssertionError("run did not settle")

    def sent_by(self, src: str, include_dropped: bool = True) -> list[Segment]:
        return [s.seg for s in self.log if s.src == src and (include_dropped or not s.dropped)]


# ---------------------------------------------------------------- two cores over a wire with latency
Fate = Callable[[str, Segment], list[float]]


@dataclass
class Wire:
    """Two cores over a wire where every segment has a fate: ``fate(src, seg)`` returns the one-way delays
    of the copies that arrive (``[]``: lost; two delays: duplicated; unequal delays between segments:
    reordered). Time advances from event to event (arrivals, timers, the applications' writes)."""

    a: Endpoint
    b: Endpoint
    fate: Fate
    t: float = 0.0
    received: dict[str, bytearray] = field(default_factory=lambda: {"a": bytearray(), "b": bytearray()})
    sent: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    _flight: list[tuple[float, int, str, Segment]] = field(default_factory=list)
    _count: int = 0

    def ep(self, name: str) -> Endpoint:
        return self.a if name == "a" else self.b

    def _pull(self) -> None:
        for name in ("a", "b"):
            for seg in self.ep(name).segments_to_send(self.t):
                self.sent[name] += 1
                for delay in self.fate(name, seg):
                    self._count += 1
                    heapq.heappush(self._flight, (self.t + delay, self._count, name, seg))

    def next_event(self) -> float | None:
        """When something next happens (output due now is put on the wire first)."""
        self._pull()
        times = [t for t in (self.a.next_timer(), self.b.next_timer()) if t is not None]
        if self._flight:
            times.append(self._flight[0][0])
        return min(times) if times else None

    def advance(self, until: float) -> None:
        """Run every event due up to ``until`` (the applications read all that arrives)."""
        for _ in range(10**6):
            self._pull()
            due = self.next_event()
            if due is None or due > until:
                self.t = max(self.t, until)
                return
            self.t = max(self.t, due)
            while self._flight and self._flight[0][0] <= self.t:
                _, _, src, seg = heapq.heappop(self._flight)
                self.ep("b" if src == "a" else "a").receive(seg, self.t)
            self.a.handle_timer(self.t)
            self.b.handle_timer(self.t)
            for name in ("a", "b"):
                self.received[name] += self.ep(name).read()
        raise AssertionError("wire never settled")
