"""Delayed ACK (RFC 9293 §3.8.6.3, RFC 5681 §4.2, RFC 1122 §4.2.3.2) as Linux runs it, switchable like
TCP_QUICKACK: at least every second full-sized segment, otherwise within the adaptive ACK timeout (from
40 ms up to the RTT, never over ack_delay: 200 ms, Linux's maximum, never over 500 ms); every segment at
once in quick-ACK mode (the first 16, after an idle gap over the RTO, after a duplicate); out-of-order,
hole-filling, FIN and duplicate segments are ACKed at once."""

import pytest

from rawtcp.core import Flags
from rawtcp.core.endpoint import TcpError

from .helpers import CISN, SISN, EndpointPair, Want, endpoint_established, expect, expect_nothing, feed, peer_data

A1 = CISN + 1
B1 = SISN + 1
QUICKACKS = 16  # Linux's TCP_MAX_QUICKACKS


def after_quick_acks(t: float = 1.0, **kw: object):
    """An established endpoint that has ACKed its first QUICKACKS segments one by one (1 ms apart);
    returns it and the next in-order sequence number."""
    ep = endpoint_established(delayed_ack=True, **kw)
    seq = B1
    for i in range(QUICKACKS):
        feed(ep, t - 0.1 + i * 0.001, peer_data(b"w" * 10, seq=seq))
        seq += 10
        expect(ep, t - 0.1 + i * 0.001, [Want(".", A1, seq)])
    return ep, seq


def test_the_first_segments_are_acked_one_by_one():
    # Linux's quick-ACK mode at the start of a connection (tcp_event_data_recv: the first data): the
    # sender's slow start is not held back by a delayed ACK.
    ep = endpoint_established(delayed_ack=True)
    feed(ep, 1.0, peer_data(b"x" * 100))
    expect(ep, 1.0, [Want(".", A1, B1 + 100)])


def test_one_segment_is_acked_after_the_ack_timeout():
    # After quick-ACK mode, a lone segment waits for the ACK timeout: TCP_ATO_MIN (40 ms) here, as the
    # segments came closely spaced; never as long as ack_delay (200 ms).
    ep, seq = after_quick_acks()
    feed(ep, 1.0, peer_data(b"x" * 100, seq=seq))
    expect_nothing(ep, 1.0)
    assert ep.next_timer() == pytest.approx(1.04)
    ep.handle_timer(1.039)
    expect_nothing(ep, 1.039)
    ep.handle_timer(ep.next_timer())
    expect(ep, 1.04, [Want(".", A1, seq + 100)])
    assert ep.next_timer() is None


def test_the_ack_timeout_follows_the_arrivals_up_to_the_configured_maximum():
    # Linux's tcp_event_data_recv: arrivals further apart than TCP_ATO_MIN/2 but within the ATO pull it
    # towards their spacing; it never exceeds the RTT or ack_delay.
    ep, seq = after_quick_acks(ack_delay=0.06)
    t = 1.0
    for _ in range(6):
        feed(ep, t, peer_data(b"x" * 10, seq=seq))
        seq += 10
        ep.handle_timer(t + 0.035)
        ep.segments_to_send(t + 0.035)
        t += 0.035
    feed(ep, t, peer_data(b"x" * 10, seq=seq))
    assert 0.04 < ep.next_timer() - t <= 0.06


def test_a_duplicate_or_a_long_silence_turns_quick_acks_back_on():
    # Linux's tcp_enter_quickack_mode (a retransmission of held data: the peer is recovering and its
    # window needs every ACK) and tcp_event_data_recv (a gap longer than the RTO).
    ep, seq = after_quick_acks()
    feed(ep, 1.0, peer_data(b"w" * 10, seq=B1))  # a duplicate of the first segment
    expect(ep, 1.0, [Want(".", A1, seq)])
    feed(ep, 1.01, peer_data(b"n" * 10, seq=seq))
    expect(ep, 1.01, [Want(".", A1, seq + 10)])  # ACKed at once: quick mode again
    ep2, seq2 = after_quick_acks()
    t = 1.0 + ep2.rto + 0.5  # silence longer than the RTO
    feed(ep2, t, peer_data(b"s" * 10, seq=seq2))
    expect(ep2, t, [Want(".", A1, seq2 + 10)])


