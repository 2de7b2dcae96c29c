"""Property tests (hypothesis): random segments and calls in every state never raise and keep the
core's invariants; two cores over a random lossy/duplicating/reordering wire never lose or double data.

Examples per test come from the profile in tests/conftest.py (HYPOTHESIS_PROFILE=ci|long).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given
from hypothesis import strategies as st

from rawtcp.core import Endpoint, EndpointConfig, Flags, Segment, State
from rawtcp.core import seq as sq
from rawtcp.core.endpoint import TcpError

from .helpers import CISN, CPORT, ENDPOINT_IN, PEER_ACK, PEER_FIN, PEER_SYN_ACK, SPORT, EndpointPair, feed

_PERIOD = 65521  # prime, longer than any window used here, so a shifted copy never matches by chance
_TABLE = bytes(((i * 2654435761) >> 11) & 0xFF for i in range(_PERIOD)) * 2


def stream_bytes(start: int, n: int) -> bytes:
    """The peer's bytes from sequence number ``start``: every copy of a byte carries the same value."""
    start %= sq.MOD
    if start + n > sq.MOD:  # split at the 2**32 wrap
        first = sq.MOD - start
        return stream_bytes(start, first) + stream_bytes(0, n - first)
    offset = start % _PERIOD
    return _TABLE[offset:offset + n]


@dataclass(frozen=True)
class Arrival:
    seq_rel: int | None      # relative to RCV.NXT (None: use seq_abs)
    seq_abs: int
    ack_rel: int | None      # relative to SND.UNA
    ack_abs: int
    flags: int
    window: int
    length: int
    options: tuple
    port_ok: bool
    sack_rel: tuple[tuple[int, int], ...] = ()  # SACK blocks relative to SND.UNA
    tsopt: tuple[int, int] | None = None         # (TSval, TSecr)


@dataclass(frozen=True)
class Call:
    name: str
    arg: int = 0


@dataclass(frozen=True)
class Tick:
    dt: float


OPTIONS = st.sampled_from([(), (("MSS", 1460),), (("MSS", 0),), (("MSS", 100), ("WScale", 7)),
                           (("WScale", 30),), (("NOP", None), ("SAckOK", b"")), ((99, b"\x01\x02"),)])

arrivals = st.builds(
    Arrival,
    seq_rel=st.one_of(st.none(), st.integers(-3000, 70000), st.sampled_from([-1, 0, 1])),
    seq_abs=st.integers(0, 2**32 - 1),
    ack_rel=st.one_of(st.none(), st.integers(-70000, 5000), st.sampled_from([0, 1, 2])),
    ack_abs=st.integers(0, 2**32 - 1),
    flags=st.one_of(st.integers(0, 255), st.sampled_from([0x10, 0x18, 0x11, 0x04, 0x14, 0x02, 0x12, 0x19])),
    window=st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 536, 65535])),
    length=st.one_of(st.just(0), st.integers(0, 1600)),
    options=OPTIONS,
    port_ok=st.booleans() | st.just(True),
    sack_rel=st.lists(st.tuples(st.integers(-3000, 70000), st.integers(-100, 3000)), max_size=4).map(tuple),
    tsopt=st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                    st.tuples(st.integers(0, 200), st.integers(0, 200))),
)
calls = st.builds(Call, st.sampled_from(["send", "read", "close", "shutdown", "abort", "pull"]),
                  st.integers(0, 5000))
ticks = st.builds(Tick, st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0, 10.0, 70.0]))
actions = st.lists(st.one_of(arrivals, arrivals, arrivals, calls, ticks), max_size=40)


