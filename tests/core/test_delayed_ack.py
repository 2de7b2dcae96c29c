"""Delayed ACK (RFC 9293 §3.8.6.3, RFC 5681 §4.2, RFC 1122 §4.2.3.2), switchable like TCP_QUICKACK:
at least every second full-sized segment, otherwise within ack_delay (200 ms, Linux's maximum ATO,
never over 500 ms); out-of-order, hole-filling, FIN and duplicate segments are ACKed at once."""

import pytest

from rawtcp.core import Flags
from rawtcp.core.endpoint import TcpError

from .helpers import CISN, SISN, EndpointPair, Want, endpoint_established, expect, expect_nothing, feed, peer_data

A1 = CISN + 1
B1 = SISN + 1


def test_one_segment_is_acked_after_the_delay():
    ep = endpoint_established(delayed_ack=True)
    feed(ep, 1.0, peer_data(b"x" * 100))
    expect_nothing(ep, 1.0)
    assert ep.next_timer() == pytest.approx(1.2)
    ep.handle_timer(1.19)
    expect_nothing(ep, 1.19)
    ep.handle_timer(1.2)
    expect(ep, 1.2, [Want(".", A1, B1 + 100)])
    assert ep.next_timer() is None


def test_every_second_full_segment_is_acked_at_once():
    ep = endpoint_established(delayed_ack=True)
    feed(ep, 1.0, peer_data(b"x" * 1460))
    expect_nothing(ep, 1.0)
    feed(ep, 1.01, peer_data(b"y" * 1460, seq=B1 + 1460))
    expect(ep, 1.01, [Want(".", A1, B1 + 2920)])
    feed(ep, 1.02, peer_data(b"z" * 1460, seq=B1 + 2920))
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
    ep = endpoint_established(delayed_ack=True, rto_min=1.0)
    ep.send(b"out", 1.0)
    ep.segments_to_send(1.0)
    rtx_deadline = ep.timer.deadline
    feed(ep, 1.1, peer_data(b"x" * 10, ack=CISN + 1))  # data that does not acknowledge ours
    assert ep.next_timer() == pytest.approx(1.3) and ep.timer.deadline == rtx_deadline
    ep.handle_timer(1.3)
    expect(ep, 1.3, [Want(".", A1 + 3, B1 + 10)])
    assert ep.next_timer() == rtx_deadline
