"""RST sent and accepted per RFC 9293 §3.10.7, with RFC 5961's checks (challenge ACKs)."""

from dataclasses import replace

import pytest

from rawtcp.core import ConnectionRefused, ConnectionReset, Segment, State

from .helpers import (
    CISN,
    CPORT,
    ENDPOINT_IN,
    PEER_ACK,
    PEER_RST,
    PEER_SYN,
    PEER_SYN_ACK,
    SISN,
    SPORT,
    A,
    EndpointPair,
    F,
    R,
    S,
    Want,
    drain_events,
    endpoint_closed,
    endpoint_established,
    endpoint_listen,
    endpoint_syn_received,
    endpoint_syn_sent,
    expect,
    expect_nothing,
    feed,
)

SYNCHRONIZED = [State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING,
                State.LAST_ACK, State.TIME_WAIT]


# ---------------------------------------------------------------- CLOSED (§3.10.7.1)
def test_closed_answers_ack_with_rst_seq_ack():
    ep = endpoint_closed()
    feed(ep, 0.0, PEER_ACK)
    (rst,) = expect(ep, 0.0, [Want("R", CISN + 1)])
    assert (rst.sport, rst.dport) == (CPORT, SPORT)


def test_closed_answers_syn_with_rst_ack():
    ep = endpoint_closed()
    feed(ep, 0.0, replace(PEER_SYN, payload=b"abc"))
    expect(ep, 0.0, [Want("R.", 0, SISN + 4)])   # ACK = SEG.SEQ + SEG.LEN (SYN + 3 bytes)


def test_closed_ignores_rst_and_other_ports():
    ep = endpoint_closed()
    feed(ep, 0.0, PEER_RST, replace(PEER_ACK, dport=1))
    expect_nothing(ep, 0.0)


def test_after_close_the_endpoint_answers_with_rst():
    ep = endpoint_established()
    ep.abort(0.0)
    ep.segments_to_send(0.0)
    feed(ep, 1.0, replace(PEER_ACK, payload=b"late", ack=CISN + 1))
    expect(ep, 1.0, [Want("R", CISN + 1)])


# ---------------------------------------------------------------- LISTEN (§3.10.7.2)
def test_listen_ignores_rst_and_resets_ack():
    ep = endpoint_listen()
    feed(ep, 0.0, Segment(CPORT, SPORT, 5, 0, R))
    expect_nothing(ep, 0.0)
    feed(ep, 0.0, Segment(CPORT, SPORT, 5, 777, A))
    expect(ep, 0.0, [Want("R", 777)])
    assert ep.state is State.LISTEN


def test_listen_with_fixed_remote_port_ignores_others():
    ep = endpoint_listen(remote_port=CPORT)
    feed(ep, 0.0, Segment(CPORT + 1, SPORT, CISN, 0, S, 100))
    assert ep.state is State.LISTEN
    feed(ep, 0.0, Segment(CPORT, SPORT, CISN, 0, S, 100))
    assert ep.state is State.SYN_RECEIVED


# ---------------------------------------------------------------- SYN-SENT (§3.10.7.3)
def test_rst_with_acceptable_ack_in_syn_sent_is_refused():
    ep = endpoint_syn_sent()
    feed(ep, 0.0, Segment(SPORT, CPORT, 0, CISN + 1, R | A))
    assert ep.state is State.CLOSED
    assert any(isinstance(e, ConnectionRefused) for e in drain_events(ep))
    expect_nothing(ep, 0.0)


def test_rst_without_ack_or_bad_ack_in_syn_sent_is_ignored():
    ep = endpoint_syn_sent()
    feed(ep, 0.0, Segment(SPORT, CPORT, 0, 0, R), Segment(SPORT, CPORT, 0, CISN + 7, R | A))
    assert ep.state is State.SYN_SENT
    expect_nothing(ep, 0.0)


def test_bad_ack_in_syn_sent_gets_rst():
    ep = endpoint_syn_sent()
    feed(ep, 0.0, replace(PEER_SYN_ACK, ack=CISN + 50))
    assert ep.state is State.SYN_SENT
    expect(ep, 0.0, [Want("R", CISN + 50)])


def test_refused_between_cores():
    p = EndpointPair.client_server()
    p.b.close(0.0)                        # nobody listening: the closed endpoint answers the SYN
    p.transfer()
    assert p.a.state is State.CLOSED
    assert any(isinstance(e, ConnectionRefused) for e in drain_events(p.a))


# ---------------------------------------------------------------- synchronized states (§3.10.7.4, RFC 5961)
@pytest.mark.parametrize("state", SYNCHRONIZED)
def test_rst_exactly_at_rcv_nxt_resets(state):
    ep = ENDPOINT_IN[state]()
    feed(ep, 1.0, replace(PEER_RST, seq=ep.rcv_nxt))
    assert ep.state is State.CLOSED
    assert any(isinstance(e, ConnectionReset) for e in drain_events(ep))
    expect_nothing(ep, 1.0)


