"""RFC 7323 timestamps, opt-in (EndpointConfig.timestamps): negotiated only when both SYNs carry TSopt,
then on every non-RST segment with TS.Recent echoed; MSS reduced by the option; a backed-off RTO
collapses on a timestamped ACK (issue 7: without timestamps, heavy loss leaves rawtcp, and a Linux
peer that then has only Karn's rule, in long exponential backoff)."""

from dataclasses import replace

import pytest

from rawtcp.core import Flags, State

from .helpers import CISN, PEER_SYN_ACK, SISN, EndpointPair, endpoint_syn_sent, feed


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
    assert p.a.send_mss == min(p.a._cfg.mss, p.b._cfg.mss) - 12
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
    assert p.a.send_mss == min(p.a._cfg.mss, p.b._cfg.mss)


def test_timestamped_ack_collapses_a_backed_off_rto():
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
    srtt = ep.srtt
    feed(ep, t + 0.05, ack)  # echoes one of our TSvals: the path works
    assert ep.in_flight == 0
    assert ep.rto == pytest.approx(0.3)  # the estimate from the handshake's 100 ms sample again
    assert ep.srtt == srtt  # an echo after retransmissions is not an RTT sample


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
