"""RFC 6298 retransmission timing with synthetic time, Karn's rule, give-up, and loss between two cores."""

from dataclasses import replace

import pytest

from rawtcp.core import Retransmission, State, TimedOut
from rawtcp.core.rto import RtoEstimator, TimerKind

from .helpers import (
    CISN,
    CPORT,
    PEER_ACK,
    PEER_SYN_ACK,
    SISN,
    SPORT,
    A,
    EndpointPair,
    F,
    P,
    S,
    Want,
    drain_events,
    endpoint_established,
    endpoint_fin_wait_1,
    endpoint_syn_received,
    endpoint_syn_sent,
    expect,
    expect_nothing,
    feed,
)
from .helpers import Segment as Seg


def rtx_events(ep):
    return [e for e in drain_events(ep) if isinstance(e, Retransmission)]


def test_syn_backoff_1_2_4_then_give_up():
    ep = endpoint_syn_sent(max_retries=3)
    assert ep.next_timer() == 1.0 and ep.timer.kind is TimerKind.RETRANSMIT
    ep.handle_timer(0.99)
    expect_nothing(ep, 0.99)
    times = []
    for _ in range(3):
        t = ep.next_timer()
        ep.handle_timer(t)
        expect(ep, t, [Want("S", CISN)])
        times.append(t)
    assert times == [1.0, 3.0, 7.0] and ep.retransmits == 3
    assert [e.reason for e in rtx_events(ep)] == ["rto"] * 3
    ep.handle_timer(ep.next_timer())
    assert ep.state is State.CLOSED
    (out,) = [e for e in drain_events(ep) if isinstance(e, TimedOut)]
    assert (out.what, out.tries, out.elapsed, out.time) == ("SYN", 3, 15.0, 15.0)
    expect_nothing(ep, 15.0)
    assert ep.next_timer() is None


