"""Sequence numbers modulo 2**32: ISNs just below the wrap on both sides."""

from rawtcp.core import State
from rawtcp.core import seq as sq

from .helpers import EndpointPair

NEAR = 2**32 - 5


def test_seq_helpers_across_the_wrap():
    assert sq.add(NEAR, 10) == 5
    assert sq.lt(NEAR, 3) and sq.gt(3, NEAR) and sq.le(NEAR, NEAR)
    assert sq.sub(3, NEAR) == 8 and sq.diff(3, NEAR) == 8 and sq.diff(NEAR, 3) == -8
    assert sq.in_window(2, NEAR, 10) and not sq.in_window(6, NEAR, 10)


def test_transfer_and_close_across_the_wrap_both_directions():
    p = EndpointPair.client_server(client={"isn": NEAR, "msl2": 1.0}, server={"isn": 2**32 - 1, "mss": 7, "msl2": 1.0})
    p.pull()
    assert p.queues["a"][0].seq == NEAR
    p.transfer()
    assert p.a.state is State.ESTABLISHED and p.a.snd_nxt == NEAR + 1 and p.a.rcv_nxt == 0
    up = bytes(range(50))
    down = bytes(range(100, 140))
    p.a.send(up, p.t)
    p.b.send(down, p.t)
    p.transfer()
    assert p.received["b"] == up and p.received["a"] == down
    seqs = [s.seg.seq for s in p.log if s.src == "a" and s.seg.payload]
    assert seqs[0] == NEAR + 1 and all(0 <= s < 2**32 for s in seqs) and seqs[-1] < NEAR  # wrapped
    assert p.a.snd_una == (NEAR + 1 + 50) % 2**32 and p.b.rcv_nxt == p.a.snd_nxt
    p.a.close(p.t)
    p.b.close(p.t)
    p.run(until=5.0)
    assert p.a.state is State.CLOSED and p.b.state is State.CLOSED


def test_retransmission_and_reassembly_across_the_wrap():
    p = EndpointPair.client_server(client={"isn": NEAR}, server={"isn": 10, "mss": 4})
    p.transfer()
    p.drop_next("a", lambda s: s.seq == 3)     # the segment that sits right on the wrap
    data = b"0123456789abcdefghij"
    p.a.send(data, p.t)
    p.run(until=10.0)
    assert p.received["b"] == data and p.a.in_flight == 0
