"""Receive side: acceptability, duplicates, reassembly, honest windows, zero window and persist."""

from dataclasses import replace

from rawtcp.core import DataReceived, Flags, State
from rawtcp.core.reassembly import Reassembly
from rawtcp.core.rto import TimerKind

from .helpers import (
    CISN,
    PEER_ACK,
    PEER_FIN,
    SISN,
    A,
    EndpointPair,
    Want,
    drain_events,
    endpoint_established,
    expect,
    expect_nothing,
    feed,
    peer_data,
)

ACK_SEQ = CISN + 1


def test_in_order_data_acked_immediately():
    ep = endpoint_established()
    feed(ep, 1.0, peer_data(b"abc"))
    expect(ep, 1.0, [Want(".", ACK_SEQ, SISN + 4)])
    assert ep.readable == 3 and ep.read() == b"abc" and ep.readable == 0
    assert [e.nbytes for e in drain_events(ep) if isinstance(e, DataReceived)] == [3]


def test_duplicate_segment_reacked_not_redelivered():
    ep = endpoint_established()
    feed(ep, 1.0, peer_data(b"abc"))
    ep.segments_to_send(1.0)
    feed(ep, 1.1, peer_data(b"abc"))
    expect(ep, 1.1, [Want(".", ACK_SEQ, SISN + 4)])
    assert ep.read() == b"abc"


def test_keepalive_below_rcv_nxt_answered_with_ack():
    ep = endpoint_established()
    feed(ep, 5.0, replace(PEER_ACK, seq=SISN))          # seq = RCV.NXT - 1, no data (Linux keepalive)
    expect(ep, 5.0, [Want(".", ACK_SEQ, SISN + 1)])
    feed(ep, 6.0, replace(PEER_ACK, seq=SISN, payload=b"\x00"))   # BSD keepalive with one garbage byte
    expect(ep, 6.0, [Want(".", ACK_SEQ, SISN + 1)])
    assert ep.readable == 0


def test_segment_beyond_window_answered_with_ack():
    ep = endpoint_established(recv_buffer=1000)
    feed(ep, 0.0, peer_data(b"x", seq=SISN + 1 + 5000))
    expect(ep, 0.0, [Want(".", ACK_SEQ, SISN + 1)])


def test_ack_for_unsent_data_answered_and_dropped():
    ep = endpoint_established()
    feed(ep, 0.0, peer_data(b"data", ack=CISN + 500))
    expect(ep, 0.0, [Want(".", ACK_SEQ, SISN + 1)])
    assert ep.readable == 0


def test_segment_without_ack_is_dropped():
    ep = endpoint_established()
    feed(ep, 0.0, replace(peer_data(b"data"), flags=Flags(0)))
    expect_nothing(ep, 0.0)
    assert ep.readable == 0


def test_out_of_order_dupacks_and_reassembly():
    ep = endpoint_established()
    base = SISN + 1
    feed(ep, 0.0, peer_data(b"CCCC", seq=base + 8))
    feed(ep, 0.0, peer_data(b"BBBB", seq=base + 4))
    expect(ep, 0.0, [Want(".", ACK_SEQ, base), Want(".", ACK_SEQ, base)])   # one dupack per arrival
    assert ep.readable == 0
    feed(ep, 0.1, peer_data(b"AAAAB", seq=base))       # overlaps the held range by one byte
    expect(ep, 0.1, [Want(".", ACK_SEQ, base + 12)])
    assert ep.read() == b"AAAABBBBCCCC"


def test_overlapping_retransmission_trimmed_left():
    ep = endpoint_established()
    base = SISN + 1
    feed(ep, 0.0, peer_data(b"0123", seq=base))
    feed(ep, 0.0, peer_data(b"234567", seq=base + 2))
    assert ep.read() == b"01234567" and ep.rcv_nxt == base + 8


def test_out_of_order_fin_waits_for_the_gap():
    ep = endpoint_established()
    base = SISN + 1
    feed(ep, 0.0, replace(PEER_FIN, seq=base + 3, payload=b"def"))
    assert ep.state is State.ESTABLISHED and not ep.peer_fin
    feed(ep, 0.0, peer_data(b"abc", seq=base))
    assert ep.state is State.CLOSE_WAIT and ep.read() == b"abcdef" and ep.rcv_nxt == base + 7


def test_bare_out_of_order_fin():
    ep = endpoint_established()
    base = SISN + 1
    feed(ep, 0.0, replace(PEER_FIN, seq=base + 3))
    expect(ep, 0.0, [Want(".", ACK_SEQ, base)])
    feed(ep, 0.0, peer_data(b"abc", seq=base))
    assert ep.state is State.CLOSE_WAIT


def test_reassembly_unit():
    r = Reassembly()
    r.add(10, b"klm")
    r.add(5, b"fghijklmnop")
    r.add(0, b"ab")
    assert r.blocks() == [(0, 2), (5, 16)] and r.size == 13
    assert r.pop(0) == b"ab"
    assert r.pop(2) == b""
    r.add(2, b"cde")
    assert r.pop(2) == b"cdefghijklmnop" and len(r) == 0
    r.add(20, b"x")
    assert r.pop(30) == b"" and r.size == 0


