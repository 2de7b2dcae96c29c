"""Keep-alive sending (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6), off unless EndpointConfig.keepalive is set;
Linux's probe shape (SEG.SEQ = SND.NXT - 1, no data), interval and count."""

from dataclasses import replace

from rawtcp.core import State, TimedOut
from rawtcp.core.rto import TimerKind

from .helpers import CISN, PEER_ACK, SISN, Want, drain_events, endpoint_established, expect, feed, peer_data

KA = {"keepalive": 10.0, "keepalive_interval": 1.0, "keepalive_probes": 3}


def test_no_keepalive_by_default():
    ep = endpoint_established()
    assert ep.next_timer() is None


def test_probe_after_idle_time_and_answer_restarts_it():
    ep = endpoint_established(**KA)
    assert ep.timer.kind is TimerKind.KEEPALIVE and ep.next_timer() == 10.0
    ep.handle_timer(10.0)
    expect(ep, 10.0, [Want(".", CISN, SISN + 1)])  # SND.NXT - 1: out of window, so the peer must answer
    feed(ep, 10.1, PEER_ACK)
    assert ep.state is State.ESTABLISHED and ep.next_timer() == 20.1


def test_traffic_postpones_the_probe():
    ep = endpoint_established(**KA)
    feed(ep, 5.0, peer_data(b"hi"))
    ep.segments_to_send(5.0)
    assert ep.next_timer() == 15.0


def test_unanswered_probes_give_up_with_a_reset():
    ep = endpoint_established(**KA)
    drain_events(ep)
    times = []
    for _ in range(3):
        t = ep.next_timer()
        ep.handle_timer(t)
        expect(ep, t, [Want(".", CISN, SISN + 1)])
        times.append(t)
    assert times == [10.0, 11.0, 12.0]
    ep.handle_timer(13.0)
    assert ep.state is State.CLOSED
    (rst,) = ep.segments_to_send(13.0)
    assert rst.flags.short() == "R" and rst.seq == CISN + 1
    (out,) = [e for e in drain_events(ep) if isinstance(e, TimedOut)]
    assert (out.what, out.tries) == ("keepalive", 3)


def test_no_probe_while_data_is_outstanding():
    ep = endpoint_established(**KA)
    ep.send(b"x" * 10, 9.0)
    ep.segments_to_send(9.0)
    assert ep.timer.kind is TimerKind.RETRANSMIT
    feed(ep, 9.1, replace(PEER_ACK, ack=CISN + 11))
    assert ep.timer.kind is TimerKind.KEEPALIVE and ep.next_timer() == 19.1