class Checker:
    """Runs actions against one endpoint and checks the invariants after each."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.t = 0.0
        self.read_total = bytearray()
        self.read_irs: int | None = ep.irs
        self.prev_rcv_nxt = ep.rcv_nxt
        self.prev_irs = ep.irs

    def segment(self, a: Arrival) -> Segment:
        ep = self.ep
        seqno = a.seq_abs if a.seq_rel is None else sq.add(ep.rcv_nxt, a.seq_rel)
        ack = a.ack_abs if a.ack_rel is None else sq.add(ep.snd_una, a.ack_rel)
        data_start = sq.add(seqno, 1) if a.flags & Flags.SYN else seqno
        sport, dport = (ep.remote_port or CPORT, ep.local_port) if a.port_ok else (SPORT + 7, ep.local_port)
        options = a.options
        if a.sack_rel:
            edges = tuple(sq.add(ep.snd_una, rel + d) for rel, length in a.sack_rel for d in (0, length))
            options += (("SAck", edges),)
        if a.tsopt is not None:
            options += (("Timestamp", a.tsopt),)
        return Segment(sport, dport, seqno, ack, Flags(a.flags), a.window, options,
                       stream_bytes(data_start, a.length))

    def run(self, action: object) -> None:
        ep = self.ep
        if isinstance(action, Arrival):
            ep.receive(self.segment(action), self.t)   # must never raise
        elif isinstance(action, Tick):
            self.t += action.dt
            ep.handle_timer(self.t)
        elif isinstance(action, Call):
            try:
                if action.name == "send":
                    ep.send(b"s" * action.arg, self.t)
                elif action.name == "read":
                    self.note_read(ep.read(action.arg if action.arg % 3 else -1))
                elif action.name == "close":
                    ep.close(self.t)
                elif action.name == "shutdown":
                    ep.shutdown(self.t)
                elif action.name == "abort":
                    ep.abort(self.t)
            except TcpError as exc:
                assert str(exc) and "\n" not in str(exc)
        self.check_output(ep.segments_to_send(self.t))
        while ep.next_event() is not None:
            pass
        self.note_read(ep.read())
        self.check_invariants()

    def note_read(self, data: bytes) -> None:
        if self.ep.irs != self.read_irs:   # a new connection (SYN-RECEIVED fell back to LISTEN)
            self.read_irs = self.ep.irs
            self.read_total = bytearray()
        if data and self.ep.irs is not None:
            # every byte read is the peer's byte for its sequence number, once, in order
            start = sq.add(self.ep.irs, 1 + len(self.read_total))
            assert data == stream_bytes(start, len(data)), "bytes delivered out of place or twice"
        self.read_total += data

    def check_output(self, segs: list[Segment]) -> None:
        ep = self.ep
        for seg in segs:
            assert seg.sport == ep.local_port
            assert 0 <= seg.seq < 2**32 and 0 <= seg.ack < 2**32 and 0 <= seg.window <= 0xFFFF
            assert len(seg.payload) <= ep.send_mss
            if seg.payload:
                assert seg.flags & Flags.ACK

    def check_invariants(self) -> None:
        ep = self.ep
        assert ep.state in set(State)
        assert sq.le(ep.snd_una, ep.snd_nxt) and ep.in_flight >= 0
        assert ep.unsent >= 0 and ep.readable >= 0 and ep.rcv_wnd >= 0
        if ep.irs is not None and ep.irs == self.prev_irs:
            assert sq.le(self.prev_rcv_nxt, ep.rcv_nxt), "RCV.NXT moved backwards"
        self.prev_irs, self.prev_rcv_nxt = ep.irs, ep.rcv_nxt
        if ep.irs is not None and self.read_irs == ep.irs and ep.state is not State.CLOSED:
            consumed = sq.sub(ep.rcv_nxt, sq.add(ep.irs, 1)) - (1 if ep.peer_fin else 0)
            assert consumed == len(self.read_total) + ep.readable
        if ep.state in (State.CLOSED, State.LISTEN):
            assert ep.segments_to_send(self.t) == [] or ep.state is State.CLOSED


@given(state=st.sampled_from(list(State)), script=actions)
def test_random_input_in_every_state_keeps_invariants(state, script):
    checker = Checker(ENDPOINT_IN[state]())
    checker.check_invariants()
    for action in script:
        checker.run(action)


def negotiated_endpoint(state: State) -> Endpoint:
    """A client with every feature on (EndpointConfig.linux_like) that negotiated SACK, timestamps and
    window scaling with the scripted peer, then went on to ``state``."""
    ep = Endpoint(EndpointConfig.linux_like(CPORT, remote_port=SPORT, isn=CISN))
    ep.open_active(0.0)
    ep.segments_to_send(0.0)
    ts = ("Timestamp", (100, 0))
    feed(ep, 0.0, replace(PEER_SYN_ACK, options=(("MSS", 1460), ("SAckOK", b""), ts, ("WScale", 2))))
    ep.segments_to_send(0.0)
    if state is State.ESTABLISHED:
        ep.send(b"o" * 6000, 0.0)  # data in flight for the SACK blocks to cover
    elif state is State.CLOSE_WAIT:
        feed(ep, 0.0, replace(PEER_FIN, options=(ts,)))
    elif state is State.FIN_WAIT_1:
        ep.send(b"o" * 3000, 0.0)
        ep.close(0.0)
    elif state is State.FIN_WAIT_2:
        ep.close(0.0)
        ep.segments_to_send(0.0)
        feed(ep, 0.0, replace(PEER_ACK, ack=CISN + 2, options=(ts,)))
    ep.segments_to_send(0.0)
    assert ep.state is state and ep.sack_ok and ep.ts_ok
    return ep


@given(state=st.sampled_from([State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.FIN_WAIT_2]),
       script=actions)
def test_random_input_with_sack_and_timestamps_negotiated_keeps_invariants(state, script):
    checker = Checker(negotiated_endpoint(state))
    checker.check_invariants()
    for action in script:
        checker.run(action)


@given(state=st.sampled_from([State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2]),
       chunks=st.lists(st.tuples(st.integers(-200, 3000), st.integers(0, 700)), max_size=40))
def test_random_peer_stream_is_reassembled_exactly(state, chunks):
    checker = Checker(ENDPOINT_IN[state]())
    for rel, n in chunks:
        checker.run(Arrival(rel, 0, 0, 0, int(Flags.ACK), 65535, n, (), True))
    # fill every hole: the stream up to the highest byte seen must then be readable in one piece
    for _ in range(100):
        before = checker.ep.rcv_nxt
        checker.run(Arrival(0, 0, 0, 0, int(Flags.ACK), 65535, 1460, (), True))
        if checker.ep.rcv_nxt == before:
            break
    assert len(checker.read_total) == sq.sub(checker.ep.rcv_nxt, sq.add(checker.ep.irs, 1))


FAULT = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from("ab"), st.integers(0, 5)),
    st.tuples(st.just("duplicate"), st.sampled_from("ab"), st.integers(0, 5)),
    st.tuples(st.just("reorder"), st.sampled_from("ab"), st.integers(0, 5)),
    st.tuples(st.just("deliver"), st.sampled_from("ab"), st.just(0)),
    st.tuples(st.just("tick"), st.just("a"), st.just(0)),
)


FEATURES = st.fixed_dictionaries({"sack": st.booleans(), "timestamps": st.booleans(), "nagle": st.booleans(),
                                  "delayed_ack": st.booleans()})


@given(up=st.integers(0, 20000), down=st.integers(0, 6000), close_first=st.sampled_from("ab"),
       faults=st.lists(FAULT, max_size=60), client_mss=st.sampled_from([1460, 500, 100]),
       server_buf=st.sampled_from([4 * 1024 * 1024, 3000, 800]), client=FEATURES, server=FEATURES)
def test_two_cores_over_a_hostile_wire_deliver_everything_once(up, down, close_first, faults, client_mss,
                                                               server_buf, client, server):
    common = {"max_retries": 60, "rto_max": 4.0, "msl2": 2.0}
    p = EndpointPair.client_server(client={"mss": client_mss, **common, **client},
                                   server={"recv_buffer": server_buf, **common, **server})
    up_data = bytes(stream_bytes(7, up))
    down_data = bytes(stream_bytes(99, down))
    p.a.send(up_data, 0.0)
    sent_down = False
    for kind, src, i in faults:
        p.pull()
        if not sent_down and p.b.state is State.ESTABLISHED:
            p.b.send(down_data, p.t)
            sent_down = True
        q = p.queues[src]
        if kind == "drop" and i < len(q):
            p.drop(src, i)
        elif kind == "duplicate" and i < len(q):
            p.duplicate(src, i)
        elif kind == "reorder" and i + 1 < len(q):
            p.reorder(src, i, i + 1)
        elif kind == "deliver":
            p.deliver(src)
        elif kind == "tick":
            due = p.next_timer()
            if due is not None:
                p.t = due
                p.a.handle_timer(p.t)
                p.b.handle_timer(p.t)
    p.run(until=p.t + 300.0)
    assert p.a.state is State.ESTABLISHED and p.b.state is State.ESTABLISHED
    if not sent_down:
        p.b.send(down_data, p.t)
    p.ep(close_first).close(p.t)
    p.run(until=p.t + 300.0)
    p.ep("b" if close_first == "a" else "a").close(p.t)
    p.run(until=p.t + 300.0)
    assert bytes(p.received["b"]) == up_data
    assert bytes(p.received["a"]) == down_data
    assert p.a.state is State.CLOSED and p.b.state is State.CLOSED