# ---------------------------------------------------------------- windows
def test_honest_window_shrinks_as_buffer_fills_without_read():
    ep = endpoint_established(recv_buffer=4000)
    base = SISN + 1
    windows = []
    for i in range(4):
        feed(ep, 0.0, peer_data(b"d" * 1000, seq=base + 1000 * i))
        (ack,) = ep.segments_to_send(0.0)
        windows.append(ack.window)
    assert windows == [3000, 2000, 1000, 0]
    assert ep.rcv_wnd == 0
    feed(ep, 0.0, peer_data(b"e" * 10, seq=base + 4000))   # zero window: text dropped, ACK with window 0
    expect(ep, 0.0, [Want(".", ACK_SEQ, base + 4000, window=0)])
    assert ep.readable == 4000


def test_window_update_when_read_reopens_window():
    ep = endpoint_established(recv_buffer=3000, mss=1000)
    feed(ep, 0.0, peer_data(b"d" * 1000), peer_data(b"d" * 1500, seq=SISN + 1001))
    expect(ep, 0.0, [Want(".", ACK_SEQ, SISN + 2501, window=500)])
    ep.read(100)                                   # 600 < one MSS: still silent
    expect_nothing(ep, 0.1)
    ep.read(1000)
    expect(ep, 0.2, [Want(".", ACK_SEQ, SISN + 2501, window=1600)])
    ep.read()
    expect_nothing(ep, 0.3)                        # was not below one MSS any more


def test_window_capped_without_scaling_and_scaled_with_it():
    ep = endpoint_established()
    feed(ep, 0.0, peer_data(b"x"))
    (ack,) = ep.segments_to_send(0.0)
    assert ep.rcv_wnd == 65535 and ack.window == 65535
    p = EndpointPair.client_server(client={"wscale": 7}, server={"wscale": 2})
    p.pull()
    syn = p.queues["a"][0]
    assert syn.option("WScale") == 7 and syn.window == 65535   # never scaled in a SYN
    p.transfer()
    assert p.a.rcv_wscale == 7 and p.a.snd_wscale == 2 and p.b.snd_wscale == 7
    assert p.a.rcv_wnd == 4 * 1024 * 1024 and p.b.snd_wnd == (4 * 1024 * 1024 >> 7) << 7


def test_no_scaling_unless_both_offer():
    p = EndpointPair.client_server(client={"wscale": 7}, server={})
    p.transfer()
    synack = next(s.seg for s in p.log if s.src == "b")
    assert synack.option("WScale") is None
    assert p.a.rcv_wscale == p.a.snd_wscale == 0 and p.a.rcv_wnd == 65535
    p = EndpointPair.client_server(client={}, server={"wscale": 7})
    p.transfer()
    assert next(s.seg for s in p.log if s.src == "b").option("WScale") is None


def test_fixed_window_override():
    ep = endpoint_established(window=1000)
    feed(ep, 0.0, peer_data(b"x"))
    (ack,) = ep.segments_to_send(0.0)
    assert ack.window == 1000


def test_never_send_beyond_peer_window():
    ep = endpoint_established()
    feed(ep, 0.0, replace(PEER_ACK, window=2000))
    ep.send(b"w" * 5000, 0.0)
    segs = ep.segments_to_send(0.0)
    # 540 more bytes would fit, but sender SWS avoidance (RFC 9293 §3.8.6.2.1) waits for the ACK
    assert [len(s.payload) for s in segs] == [1460]
    feed(ep, 0.1, replace(PEER_ACK, ack=CISN + 1461, window=700))
    # 700 is under one MSS and under half the largest window: no runt (MUST-38) until the override
    # timeout, the persist timer, fires
    assert ep.segments_to_send(0.1) == [] and ep.timer.kind is TimerKind.PERSIST
    t = ep.next_timer()
    ep.handle_timer(t)
    assert [len(s.payload) for s in ep.segments_to_send(t)] == [700]
    feed(ep, t + 0.1, replace(PEER_ACK, ack=CISN + 2161, window=0))
    expect_nothing(ep, t + 0.1)
    assert ep.snd_nxt == CISN + 2161 and ep.unsent == 5000 - 2160


def test_data_segmented_by_peer_mss():
    p = EndpointPair.client_server(server={"mss": 500})
    p.transfer()
    p.a.send(b"m" * 1200, p.t)
    p.pull()
    assert [len(s.payload) for s in p.queues["a"]] == [500, 500, 200]


