"""Loss recovery after a retransmission timeout, between two cores over a lossy wire: the timer collapses
with the next RTT sample (RFC 6298 §5, RFC 7323 §4), and a hole that RACK finds lost (a segment sent
after it was SACKed a round trip later, RFC 8985 §6) goes out at once, in timeout recovery too."""

from rawtcp.core import EndpointConfig, Retransmission

from .helpers import CISN, CPORT, SISN, SPORT, EndpointPair, drain_events

MSS = 1448  # 1460 less TSopt
SEG = [CISN + 1 + i * MSS for i in range(32)]


def linux_pair() -> EndpointPair:
    from rawtcp.core import Endpoint

    a = Endpoint(EndpointConfig.linux_like(CPORT, remote_port=SPORT, isn=CISN, nagle=False))
    b = Endpoint(EndpointConfig.linux_like(SPORT, isn=SISN, delayed_ack=False))
    b.open_passive(0.0)
    a.open_active(0.0)
    p = EndpointPair(a, b)
    p.transfer()
    return p


def sends_of(p: EndpointPair, seq: int) -> list[float]:
    return [s.time for s in p.log if s.src == "a" and s.seg.seq == seq and s.seg.payload]


def first_flight_lost_then_first_rto(segments: int, second_lost: int) -> tuple[EndpointPair, float, float]:
    """``segments`` written, the first flight of ten lost, the second segment lost ``second_lost`` more
    times; run until just past the first timeout. Returns the pair, the start and that RTO."""
    p = linux_pair()
    p.drop_next("a", lambda s: bool(s.payload), count=10)
    p.drop_next("a", lambda s: s.seq == SEG[1], count=second_lost)
    p.a.send(bytes(segments * MSS), p.t)
    start = p.t
    p.transfer()
    rto = p.a.rto
    p.run(until=start + rto + 0.01)
    return p, start, rto


def test_hole_lost_again_after_rto_is_resent_once_sacks_show_it_lost():
    # The first flight is lost, the RTO resends its head, and the go-back resends the next hole, which
    # is lost again; the segments sent after it are SACKed, which makes it lost (RFC 8985 §6.2): it goes
    # out at once, not at the next (backed-off) timeout.
    p, start, rto = first_flight_lost_then_first_rto(segments=10, second_lost=1)
    assert len(sends_of(p, SEG[1])) >= 3, sends_of(p, SEG[1])
    assert sends_of(p, SEG[1])[2] <= start + rto + 0.01


def test_ack_after_rto_rearms_the_timer_from_the_collapsed_rto():
    # RFC 7323 §4.1: with timestamps every ACK of new data is an RTT sample, retransmissions included;
    # it ends RFC 6298 §5.5's backoff, so the timer restarts at the un-backed-off RTO.
    p = linux_pair()
    p.a.send(bytes(2 * MSS), p.t)
    p.transfer()
    p.t += 0.05
    p.a.send(bytes(20 * MSS), p.t)
    estimate = p.a.rto
    p.drop_next("a", lambda s: bool(s.payload), count=10**6)
    p.transfer()
    for _ in range(3):  # three timeouts in a row (and the probe before them)
        p.t = p.next_timer()
        p.a.handle_timer(p.t)
        p.transfer()
    assert p.a.rto >= 4 * estimate
    p.rules.clear()
    let_through = [1]

    def after_one(seg) -> bool:  # the next retransmission arrives, what follows it is lost
        if not seg.payload:
            return False
        let_through[0] -= 1
        return let_through[0] < 0

    p.drop_next("a", after_one, count=10**6)
    p.t = p.next_timer()
    p.a.handle_timer(p.t)
    p.transfer()  # this retransmission arrives, its ACK advances SND.UNA and echoes its TSval
    timer = p.a.timer
    assert p.a.snd_una != CISN + 1
    assert timer is not None and timer.deadline - p.t <= estimate + 1e-9
    assert p.a.rto <= estimate + 1e-9


def test_after_rto_the_sender_grows_cwnd_and_skips_sacked_data():
    # RFC 5681 §3.1: cwnd = 1 SMSS after the timeout, then slow start with each ACK; what the peer
    # SACKed is not resent (RFC 6675 §5.1, Linux's tcp_enter_loss keeps SACKed segments).
    p = linux_pair()
    odd = {SEG[i] for i in range(0, 10, 2)}
    p.drop_next("a", lambda s: s.seq in odd and bool(s.payload), count=5)
    p.a.send(bytes(10 * MSS), p.t)
    p.transfer()
    drain_events(p.a)
    p.run(until=p.t + 5.0)
    resent = {e.segment.seq for e in drain_events(p.a) if isinstance(e, Retransmission)}
    assert resent <= odd | {SEG[9]}, sorted(s - CISN for s in resent - odd)
    assert p.received["b"] == bytes(10 * MSS)


def test_hole_lost_twice_after_rto_is_resent_again_when_more_is_sacked():
    # Like Linux's RACK in its Loss state: the resent hole is lost once more; segments sent after that
    # resend and SACKed show it lost again, and it goes out a third time without a timeout.
    p, _, _ = first_flight_lost_then_first_rto(segments=20, second_lost=2)
    assert len(sends_of(p, SEG[1])) >= 4, sends_of(p, SEG[1])
    assert p.received["b"] == bytes(20 * MSS)


def test_stale_echo_after_rto_is_no_sample_but_ends_the_backoff():
    # The peer's ACKs of a hole-filling segment were lost; what it sends later echoes that old TSval
    # (out-of-order data leaves TS.Recent alone, RFC 7323 §4.3). Its age measures the outage, not the
    # path: no sample, SRTT stays; but new data is ACKed, so the backoff ends.
    p = linux_pair()
    p.t = 1.0  # TSecr 0 reads as no echo
    p.a.send(bytes(2 * MSS), p.t)
    p.transfer()
    srtt = p.a.srtt
    p.drop_next("b", lambda s: True, count=10**6)  # every ACK lost for now
    p.drop_next("a", lambda s: s.seq >= SEG[4] and bool(s.payload), count=2)  # the flight's tail too
    p.a.send(bytes(4 * MSS), p.t)
    p.transfer()
    for _ in range(3):
        p.t = p.next_timer()
        p.a.handle_timer(p.t)
        p.transfer()
    estimate = p.a.rtt.estimator.minimum
    old_ack = next(s.seg for s in p.log if s.src == "b" and s.dropped)
    p.rules.clear()
    p.t += 5.0
    p.a.receive(old_ack, p.t)  # an ACK sent before the timeouts, arriving late
    assert p.a.srtt == srtt
    assert p.a.rto <= max(estimate, 3 * srtt + 0.01)
    assert p.a.timer is not None and p.a.timer.deadline - p.t <= p.a.rto + 1e-9
