"""RFC 7323 timestamps, opt-in (EndpointConfig.timestamps): negotiated only when both SYNs carry TSopt,
then on every non-RST segment with TS.Recent echoed; MSS reduced by the option; every ACK of new data an
RTT sample (RTTM), which collapses a backed-off RTO; PAWS; TS.Recent kept per §4.3 and Appendix D."""

from dataclasses import replace

import pytest

from rawtcp.core import Flags, State

from .helpers import (
    CISN,
    CPORT,
    PEER_ACK,
    PEER_SYN_ACK,
    SISN,
    SPORT,
    EndpointPair,
    endpoint_listen,
    endpoint_syn_sent,
    feed,
    peer_data,
)
from .helpers import Segment as Seg


def _ts(seg):
    return seg.option("Timestamp")


def test_negotiated_when_both_offer():
    p = EndpointPair.client_server(client={"timestamps": True}, server={"timestamps": True})
    p.transfer()
    p.a.send(b"x" * 3000, p.t)
    p.b.send(b"y" * 10, p.t)
    p.transfer()
    assert p.received["b"] == b"x" * 3000 and p.received["a"] == b"y" * 10
    syn, synack = p.sent_by("a")[0], p.sent_by("b")[0]
    assert syn.flags == Flags.SYN and _ts(syn)[1] == 0
    assert synack.has(Flags.SYN | Flags.ACK) and _ts(synack)[1] == _ts(syn)[0]  # echoes our TSval
    for seg in p.sent_by("a") + p.sent_by("b"):
        assert _ts(seg) is not None, seg
    assert p.a.send_mss == min(p.a.config.mss, p.b.config.mss) - 12
    assert max(len(s.payload) for s in p.sent_by("a")) == p.a.send_mss


@pytest.mark.parametrize(("client", "server"), [(True, False), (False, True), (False, False)])
def test_not_used_unless_both_syns_carry_it(client, server):
    p = EndpointPair.client_server(client={"timestamps": client}, server={"timestamps": server})
    p.transfer()
    p.a.send(b"x" * 100, p.t)
    p.transfer()
    assert p.received["b"] == b"x" * 100
    segs = p.sent_by("a") + p.sent_by("b")
    assert all(_ts(s) is None for s in segs[1:] if not (client and s is p.sent_by("a")[0]))
    assert p.a.send_mss == min(p.a.config.mss, p.b.config.mss)


def test_timestamped_ack_of_a_retransmission_is_a_sample_that_collapses_the_rto():
    ep = endpoint_syn_sent(timestamps=True, rto_min=0.2)
    ep.segments_to_send(0.0)
    synack = replace(PEER_SYN_ACK, options=(*PEER_SYN_ACK.options, ("Timestamp", (5000, 0))))
    feed(ep, 0.1, synack)
    assert ep.state is State.ESTABLISHED
    ep.segments_to_send(0.1)
    ep.send(b"z" * 1000, 1.0)
    (data,) = [s for s in ep.segments_to_send(1.0) if s.payload]
    assert _ts(data)[1] == 5000  # TS.Recent echoed
    t = 1.0
    for _ in range(4):
        t = ep.next_timer()
        ep.handle_timer(t)
        (again,) = [s for s in ep.segments_to_send(t) if s.payload]
    assert ep.rto > 1.0  # backed off four times
    ack = replace(PEER_SYN_ACK, flags=Flags.ACK, seq=SISN + 1, ack=CISN + 1001,
                  options=(("Timestamp", (5100, _ts(again)[0])),))
    feed(ep, t + 0.05, ack)  # echoes the TSval of the last retransmission: R = 50 ms
    assert ep.in_flight == 0
    srtt = 0.875 * 0.1 + 0.125 * 0.05  # RFC 6298 §2.3 after the handshake's 100 ms sample
    assert ep.srtt == pytest.approx(srtt)
    assert ep.rto == pytest.approx(srtt + 4 * 0.05)