def test_zero_window_persist_probe_and_reopen():
    ep = endpoint_established(rto_min=1.0)
    feed(ep, 0.0, replace(PEER_ACK, window=0))
    ep.send(b"z" * 100, 0.0)
    expect_nothing(ep, 0.0)
    assert ep.timer.kind is TimerKind.PERSIST and ep.next_timer() == 1.0
    ep.handle_timer(1.0)
    expect(ep, 1.0, [Want(".", CISN, SISN + 1)])   # probe: SEQ = SND.UNA - 1, no data
    assert ep.next_timer() == 3.0                  # backed off
    feed(ep, 1.1, replace(PEER_ACK, window=0))     # the peer answers, window still closed
    ep.handle_timer(3.0)
    expect(ep, 3.0, [Want(".", CISN, SISN + 1)])
    feed(ep, 3.1, replace(PEER_ACK, window=1000))
    expect(ep, 3.1, [Want("P.", CISN + 1, SISN + 1, 100)])
    assert ep.timer.kind is TimerKind.RETRANSMIT and ep.state is State.ESTABLISHED


def test_persist_gives_up_when_probes_unanswered():
    ep = endpoint_established(max_retries=2)
    feed(ep, 0.0, replace(PEER_ACK, window=0))
    ep.send(b"z", 0.0)
    ep.segments_to_send(0.0)
    for _ in range(3):
        ep.handle_timer(ep.next_timer())
        ep.segments_to_send(0.0)
    assert ep.state is State.CLOSED


def test_zero_window_between_cores_no_deadlock_no_loss():
    p = EndpointPair.client_server(server={"recv_buffer": 3000})
    p.transfer()
    p.auto_read = False
    data = bytes(range(256)) * 40
    sent = p.a.send(data, p.t)
    got = bytearray()
    # the server's application does not read for a while: the client must stop, then resume
    for _ in range(200):
        p.pull()
        p.deliver()
        assert p.b.readable <= 3000
        got += p.b.read() if p.t > 2.0 else b""
        if len(got) == sent:
            break
        due = p.next_timer()
        if not p.queues["a"] and not p.queues["b"] and due is not None:
            p.t = due
            p.a.handle_timer(p.t)
            p.b.handle_timer(p.t)
    assert bytes(got) == data[:sent]
    # the server's window closed below one segment (no runts are sent into it: RFC 9293 §3.8.6.2.1)
    assert any(s.src == "b" and s.seg.window < 1460 and s.seg.ack != 0 for s in p.log[3:])


def test_ack_processing_at_zero_window_still_accepts_acks():
    ep = endpoint_established(recv_buffer=10)
    feed(ep, 0.0, peer_data(b"0123456789"))
    ep.segments_to_send(0.0)
    assert ep.rcv_wnd == 0
    ep.send(b"hi", 0.0)
    ep.segments_to_send(0.0)
    feed(ep, 0.1, replace(PEER_ACK, seq=SISN + 11, ack=CISN + 3, flags=A))
    assert ep.in_flight == 0
    feed(ep, 0.2, replace(PEER_FIN, seq=SISN + 11, ack=CISN + 3))   # a bare FIN fits a zero window
    assert ep.state is State.CLOSE_WAIT


def test_window_shrunk_to_zero_under_data_in_flight_does_not_time_out():
    ep = endpoint_established(max_retries=2, rto_min=1.0)
    ep.send(b"k" * 100, 0.0)
    ep.segments_to_send(0.0)
    t = 0.0
    for _ in range(6):                              # the peer keeps answering with a zero window
        feed(ep, t + 0.1, replace(PEER_ACK, window=0))
        t = ep.next_timer()
        ep.handle_timer(t)
        expect(ep, t, [Want("P.", CISN + 1, SISN + 1, 100)])
    assert ep.state is State.ESTABLISHED
    for _ in range(4):                              # then it goes silent: give up after max_retries
        due = ep.next_timer()
        if due is None:
            break
        ep.handle_timer(due)
        ep.segments_to_send(0.0)
    assert ep.state is State.CLOSED


def test_receiver_sws_avoidance_keeps_a_small_window_opening_unannounced():
    # RFC 9293 §3.8.6.2.2 (MUST-39): after the buffer filled, reading one byte must not advertise
    # win=1; the right edge stays put until the window can open by min(RCV.BUFF / 2, MSS).
    ep = endpoint_established(recv_buffer=3000, mss=1000)
    base = SISN + 1
    feed(ep, 0.0, peer_data(b"d" * 1000), peer_data(b"d" * 1000, seq=base + 1000),
         peer_data(b"d" * 1000, seq=base + 2000))
    expect(ep, 0.0, [Want(".", ACK_SEQ, base + 3000, window=0)])
    assert ep.read(1) == b"d"
    probe = replace(PEER_ACK, seq=base + 2999)  # a zero-window probe: answered with the window
    feed(ep, 0.5, probe)
    expect(ep, 0.5, [Want(".", ACK_SEQ, base + 3000, window=0)])
    ep.read(998)  # 999 free: still under one MSS
    feed(ep, 1.0, probe)
    expect(ep, 1.0, [Want(".", ACK_SEQ, base + 3000, window=0)])
    ep.read(1)  # 1000 free: a full segment's worth, announced at once
    expect(ep, 1.5, [Want(".", ACK_SEQ, base + 3000, window=1000)])
