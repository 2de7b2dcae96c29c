"""Selective acknowledgment, opt-in (EndpointConfig.sack): negotiation (RFC 2018 §2), the receiver's blocks
and their order (RFC 2018 §4), D-SACK (RFC 2883 §4), and the sender's SACK recovery (core/recovery.py)."""

from dataclasses import replace

import pytest

from rawtcp.core import Retransmission
from rawtcp.core.rto import TimerKind
from rawtcp.core.sack import SackReporter

from .helpers import (
    CISN,
    PEER_ACK,
    PEER_SYN_ACK,
    SISN,
    EndpointPair,
    drain_events,
    endpoint_syn_sent,
    feed,
    peer_data,
)


def sack_of(seg):
    value = seg.option("SAck")
    return [] if value is None else [(value[i], value[i + 1]) for i in range(0, len(value), 2)]


def sack_established(**kw):
    ep = endpoint_syn_sent(sack=True, **kw)
    feed(ep, 0.0, replace(PEER_SYN_ACK, options=(("MSS", 1460), ("SAckOK", b""))))
    ep.segments_to_send(0.0)
    drain_events(ep)
    return ep


def rtx(ep):
    return [(e.reason, e.segment.seq) for e in drain_events(ep) if isinstance(e, Retransmission)]


@pytest.mark.parametrize(("client", "server", "used"), [(True, True, True), (True, False, False),
                                                        (False, True, False)])
def test_sack_permitted_only_when_both_syns_carry_it(client, server, used):
    p = EndpointPair.client_server(client={"sack": client}, server={"sack": server})
    p.transfer()
    syn, synack = p.sent_by("a")[0], p.sent_by("b")[0]
    assert syn.sack_permitted is client
    assert synack.sack_permitted is used  # RFC 2018 §2: never in a SYN-ACK to a SYN without it
    assert p.a.sack_ok is used and p.b.sack_ok is used


def test_default_syn_stays_bare_mss():
    p = EndpointPair.client_server()
    p.transfer()
    assert p.sent_by("a")[0].options == (("MSS", 1460),)


def test_blocks_in_acks_most_recent_first():
    # RFC 2018 §4: the first block holds the segment that triggered the ACK; then the most recently
    # reported blocks.
    ep = sack_established()
    base = SISN + 1
    feed(ep, 0.1, peer_data(b"b" * 100, seq=base + 200))
    (ack,) = ep.segments_to_send(0.1)
    assert ack.ack == base and sack_of(ack) == [(base + 200, base + 300)]
    feed(ep, 0.2, peer_data(b"d" * 100, seq=base + 600))
    (ack,) = ep.segments_to_send(0.2)
    assert sack_of(ack) == [(base + 600, base + 700), (base + 200, base + 300)]
    feed(ep, 0.3, peer_data(b"c" * 100, seq=base + 300))  # extends the older block
    (ack,) = ep.segments_to_send(0.3)
    assert sack_of(ack) == [(base + 200, base + 400), (base + 600, base + 700)]
    feed(ep, 0.4, peer_data(b"a" * 200, seq=base))  # fills the first hole
    (ack,) = ep.segments_to_send(0.4)
    assert ack.ack == base + 400 and sack_of(ack) == [(base + 600, base + 700)]
    feed(ep, 0.5, peer_data(b"x" * 200, seq=base + 400))
    (ack,) = ep.segments_to_send(0.5)
    assert ack.ack == base + 700 and sack_of(ack) == []


def test_at_most_four_blocks_three_beside_timestamps():
    ep = sack_established()
    base = SISN + 1
    for i in range(6):
        feed(ep, 0.1, peer_data(b"z" * 10, seq=base + 100 * (i + 1)))
    acks = ep.segments_to_send(0.1)
    assert len(acks) == 6 and len(sack_of(acks[-1])) == 4
    assert sack_of(acks[-1])[0] == (base + 600, base + 610)
    rep = SackReporter()
    for i in range(5):
        rep.note(100 * i)
    assert len(rep.blocks([(100 * i, 100 * i + 10) for i in range(5)], 3)) == 3


def test_dsack_reports_a_duplicate_below_rcv_nxt_once():
    # RFC 2883 §4: the first block of the next ACK names the duplicate; later ACKs don't repeat it.
    ep = sack_established()
    base = SISN + 1
    feed(ep, 0.1, peer_data(b"a" * 100, seq=base))
    ep.segments_to_send(0.1)
    feed(ep, 0.2, peer_data(b"a" * 100, seq=base))
    (ack,) = ep.segments_to_send(0.2)
    assert ack.ack == base + 100 and sack_of(ack) == [(base, base + 100)]
    feed(ep, 0.3, peer_data(b"b" * 50, seq=base + 100))
    (ack,) = ep.segments_to_send(0.3)
    assert sack_of(ack) == []