def test_rto_capped_at_rto_max():
    ep = endpoint_syn_sent(max_retries=10, rto_max=5.0)
    deadlines = []
    for _ in range(6):
        deadlines.append(ep.next_timer())
        ep.handle_timer(deadlines[-1])
        ep.segments_to_send(deadlines[-1])
    gaps = [b - a for a, b in zip([0.0, *deadlines], deadlines, strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_data_retransmission_timing_and_timeout():
    ep = endpoint_established(max_retries=2, rto_min=1.0)
    ep.send(b"x" * 10, 10.0)
    expect(ep, 10.0, [Want("P.", CISN + 1, SISN + 1, 10)])
    assert ep.next_timer() == 11.0
    ep.handle_timer(11.0)
    expect(ep, 11.0, [Want("P.", CISN + 1, SISN + 1, 10)])
    assert ep.next_timer() == 13.0
    ep.handle_timer(13.0)
    expect(ep, 13.0, [Want("P.", CISN + 1, SISN + 1, 10)])
    ep.handle_timer(ep.next_timer())
    assert ep.state is State.CLOSED
    (out,) = [e for e in drain_events(ep) if isinstance(e, TimedOut)]
    assert (out.what, out.tries, out.elapsed) == ("data", 2, 7.0)


def test_rto_rewinds_the_go_back_cursor_and_leaves_snd_nxt():
    assert not endpoint_syn_sent().snd.syn_acked
    ep = endpoint_established()
    assert ep.snd.syn_acked
    ep.send(b"x" * 3000, 0.0)
    ep.segments_to_send(0.0)
    assert (ep.snd.una, ep.snd.nxt, ep.snd.resend_from) == (1, 3001, 3001)
    t = ep.next_timer()
    ep.handle_timer(t)
    expect(ep, t, [Want(".", CISN + 1, SISN + 1, 1460)])
    # RFC 9293 SND.NXT stays where it was; only the cursor went back, to just after the resent segment.
    assert (ep.snd.nxt, ep.snd.resend_from, ep.snd_nxt) == (3001, 1461, CISN + 3001)


def test_fin_retransmitted_and_gives_up_with_fin():
    ep = endpoint_fin_wait_1(max_retries=1)
    ep.handle_timer(1.0)
    expect(ep, 1.0, [Want("F.", CISN + 1, SISN + 1)])
    ep.handle_timer(3.0)
    assert ep.state is State.CLOSED
    assert [e.what for e in drain_events(ep) if isinstance(e, TimedOut)] == ["FIN"]


def test_ack_of_new_data_restarts_timer_and_all_acked_stops_it():
    ep = endpoint_established()
    ep.send(b"a" * 2000, 0.0)
    ep.segments_to_send(0.0)
    feed(ep, 0.5, replace(PEER_ACK, ack=CISN + 1461))
    assert ep.next_timer() == pytest.approx(0.5 + ep.rto)
    feed(ep, 0.6, replace(PEER_ACK, ack=CISN + 2001))
    assert ep.next_timer() is None and ep.in_flight == 0


def test_rtt_sample_updates_rto_per_rfc6298():
    ep = endpoint_syn_sent(rto_min=0.2)
    feed(ep, 0.1, PEER_SYN_ACK)            # first sample: SRTT=0.1, RTTVAR=0.05, RTO=0.1+4*0.05
    assert ep.srtt == pytest.approx(0.1) and ep.rto == pytest.approx(0.3)
    ep.segments_to_send(0.1)
    ep.send(b"x", 1.0)
    ep.segments_to_send(1.0)
    feed(ep, 1.3, replace(PEER_ACK, ack=CISN + 2))   # R=0.3
    rttvar = 0.75 * 0.05 + 0.25 * abs(0.1 - 0.3)
    srtt = 0.875 * 0.1 + 0.125 * 0.3
    assert ep.srtt == pytest.approx(srtt) and ep.rto == pytest.approx(srtt + 4 * rttvar)


def test_karn_no_sample_from_retransmitted_segment():
    ep = endpoint_established(rto_min=0.2)
    srtt_before = ep.srtt
    ep.send(b"x" * 10, 1.0)
    ep.segments_to_send(1.0)
    t = ep.next_timer()
    ep.handle_timer(t)
    ep.segments_to_send(t)
    backed_off = ep.rto
    feed(ep, t + 0.05, replace(PEER_ACK, ack=CISN + 11))   # ambiguous: original or retransmission?
    assert ep.srtt == srtt_before and ep.rto == backed_off
    ep.send(b"y", 5.0)
    ep.segments_to_send(5.0)
    feed(ep, 5.25, replace(PEER_ACK, ack=CISN + 12))       # a segment sent once: sampled
    assert ep.srtt != srtt_before and ep.rto < backed_off


def test_syn_loss_gives_rto_3s_and_one_segment_window():
    ep = endpoint_syn_sent()
    ep.handle_timer(1.0)
    ep.segments_to_send(1.0)
    feed(ep, 1.1, PEER_SYN_ACK)
    assert ep.state is State.ESTABLISHED
    assert ep.srtt is None and ep.rto == 3.0          # RFC 6298 §5.7
    assert ep.cwnd == ep.send_mss                     # RFC 5681 §3.1


def test_rto_estimator_unit():
    est = RtoEstimator(1.0, 1.0, 60.0)
    assert est.rto == 1.0
    est.backoff()
    est.backoff()
    assert est.rto == 4.0
    est.sample(2.0)
    assert (est.srtt, est.rttvar, est.rto) == (2.0, 1.0, 6.0)
    for _ in range(10):
        est.backoff()
    assert est.rto == 60.0


# ---------------------------------------------------------------- loss between two cores
def pair(**kw):
    return EndpointPair.client_server(client=dict(kw), server=dict(kw))


def test_lost_syn_is_retransmitted():
    p = pair()
    p.drop_next("a", lambda s: s.flags == S)
    p.run(until=0.5)
    assert p.a.state is State.SYN_SENT and p.b.state is State.LISTEN
    p.run(until=1.0)
    assert p.a.state is State.ESTABLISHED and p.b.state is State.ESTABLISHED
    assert [s.seg.flags for s in p.log if s.src == "a"][:2] == [S, S]


def test_lost_syn_ack_is_retransmitted_when_the_syn_comes_again():
    p = pair()
    p.drop_next("b", lambda s: s.flags == S | A)
    p.run(until=1.0)
    # the client's SYN retransmission at t=1 makes the server resend its SYN-ACK at once
    assert p.a.state is State.ESTABLISHED and p.b.state is State.ESTABLISHED
    assert p.t == 1.0


def test_lost_final_ack_recovered_by_first_data():
    p = pair()
    p.drop_next("a", lambda s: s.flags == A and not s.payload)
    p.transfer()
    assert p.a.state is State.ESTABLISHED and p.b.state is State.SYN_RECEIVED
    p.a.send(b"data", p.t)
    p.transfer()
    assert p.b.state is State.ESTABLISHED and p.received["b"] == b"data"


def test_lost_final_ack_recovered_by_syn_ack_retransmission():
    p = pair()
    p.drop_next("a", lambda s: s.flags == A and not s.payload)
    p.run(until=1.5)
    assert p.b.state is State.ESTABLISHED and p.b.retransmits == 1


def test_lost_data_is_retransmitted_after_rto():
    p = pair()
    p.transfer()
    p.drop_next("a", lambda s: bool(s.payload))
    p.a.send(b"hello", p.t)
    p.transfer()
    assert p.received["b"] == b""
    p.run(until=5.0)
    assert p.received["b"] == b"hello" and p.a.retransmits == 1 and p.a.in_flight == 0


def test_lost_ack_of_data_is_recovered():
    p = pair()
    p.transfer()
    p.drop_next("b", lambda s: s.ack == CISN + 6)
    p.a.send(b"hello", p.t)
    p.run(until=5.0)
    assert p.received["b"] == b"hello"       # delivered once although sent twice
    assert p.a.in_flight == 0 and p.a.retransmits == 1


def test_lost_fin_and_lost_fin_ack():
    p = pair(msl2=2.0)
    p.transfer()
    p.drop_next("a", lambda s: s.has(F))
    p.a.close(p.t)
    p.transfer()
    assert p.b.state is State.ESTABLISHED
    p.run(until=1.0)
    assert p.b.state is State.CLOSE_WAIT
    p.drop_next("a", lambda s: s.flags == A)   # the client's last ACK
    p.b.close(p.t)
    p.run(until=20.0)
    assert p.a.state is State.CLOSED and p.b.state is State.CLOSED
    assert p.b.retransmits == 1


def test_fast_retransmit_on_three_dupacks():
    p = pair()
    p.transfer()
    data = bytes(range(256)) * 40   # 10240 bytes: 7 segments within the initial window
    p.drop_next("a", lambda s: s.seq == CISN + 1 + 1460)
    p.a.send(data, p.t)
    p.transfer()
    assert p.received["b"] == data and p.t == 0.0        # recovered without any timer
    assert [e.reason for e in rtx_events(p.a)] == ["fast"]
    dupacks = [s.seg for s in p.log if s.src == "b" and s.seg.ack == CISN + 1461]
    assert len(dupacks) >= 4


def test_newreno_partial_ack_retransmits_second_hole():
    p = pair()
    p.transfer()
    data = b"z" * (8 * 1460)
    holes = {CISN + 1 + 1460, CISN + 1 + 4 * 1460}
    p.drop_next("a", lambda s: s.seq in holes, count=2)
    p.a.send(data, p.t)
    p.transfer()
    assert p.received["b"] == data and p.t == 0.0
    assert [e.reason for e in rtx_events(p.a)] == ["fast", "fast"]


def test_cwnd_slow_start_and_halving():
    p = pair()
    p.transfer()
    mss = p.a.send_mss
    iw = min(10 * mss, max(2 * mss, 14600))
    assert p.a.cwnd == iw
    p.a.send(b"q" * mss, p.t)
    p.transfer()
    assert p.a.cwnd == iw + mss                     # slow start: +1 SMSS per ACK
    p.drop_next("a", lambda s: bool(s.payload))
    p.a.send(b"r" * 100, p.t)
    p.transfer()
    p.run(until=p.t + 2.0)
    assert p.a.cwnd >= mss and p.a.ssthresh == 2 * mss   # RTO: ssthresh = max(flight/2, 2 SMSS)


def test_go_back_after_rto_resends_everything_lost():
    p = pair()
    p.transfer()
    data = b"g" * (5 * 1460)
    p.drop_next("a", lambda s: bool(s.payload), count=5)
    p.a.send(data, p.t)
    p.run(until=30.0)
    assert p.received["b"] == data
    assert p.a.retransmits >= 5


def test_duplicate_and_reordered_segments_between_cores():
    p = pair()
    p.transfer()
    p.a.send(b"1" * 1460 + b"2" * 1460 + b"3" * 100, p.t)
    p.pull()
    assert len(p.queues["a"]) == 3
    p.duplicate("a", 0)
    p.reorder("a", 1, 3)
    p.deliver()
    p.transfer()
    assert p.received["b"] == b"1" * 1460 + b"2" * 1460 + b"3" * 100
    assert p.queues["a"] == [] and p.a.in_flight == 0


def test_psh_on_last_segment_of_burst_only():
    ep = endpoint_established()
    ep.send(b"p" * 3000, 0.0)
    segs = ep.segments_to_send(0.0)
    assert [bool(s.flags & P) for s in segs] == [False, False, True]
    assert all(s.flags & A for s in segs)


def test_syn_ack_resent_for_a_duplicate_syn_counts_as_a_retransmission():
    # RFC 6298 §3 (Karn): the SYN-ACK went out twice, so the ACK of it gives no RTT sample.
    ep = endpoint_syn_received()
    drain_events(ep)
    feed(ep, 0.5, Seg(CPORT, SPORT, CISN, 0, S, 65535, (("MSS", 1460),)))  # the client's SYN again
    expect(ep, 0.5, [Want("S.", SISN, CISN + 1)])
    assert ep.retransmits == 1
    assert [e.segment.flags for e in rtx_events(ep)] == [S | A]
    feed(ep, 0.55, Seg(CPORT, SPORT, CISN + 1, SISN + 1, A, 65535))
    assert ep.state is State.ESTABLISHED
    assert ep.srtt is None


def test_newreno_full_ack_sets_cwnd_per_rfc6582_step_3():
    # RFC 6582 §3.2 step 3: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) on the full ACK.
    ep = endpoint_established()
    ep.send(b"d" * 10220, 0.0)  # seven segments, all within the initial window
    assert len(ep.segments_to_send(0.0)) == 7
    for _ in range(3):
        feed(ep, 0.01, replace(PEER_ACK, ack=CISN + 1))
    (rtx,) = ep.segments_to_send(0.01)
    assert rtx.seq == CISN + 1 and ep.ssthresh == 5110
    feed(ep, 0.02, replace(PEER_ACK, ack=CISN + 1 + 10220))
    assert ep.in_flight == 0
    assert ep.cwnd == min(5110, max(0, 1460) + 1460)


@pytest.mark.parametrize("sack", [False, True])
def test_early_retransmit_when_too_few_segments_are_out_for_three_duplicates(sack):
    # RFC 5827: with fewer than four segments outstanding and nothing new to send, the duplicate
    # threshold is one less than the segments outstanding, so a loss costs no timeout.
    p = pair(sack=sack)
    p.transfer()
    p.drop_next("a", lambda s: s.seq == CISN + 1 and bool(s.payload))
    p.a.send(b"e" * 2920, p.t)  # two segments
    p.transfer()
    assert p.received["b"] == b"e" * 2920 and p.t == 0.0
    assert [e.reason for e in rtx_events(p.a)] == ["sack" if sack else "fast"]