@pytest.mark.parametrize("state", SYNCHRONIZED)
def test_rst_in_window_not_exact_gets_challenge_ack(state):
    ep = ENDPOINT_IN[state]()
    feed(ep, 1.0, replace(PEER_RST, seq=ep.rcv_nxt + 10))
    assert ep.state is state
    expect(ep, 1.0, [Want(".", ep.snd_nxt, ep.rcv_nxt)])


@pytest.mark.parametrize("state", SYNCHRONIZED)
def test_rst_outside_window_silently_dropped(state):
    ep = ENDPOINT_IN[state]()
    feed(ep, 1.0, replace(PEER_RST, seq=ep.rcv_nxt - 10))
    feed(ep, 1.0, replace(PEER_RST, seq=ep.rcv_nxt + 70000))
    assert ep.state is state
    expect_nothing(ep, 1.0)


@pytest.mark.parametrize("state", SYNCHRONIZED)
def test_syn_in_synchronized_state_gets_challenge_ack(state):
    ep = ENDPOINT_IN[state]()
    feed(ep, 1.0, replace(PEER_SYN, seq=ep.rcv_nxt + 5))
    assert ep.state is state
    expect(ep, 1.0, [Want(".", ep.snd_nxt, ep.rcv_nxt)])


def test_ack_far_below_snd_una_is_answered_and_dropped():
    ep = endpoint_established()
    ep.send(b"x" * 100, 0.0)
    ep.segments_to_send(0.0)
    feed(ep, 0.1, replace(PEER_ACK, ack=CISN + 101))
    feed(ep, 0.2, replace(PEER_ACK, ack=CISN - 100000, payload=b"zz"))   # RFC 5961 §5.2
    expect(ep, 0.2, [Want(".", CISN + 101, SISN + 1)])
    assert ep.readable == 0


def test_abort_rst_is_exact_and_accepted_by_the_peer():
    p = EndpointPair.client_server()
    p.transfer()
    p.a.send(b"abc", p.t)
    p.transfer()
    p.a.abort(p.t)
    p.transfer()
    assert p.b.state is State.CLOSED
    assert any(isinstance(e, ConnectionReset) for e in drain_events(p.b))


# ---------------------------------------------------------------- SYN-RECEIVED
def test_rst_in_passive_syn_received_returns_to_listen():
    ep = endpoint_syn_received()
    feed(ep, 0.0, Segment(CPORT, SPORT, CISN + 1, 0, R))
    assert ep.state is State.LISTEN and ep.remote_port == 0 and ep.irs is None
    feed(ep, 1.0, Segment(CPORT + 1, SPORT, 42, 0, S, 100))      # and can take the next SYN
    assert ep.state is State.SYN_RECEIVED and ep.remote_port == CPORT + 1
    assert ep.iss != SISN  # a new connection, a new ISS (RFC 9293 §3.4.1)
    expect(ep, 1.0, [Want("S.", ep.iss, 43)])


def test_new_syn_in_passive_syn_received_returns_to_listen():
    ep = endpoint_syn_received()
    feed(ep, 0.0, Segment(CPORT, SPORT, CISN + 1, 0, S, 100))
    assert ep.state is State.LISTEN


def test_duplicate_syn_in_syn_received_resends_syn_ack():
    ep = endpoint_syn_received()
    feed(ep, 1.0, Segment(CPORT, SPORT, CISN, 0, S, 100))
    expect(ep, 1.0, [Want("S.", SISN, CISN + 1)])
    assert ep.state is State.SYN_RECEIVED


def test_bad_ack_in_syn_received_gets_rst():
    ep = endpoint_syn_received()
    feed(ep, 0.0, Segment(CPORT, SPORT, CISN + 1, SISN + 99, A, 100))
    expect(ep, 0.0, [Want("R", SISN + 99)])
    assert ep.state is State.SYN_RECEIVED


def test_rst_in_simultaneous_syn_received_is_refused():
    ep = endpoint_syn_sent()
    feed(ep, 0.0, PEER_SYN)
    feed(ep, 0.0, replace(PEER_RST, seq=SISN + 1))
    assert ep.state is State.CLOSED
    assert any(isinstance(e, ConnectionRefused) for e in drain_events(ep))


def test_peer_closed_state_sends_rst_to_stale_fin():
    ep = endpoint_closed()
    feed(ep, 0.0, Segment(SPORT, CPORT, 5, 9, F | A))
    expect(ep, 0.0, [Want("R", 9)])