def test_dsack_inside_a_held_block_is_followed_by_that_block():
    ep = sack_established()
    base = SISN + 1
    feed(ep, 0.1, peer_data(b"b" * 300, seq=base + 100))
    ep.segments_to_send(0.1)
    feed(ep, 0.2, peer_data(b"b" * 100, seq=base + 200))  # a copy of held bytes
    (ack,) = ep.segments_to_send(0.2)
    assert sack_of(ack) == [(base + 200, base + 300), (base + 100, base + 400)]


def test_partially_duplicate_segment_dsacks_the_old_part():
    ep = sack_established()
    base = SISN + 1
    feed(ep, 0.1, peer_data(b"a" * 100, seq=base))
    ep.segments_to_send(0.1)
    feed(ep, 0.2, peer_data(b"a" * 150, seq=base + 50))
    assert ep.read() == b"a" * 200
    (ack,) = ep.segments_to_send(0.2)
    assert ack.ack == base + 200 and sack_of(ack) == [(base + 50, base + 100)]


def sack_pair(**kw):
    common = {"sack": True, **kw}
    p = EndpointPair.client_server(client=common, server=common)
    p.transfer()
    return p


def test_one_loss_recovered_by_sack_retransmission_without_a_timer():
    p = sack_pair()
    data = bytes(range(256)) * 40
    p.drop_next("a", lambda s: s.seq == CISN + 1 + 1460)
    p.a.send(data, p.t)
    p.transfer()
    assert p.received["b"] == data and p.t == 0.0
    assert rtx(p.a) == [("sack", CISN + 1 + 1460)]


def test_several_losses_in_one_window_recovered_in_one_round_trip():
    # NewReno repairs one hole per round trip; the scoreboard knows them all (RFC 6675 NextSeg rule 1).
    p = sack_pair()
    data = b"q" * (10 * 1460)
    holes = [CISN + 1 + 1460, CISN + 1 + 4 * 1460, CISN + 1 + 6 * 1460]
    p.drop_next("a", lambda s: s.seq in holes and bool(s.payload), count=3)
    p.a.send(data, p.t)
    p.pull()
    p.deliver()  # the window arrives with three holes
    p.pull()
    p.deliver()  # the duplicate ACKs with SACK blocks reach the sender
    p.pull()     # ... which resends what is lost, all in one go
    resent = sorted(s.seq for s in p.queues["a"] if s.payload)
    assert holes[0] in resent and holes[1] in resent
    p.transfer()
    assert p.received["b"] == data and p.t == 0.0
    assert sorted(seq for _, seq in rtx(p.a)) == holes


def test_go_back_after_timeout_skips_what_was_sacked():
    p = sack_pair()
    data = b"w" * (6 * 1460)
    first = CISN + 1
    # the original, the SACK retransmission and the tail loss probe are lost
    p.drop_next("a", lambda s: s.seq == first and bool(s.payload), count=3)
    p.a.send(data, p.t)
    p.run(until=5.0)
    assert p.received["b"] == data
    assert rtx(p.a) == [("sack", first), ("tlp", first), ("rto", first)]
    resent = [s.seg.seq for s in p.log if s.src == "a" and s.seg.payload][6:]
    assert resent == [first, first, first]  # nothing the peer SACKed went out again


def test_sender_ignores_dsack_blocks():
    ep = sack_established()
    ep.send(b"x" * 2000, 0.0)
    ep.segments_to_send(0.0)
    dsack = (("SAck", (CISN + 1, CISN + 101)),)
    feed(ep, 0.1, replace(PEER_ACK, ack=CISN + 1461, options=dsack))
    assert ep.snd_una == CISN + 1461
    ep.send(b"y" * 10, 0.2)  # nothing counted as SACKed: no SACK recovery, new data goes out
    assert [len(s.payload) for s in ep.segments_to_send(0.2) if s.payload] == [10]


