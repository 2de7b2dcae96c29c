"""A backed-off RTO is kept until a new RTT sample collapses it (RFC 6298 §5); heavy loss still ends in
bounded time."""

from dataclasses import replace

import pytest

from rawtcp.core.rto import RtoEstimator

from .helpers import CISN, PEER_ACK, EndpointPair, endpoint_established, feed


def test_backed_off_rto_is_kept_until_a_new_rtt_sample():
    # RFC 6298 §5: the backed-off RTO stays until a new RTT measurement (Karn: only from a segment
    # sent once) collapses it; an ACK of retransmitted data is no measurement.
    ep = endpoint_established(rto_min=0.2)
    estimate = ep.rto
    ep.send(b"x" * 1460 * 4, 1.0)
    ep.segments_to_send(1.0)
    t = 1.0
    for _ in range(3):  # three timeouts in a row: 2, 4, 8 times the estimate
        t = ep.next_timer()
        ep.handle_timer(t)
        ep.segments_to_send(t)
    backed_off = ep.rto
    assert backed_off == pytest.approx(min(estimate * 8, 60.0))
    feed(ep, t + 0.1, replace(PEER_ACK, ack=CISN + 1 + 1460))  # retransmitted data acked, more outstanding
    assert ep.rto == pytest.approx(backed_off)
    assert ep.next_timer() == pytest.approx(t + 0.1 + backed_off)
    feed(ep, t + 0.2, replace(PEER_ACK, ack=CISN + 1 + 4 * 1460))
    assert ep.rto == pytest.approx(backed_off)
    ep.send(b"y" * 100, t + 1.0)  # sent once, so timed
    ep.segments_to_send(t + 1.0)
    feed(ep, t + 1.1, replace(PEER_ACK, ack=CISN + 1 + 4 * 1460 + 100))
    assert ep.rto < backed_off


def test_collapse_without_a_sample_keeps_the_rto():
    est = RtoEstimator(1.0, 0.2, 60.0)
    est.backoff()
    est.collapse()
    assert est.rto == 2.0  # no SRTT yet: nothing to collapse to
    est.sample(0.1)
    est.backoff()
    est.collapse()
    assert est.rto == pytest.approx(0.3)


@pytest.mark.parametrize("options", [{}, {"sack": True}, {"timestamps": True},
                                     {"sack": True, "timestamps": True}])
def test_heavy_loss_transfer_completes_quickly_between_two_cores(options):
    """30 % of data segments lost (each once): the transfer finishes without rto_max-long stalls. (When
    every first transmission is lost nothing but timestamps can time the path: test_timestamps.py.)"""
    common = {"rto_min": 0.2, **options}
    p = EndpointPair.client_server(client=common, server=common)
    p.transfer()
    data = bytes(range(256)) * 400  # 102400 bytes, 71 segments
    seen: set[int] = set()

    def lose(segment) -> bool:
        if not segment.payload or segment.seq in seen:
            return False
        seen.add(segment.seq)
        return (segment.seq * 2654435761 >> 7) % 10 < 3

    p.drop_next("a", lose, count=10**6)
    start = p.t
    p.a.send(data, p.t)
    p.run(until=start + 120.0)
    assert p.received["b"] == data
    finished = max(s.time for s in p.log if s.src == "a" and s.seg.payload)
    assert finished - start < 10.0, finished - start