def test_heavy_loss_with_timestamps_between_two_cores():
    p = EndpointPair.client_server(client={"timestamps": True, "rto_min": 0.2},
                                   server={"timestamps": True, "rto_min": 0.2})
    p.transfer()
    data = bytes(range(256)) * 400
    sent: dict[int, int] = {}

    def lose(segment) -> bool:  # 30 % of data segments lost, each of them twice
        if not segment.payload:
            return False
        sent[segment.seq] = sent.get(segment.seq, 0) + 1
        return segment.seq % 10 < 3 and sent[segment.seq] <= 2

    p.drop_next("a", lose, count=10**6)
    start = p.t
    p.a.send(data, p.t)
    p.run(until=start + 300.0)
    assert p.received["b"] == data
    finished = max(s.time for s in p.log if s.src == "a" and s.seg.payload)
    assert finished - start < 60.0, finished - start


def ts_established(tsval: int = 100):
    """An endpoint that negotiated timestamps with the scripted peer (the peer's SYN-ACK TSval 100)."""
    ep = endpoint_syn_sent(timestamps=True)
    synack = replace(PEER_SYN_ACK, options=(*PEER_SYN_ACK.options, ("Timestamp", (tsval, 0))))
    feed(ep, 0.0, synack)
    ep.segments_to_send(0.0)
    return ep


def peer_ts(payload: bytes, tsval: int, seq: int = SISN + 1, **kw):
    return replace(PEER_ACK, seq=seq, flags=Flags.PSH | Flags.ACK, payload=payload,
                   options=(("NOP", None), ("NOP", None), ("Timestamp", (tsval, 0))), **kw)


def test_ts_recent_not_taken_from_an_unacceptable_segment():
    # RFC 7323 Appendix D: TS.Recent is recorded only after the segment passed the window check, so an
    # old duplicate with a wild TSval cannot freeze every later echo (or, with PAWS, the connection).
    ep = ts_established()
    feed(ep, 0.1, peer_ts(b"old", 2**31 + 5, seq=SISN + 1 - 100000))
    ep.segments_to_send(0.1)
    feed(ep, 0.2, peer_ts(b"hello", 120))
    assert ep.read() == b"hello"
    (ack,) = ep.segments_to_send(0.2)
    assert ack.ack == SISN + 6 and _ts(ack)[1] == 120


def test_paws_drops_a_segment_with_an_old_tsval():
    # RFC 7323 §5.3 R1: SEG.TSval < TS.Recent -> not acceptable: ACK and drop.
    ep = ts_established()
    feed(ep, 0.1, peer_ts(b"hello", 150))
    ep.segments_to_send(0.1)
    assert ep.read() == b"hello"
    feed(ep, 0.2, peer_ts(b"stale", 140, seq=SISN + 6))
    assert ep.read() == b"" and ep.rcv_nxt == SISN + 6
    (ack,) = ep.segments_to_send(0.2)
    assert ack.ack == SISN + 6 and _ts(ack)[1] == 150
    feed(ep, 0.3, peer_ts(b"fresh", 150, seq=SISN + 6))  # equal TSval passes (§5.3: "less than")
    assert ep.read() == b"fresh"


def test_paws_does_not_drop_a_reset():
    ep = ts_established()
    feed(ep, 0.1, peer_ts(b"hello", 150))
    feed(ep, 0.2, replace(PEER_ACK, seq=SISN + 6, flags=Flags.RST, options=(("Timestamp", (1, 0)),)))
    assert ep.state is State.CLOSED


def test_segment_without_tsopt_dropped_once_negotiated():
    # RFC 7323 §3.2: once TSopt is negotiated, a non-RST segment without it SHOULD be silently dropped.
    ep = ts_established()
    feed(ep, 0.1, peer_data(b"bare"))
    assert ep.read() == b"" and ep.rcv_nxt == SISN + 1
    assert ep.segments_to_send(0.1) == []
    feed(ep, 0.2, replace(PEER_ACK, flags=Flags.RST))  # ... but an RST without it is not
    assert ep.state is State.CLOSED


