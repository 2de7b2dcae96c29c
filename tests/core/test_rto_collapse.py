"""A backed-off RTO collapses to the estimate once the peer acknowledges new data with more outstanding
(issue 7: without it, heavy loss in the go-back after a timeout stalled the sender for up to rto_max)."""

from dataclasses import replace

import pytest

from rawtcp.core.rto import RtoEstimator

from .helpers import CISN, PEER_ACK, EndpointPair, endpoint_established, feed


def test_partial_ack_after_timeouts_restarts_the_timer_from_the_estimate():
    ep = endpoint_established(rto_min=0.2)
    estimate = ep.rto
    ep.send(b"x" * 1460 * 4, 1.0)
    ep.segments_to_send(1.0)
    t = 1.0
    for _ in range(3):  # three timeouts in a row: 2, 4, 8 times the estimate
        t = ep.next_timer()
        ep.handle_timer(t)
        ep.segments_to_send(t)
    assert ep.rto == pytest.approx(min(estimate * 8, 60.0))
    feed(ep, t + 0.1, replace(PEER_ACK, ack=CISN + 1 + 1460))  # new data acked, more outstanding
    assert ep.rto == pytest.approx(estimate)
    assert ep.next_timer() == pytest.approx(t + 0.1 + estimate)


def test_collapse_without_a_sample_keeps_the_rto():
    est = RtoEstimator(1.0, 0.2, 60.0)
    est.backoff()
    est.collapse()
    assert est.rto == 2.0  # no SRTT yet: nothing to collapse to
    est.sample(0.1)
    est.backoff()
    est.collapse()
    assert est.rto == pytest.approx(0.3)


def test_heavy_loss_transfer_completes_quickly_between_two_cores():
    """30 % of data segments lost (each one once): the transfer finishes without rto_max-long stalls."""
    p = EndpointPair.client_server(client={"rto_min": 0.2}, server={"rto_min": 0.2})
    p.transfer()
    data = bytes(range(256)) * 400  # 102400 bytes, 71 segments
    seen: set[int] = set()

    def lose(segment) -> bool:
        if not segment.payload or segment.seq in seen:
            return False
        seen.add(segment.seq)
        return segment.seq % 10 < 3

    p.drop_next("a", lose, count=10**6)
    start = p.t
    p.a.send(data, p.t)
    p.run(until=start + 120.0)
    assert p.received["b"] == data
    finished = max(s.time for s in p.log if s.src == "a" and s.seg.payload)
    assert finished - start < 30.0, finished - start