def test_tail_loss_probe_repairs_a_lost_last_segment_before_the_rto():
    # RFC 8985 §7: with SACK, a probe after PTO = 2*SRTT (+ the worst-case delayed ACK for a single
    # segment in flight) resends the last segment; the timeout never fires.
    p = sack_pair(rto_min=1.0)
    p.t = 1.0
    data = b"t" * (3 * 1460)
    last = CISN + 1 + 2 * 1460
    p.drop_next("a", lambda s: s.seq == last and bool(s.payload))
    p.a.send(data, p.t)
    p.run(until=1.9)  # before the 1 s RTO
    assert p.received["b"] == data
    assert rtx(p.a) == [("tlp", last)]
    # The probe repaired a loss: a congestion response (§7.4), once an ACK goes past the probe (an ACK
    # exactly at its end might be the original's, Linux's tcp_process_tlp_ack).
    p.a.send(b"u" * 1460, p.t)
    p.run(until=2.5)
    assert p.received["b"] == data + b"u" * 1460
    assert p.a.cwnd < 3 * 1460 + 14600


def _probe_resent_the_last_segment():
    """Three segments out, the first two ACKed, then the loss probe fires: it resends the third (RFC 8985
    §7.3, nothing new to send). Returns the endpoint, the probe's end and the cwnd before any response."""
    ep = sack_established()
    ep.send(b"p" * (3 * 1460), 0.0)
    ep.segments_to_send(0.0)
    feed(ep, 0.1, replace(PEER_ACK, ack=CISN + 1 + 2 * 1460))
    ep.segments_to_send(0.1)
    drain_events(ep)
    assert ep.timer.kind is TimerKind.PROBE
    ep.handle_timer(ep.timer.deadline)
    t = ep.timer.deadline - ep.rto
    [probe] = [s for s in ep.segments_to_send(t) if s.payload]
    assert probe.seq == CISN + 1 + 2 * 1460 and rtx(ep) == [("tlp", probe.seq)]
    return ep, CISN + 1 + 3 * 1460, ep.cwnd, t


def test_an_ack_at_the_probes_end_waits_for_the_dsack_before_calling_it_a_loss():
    # RFC 8985 §7.4 as Linux's tcp_process_tlp_ack runs it: an ACK exactly at the probe's end may be
    # the original's; the probe's D-SACK, arriving after it, shows nothing was lost: no cwnd response.
    ep, end, cwnd, t = _probe_resent_the_last_segment()
    feed(ep, t + 0.05, replace(PEER_ACK, ack=end))
    assert ep.cwnd >= cwnd
    dsack = (("SAck", (end - 1460, end)),)
    feed(ep, t + 0.06, replace(PEER_ACK, ack=end, options=dsack))
    ep.send(b"q" * 1460, t + 0.2)
    ep.segments_to_send(t + 0.2)
    feed(ep, t + 0.3, replace(PEER_ACK, ack=end + 1460))
    assert ep.cwnd >= cwnd


def test_an_ack_past_the_probe_without_a_dsack_means_the_probe_repaired_a_loss():
    # RFC 8985 §7.4.2: once the ACKs go past the probe and no D-SACK named it, the probe was the only
    # copy to arrive: respond to the loss (ssthresh and cwnd halve, Linux's TLP CWR response).
    ep, end, cwnd, t = _probe_resent_the_last_segment()
    feed(ep, t + 0.05, replace(PEER_ACK, ack=end))
    ep.send(b"q" * 1460, t + 0.2)
    ep.segments_to_send(t + 0.2)
    feed(ep, t + 0.3, replace(PEER_ACK, ack=end + 1460))
    assert ep.cwnd < cwnd


def test_dsack_for_a_retransmission_paws_rejects():
    # Reordering delivers a retransmission with an older TSval than one already recorded: PAWS drops
    # it (RFC 7323 §5.3 R1), but the duplicate ACK still names it in a D-SACK, as Linux's
    # tcp_send_dupack does, so the sender learns its retransmission was needless and can undo.
    ep = endpoint_syn_sent(sack=True, timestamps=True)
    feed(ep, 0.0, replace(PEER_SYN_ACK, options=(("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)))))
    ep.segments_to_send(0.0)
    base = SISN + 1

    def data(payload, seq, tsval):
        return replace(peer_data(payload, seq=seq), options=(("NOP", None), ("NOP", None),
                                                              ("Timestamp", (tsval, 0))))

    feed(ep, 0.1, data(b"a" * 100, base, 150))
    ep.segments_to_send(0.1)
    feed(ep, 0.15, data(b"b" * 100, base + 100, 160))
    ep.segments_to_send(0.15)
    feed(ep, 0.2, data(b"a" * 100, base, 155))  # older than TS.Recent (160): PAWS
    (ack,) = ep.segments_to_send(0.2)
    assert ack.ack == base + 200 and sack_of(ack) == [(base, base + 100)]
    assert dict(ack.options)["Timestamp"][1] == 160
