"""Sender silly-window avoidance (RFC 9293 §3.8.6.2.1, MUST-38) and Nagle (RFC 896, RFC 9293 §3.7.4,
switchable like TCP_NODELAY)."""

from dataclasses import replace

from rawtcp.core.rto import TimerKind

from .helpers import (
    CISN,
    PEER_ACK,
    PEER_SYN_ACK,
    Want,
    endpoint_established,
    endpoint_syn_sent,
    expect,
    expect_nothing,
    feed,
)

D = CISN + 1


def test_no_runt_into_a_small_window_until_the_override_timeout():
    # MUST-38: with 1000 bytes queued and a 10-byte window (under half the peer's largest window and
    # under one MSS) nothing is sent; the persist timer's expiry is the override (RFC 9293 (4)).
    ep = endpoint_established()
    feed(ep, 0.1, replace(PEER_ACK, window=10))
    ep.send(b"s" * 1000, 0.2)
    expect_nothing(ep, 0.2)
    assert ep.timer is not None and ep.timer.kind is TimerKind.PERSIST
    t = ep.next_timer()
    ep.handle_timer(t)
    expect(ep, t, [Want("P.", D, ep.rcv_nxt, 10)])
    feed(ep, t + 0.1, replace(PEER_ACK, ack=D + 10, window=2000))
    (seg,) = ep.segments_to_send(t + 0.1)
    assert seg.seq == D + 10 and len(seg.payload) == 990


def test_half_the_largest_window_may_be_sent():
    # RFC 9293 §3.8.6.2.1 (3): at least Fs = 1/2 of the largest window the peer offered.
    ep = endpoint_established()
    feed(ep, 0.1, replace(PEER_ACK, window=1000))  # the largest window is still 65535
    ep.send(b"s" * 5000, 0.2)
    expect_nothing(ep, 0.2)
    ep2 = endpoint_syn_sent()
    feed(ep2, 0.0, replace(PEER_SYN_ACK, window=1200))  # a peer with a small buffer
    feed(ep2, 0.1, replace(PEER_ACK, window=1000))  # 1000 >= 1200 / 2
    ep2.segments_to_send(0.1)
    ep2.send(b"s" * 5000, 0.2)
    expect(ep2, 0.2, [Want("P.", D, ep2.rcv_nxt, 1000)])


def test_nagle_holds_a_small_segment_while_data_is_unacknowledged():
    ep = endpoint_established(nagle=True)
    ep.send(b"a" * 100, 0.0)
    expect(ep, 0.0, [Want("P.", D, ep.rcv_nxt, 100)])
    ep.send(b"b" * 100, 0.01)
    ep.send(b"c" * 100, 0.02)
    expect_nothing(ep, 0.02)  # RFC 896: wait for the ACK
    feed(ep, 0.05, replace(PEER_ACK, ack=D + 100))
    expect(ep, 0.05, [Want("P.", D + 100, ep.rcv_nxt, 200)])


def test_nagle_sends_full_segments_and_a_fin_at_once():
    ep = endpoint_established(nagle=True)
    ep.send(b"a" * 100, 0.0)
    ep.segments_to_send(0.0)
    ep.send(b"b" * 1500, 0.01)
    expect(ep, 0.01, [Want("P.", D + 100, ep.rcv_nxt, 1460)])  # the 40-byte tail waits
    ep.close(0.02)
    expect(ep, 0.02, [Want("FP.", D + 1560, ep.rcv_nxt, 40)])  # a FIN is never held back (Linux)


def test_nodelay_sends_small_segments_at_once():
    ep = endpoint_established(nagle=False)
    ep.send(b"a" * 100, 0.0)
    ep.segments_to_send(0.0)
    ep.send(b"b" * 100, 0.01)
    expect(ep, 0.01, [Want("P.", D + 100, ep.rcv_nxt, 100)])


def test_nagle_as_linux_runs_it_sends_the_tail_after_full_segments_at_once():
    # Linux's Nagle is Minshall's variant (tcp_nagle_check, tcp_minshall_check): a short segment is
    # held only while an earlier short one is unacknowledged, so the tail of a write goes out behind
    # its full segments instead of waiting a round trip for all of them to be ACKed.
    ep = endpoint_established(nagle=True)
    ep.send(b"a" * 1460 * 2 + b"t" * 40, 0.0)
    expect(ep, 0.0, [Want(".", D, ep.rcv_nxt, 1460), Want(".", D + 1460, ep.rcv_nxt, 1460),
                     Want("P.", D + 2920, ep.rcv_nxt, 40)])
    ep.send(b"u" * 10, 0.01)
    expect_nothing(ep, 0.01)  # the 40-byte tail is unacknowledged: this one waits
    feed(ep, 0.05, replace(PEER_ACK, ack=D + 2960))
    expect(ep, 0.05, [Want("P.", D + 2960, ep.rcv_nxt, 10)])