def test_every_second_full_segment_is_acked_at_once():
    ep, seq = after_quick_acks()
    feed(ep, 1.0, peer_data(b"x" * 1460, seq=seq))
    expect_nothing(ep, 1.0)
    feed(ep, 1.01, peer_data(b"y" * 1460, seq=seq + 1460))
    expect(ep, 1.01, [Want(".", A1, seq + 2920)])
    feed(ep, 1.02, peer_data(b"z" * 1460, seq=seq + 2920))
    expect_nothing(ep, 1.02)


def test_quickack_acks_every_segment():
    ep = endpoint_established(delayed_ack=False)
    feed(ep, 1.0, peer_data(b"x" * 100))
    expect(ep, 1.0, [Want(".", A1, B1 + 100)])


def test_the_ack_rides_on_data_sent_within_the_delay():
    ep = endpoint_established(delayed_ack=True)
    feed(ep, 1.0, peer_data(b"q" * 10))
    ep.send(b"answer", 1.05)
    expect(ep, 1.05, [Want("P.", A1, B1 + 10, 6)])
    ep.handle_timer(1.2)
    expect_nothing(ep, 1.2)


def test_out_of_order_hole_filling_and_fin_are_acked_at_once():
    ep = endpoint_established(delayed_ack=True)
    feed(ep, 1.0, peer_data(b"b" * 100, seq=B1 + 100))
    expect(ep, 1.0, [Want(".", A1, B1)])  # RFC 5681 §4.2: out of order -> immediate duplicate ACK
    feed(ep, 1.1, peer_data(b"a" * 100))
    expect(ep, 1.1, [Want(".", A1, B1 + 200)])  # fills the hole
    feed(ep, 1.2, peer_data(b"", seq=B1 + 200, flags=Flags.FIN | Flags.ACK))
    expect(ep, 1.2, [Want(".", A1, B1 + 201)])


def test_duplicate_is_acked_at_once():
    ep = endpoint_established(delayed_ack=True)
    feed(ep, 1.0, peer_data(b"a" * 100))
    ep.handle_timer(1.2)
    ep.segments_to_send(1.2)
    feed(ep, 2.0, peer_data(b"a" * 100))
    expect(ep, 2.0, [Want(".", A1, B1 + 100)])


def test_ack_delay_over_half_a_second_is_refused():
    with pytest.raises(TcpError, match="500 ms"):
        endpoint_established(delayed_ack=True, ack_delay=0.6)


def test_bulk_transfer_with_delayed_acks_between_cores():
    common = {"delayed_ack": True}
    p = EndpointPair.client_server(client=common, server=common)
    p.transfer()
    data = bytes(range(256)) * 200
    p.a.send(data, p.t)
    p.run(until=10.0)
    assert p.received["b"] == data
    acks = [s.seg for s in p.log if s.src == "b" and not s.seg.payload and s.seg.ack > SISN]
    data_segs = [s.seg for s in p.log if s.src == "a" and s.seg.payload]
    assert len(acks) <= len(data_segs) // 2 + 2


def test_a_delayed_ack_does_not_displace_the_retransmission_timer():
    ep, seq = after_quick_acks(rto_min=1.0)
    ep.send(b"out", 1.0)
    ep.segments_to_send(1.0)
    rtx_deadline = ep.timer.deadline
    feed(ep, 1.1, peer_data(b"x" * 10, seq=seq, ack=CISN + 1))  # data that does not acknowledge ours
    due = ep.next_timer()
    assert due == pytest.approx(1.14) and ep.timer.deadline == rtx_deadline
    ep.handle_timer(due)
    expect(ep, due, [Want(".", A1 + 3, seq + 10)])
    assert ep.next_timer() == rtx_deadline