def test_rtt_sampled_from_the_echoed_tsval():
    # RFC 7323 §4.1 (RTTM): an ACK of new data gives RTT = now - TSecr, also after a retransmission,
    # because the echo names the transmission it answers; Karn's ambiguity is gone (RFC 6298 §3).
    ep = ts_established()
    ep.send(b"z" * 100, 1.0)
    ep.segments_to_send(1.0)
    assert ep.srtt == 0.0  # the handshake's sample, taken at t=0
    t = ep.next_timer()
    ep.handle_timer(t)
    (again,) = [s for s in ep.segments_to_send(t) if s.payload]
    feed(ep, t + 0.04, replace(PEER_ACK, ack=CISN + 101, options=(("Timestamp", (200, _ts(again)[0])),)))
    assert ep.srtt == pytest.approx(0.04 / 8, abs=0.0002)  # RFC 6298 §2.3 with R = 40 ms


def test_echo_times_a_retransmitted_syn_ack_honestly():
    # Karn's rule forbids a sample from the ACK of a SYN-ACK sent twice (RFC 6298 §3); the echoed TSval
    # names the copy that arrived (RFC 7323 §4.1), so with timestamps the sample is taken, and right.
    ep = endpoint_listen(timestamps=True)
    feed(ep, 0.0, Seg(CPORT, SPORT, CISN, 0, Flags.SYN, 65535, (("MSS", 1460), ("Timestamp", (7, 0)))))
    ep.segments_to_send(0.0)
    ep.handle_timer(1.0)
    (again,) = ep.segments_to_send(1.0)
    assert ep.retransmits == 1
    feed(ep, 1.03, Seg(CPORT, SPORT, CISN + 1, SISN + 1, Flags.ACK, 65535, (("Timestamp", (8, _ts(again)[0])),)))
    assert ep.state is State.ESTABLISHED
    assert ep.srtt == pytest.approx(0.03, abs=0.0015)


def test_retransmission_ending_at_our_last_ack_refreshes_the_echo():
    # Linux's sequence check takes a segment ending at RCV.WUP (Last.ACK.sent) for TS.Recent, so the
    # duplicate ACK for a retransmission whose original ACK was lost echoes the retransmission's
    # TSval. Echoing the original's instead hands the sender an RTT sample as long as its whole
    # timeout (it may time echoes of retransmissions, RFC 7323 §4.1), inflating its RTO after every
    # ACK loss.
    ep = ts_established()
    feed(ep, 0.1, peer_ts(b"hello", 150))
    ep.segments_to_send(0.1)  # this ACK is lost on the way back
    assert ep.read() == b"hello"
    feed(ep, 1.5, peer_ts(b"hello", 1550))
    (ack,) = ep.segments_to_send(1.5)
    assert ack.ack == SISN + 6 and _ts(ack)[1] == 1550


def test_older_duplicate_still_echoes_the_segment_in_order():
    # ... but a duplicate entirely below Last.ACK.sent is not taken (Linux's OLD_SEQUENCE drop): the
    # echo stays with the newest in-order segment.
    ep = ts_established()
    feed(ep, 0.1, peer_ts(b"hello", 150))
    ep.segments_to_send(0.1)
    feed(ep, 0.2, peer_ts(b"world", 250, seq=SISN + 6))
    ep.segments_to_send(0.2)
    assert ep.read() == b"helloworld"
    feed(ep, 1.5, peer_ts(b"hello", 1550))
    (ack,) = ep.segments_to_send(1.5)
    assert ack.ack == SISN + 11 and _ts(ack)[1] == 250


def test_paws_forgives_one_tick_as_linux_does():
    # Linux's PAWS window (TCP_PAWS_WINDOW) takes a TSval one tick older than TS.Recent: a burst sent
    # across a millisecond boundary and reordered on the way is not dropped.
    ep = ts_established()
    feed(ep, 0.1, peer_ts(b"hello", 150))
    ep.segments_to_send(0.1)
    feed(ep, 0.2, peer_ts(b"world", 149, seq=SISN + 6))
    assert ep.read() == b"helloworld"
    feed(ep, 0.3, peer_ts(b"stale", 147, seq=SISN + 11))
    assert ep.read() == b""
