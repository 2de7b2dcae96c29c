"""Every state and every transition of the table, one scripted peer at a time."""

from dataclasses import replace

import pytest

from rawtcp.core import Cause, ConnectionRefused, ConnectionReset, PeerClosed, State, StateChanged, TimedOut
from rawtcp.core.endpoint import TcpError
from rawtcp.core.transitions import TRANSITIONS, TransitionError, next_state

from .helpers import (
    CISN,
    CPORT,
    ENDPOINT_IN,
    PEER_ACK,
    PEER_FIN,
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
    endpoint_close_wait,
    endpoint_closed,
    endpoint_closing,
    endpoint_established,
    endpoint_fin_wait_1,
    endpoint_fin_wait_2,
    endpoint_last_ack,
    endpoint_listen,
    endpoint_syn_received,
    endpoint_syn_sent,
    endpoint_time_wait,
    expect,
    expect_nothing,
    feed,
    states,
)
from .helpers import Segment as Seg


@pytest.mark.parametrize("state", list(State))
def test_fixture_reaches_state(state):
    ep = ENDPOINT_IN[state]()
    assert ep.state is state
    for change in ep.trace:
        assert TRANSITIONS[change.old, change.cause] is change.new


def test_trace_and_events_agree():
    ep = endpoint_established()
    assert [(c.old, c.cause, c.new) for c in ep.trace] == [
        (State.CLOSED, Cause.OPEN_ACTIVE, State.SYN_SENT), (State.SYN_SENT, Cause.RCV_SYN_ACK, State.ESTABLISHED)]
    ep2 = endpoint_syn_sent()
    events = drain_events(ep2)
    assert events == ep2.trace and all(isinstance(e, StateChanged) for e in events)


def test_active_open_segments():
    ep = endpoint_closed()
    ep.open_active(0.0)
    (syn,) = expect(ep, 0.0, [Want("S", CISN)])
    assert syn.mss == 1460 and syn.option("WScale") is None
    assert ep.state is State.SYN_SENT and ep.snd_nxt == CISN + 1 and ep.snd_una == CISN
    feed(ep, 0.1, PEER_SYN_ACK)
    assert ep.state is State.ESTABLISHED
    assert (ep.irs, ep.rcv_nxt, ep.snd_una) == (SISN, SISN + 1, CISN + 1)
    expect(ep, 0.1, [Want(".", CISN + 1, SISN + 1)])
    assert ep.next_timer() is None


def test_passive_open_segments():
    ep = endpoint_listen()
    assert ep.remote_port == 0
    feed(ep, 0.0, Seg(CPORT, SPORT, CISN, 0, S, 1000, (("MSS", 1200),)))
    assert ep.state is State.SYN_RECEIVED and ep.remote_port == CPORT and ep.peer_mss == 1200
    (synack,) = expect(ep, 0.0, [Want("S.", SISN, CISN + 1)])
    assert synack.mss == 1460 and synack.dport == CPORT
    assert ep.snd_wnd == 1000 and ep.send_mss == 1200
    feed(ep, 0.05, Seg(CPORT, SPORT, CISN + 1, SISN + 1, A, 1000))
    assert ep.state is State.ESTABLISHED
    expect_nothing(ep, 0.05)
    assert ep.srtt == pytest.approx(0.05)


def test_peer_mss_defaults_to_536_without_option():
    ep = endpoint_syn_sent()
    feed(ep, 0.0, replace(PEER_SYN_ACK, options=()))
    assert ep.peer_mss == 536 and ep.send_mss == 536


def test_simultaneous_open():
    a_cfg = {"local_port": 5000, "remote_port": 6000}
    b_cfg = {"local_port": 6000, "remote_port": 5000}
    pair = EndpointPair.client_server(client=a_cfg, server=b_cfg)
    pair.b = type(pair.a)(replace(pair.b.config))  # replace the listener by a second active opener
    pair.b.open_active(0.0)
    pair.pull()  # both SYNs cross on the wire
    assert [s.flags for s in pair.queues["a"]] == [S] and [s.flags for s in pair.queues["b"]] == [S]
    pair.deliver()
    assert pair.a.state is State.SYN_RECEIVED and pair.b.state is State.SYN_RECEIVED
    pair.pull()
    assert [s.flags for s in pair.queues["a"]] == [S | A] and [s.flags for s in pair.queues["b"]] == [S | A]
    pair.deliver()
    assert pair.a.state is State.ESTABLISHED and pair.b.state is State.ESTABLISHED
    pair.a.send(b"hello", pair.t)
    pair.transfer()
    assert pair.received["b"] == b"hello"
    assert states(pair.a) == [State.CLOSED, State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED]


def test_simultaneous_close_goes_through_closing():
    pair = EndpointPair.client_server(client={"msl2": 5.0}, server={"msl2": 5.0})
    pair.transfer()
    pair.a.close(pair.t)
    pair.b.close(pair.t)
    pair.pull()  # both FINs on the wire
    assert pair.queues["a"][0].has(F) and pair.queues["b"][0].has(F)
    pair.deliver()
    assert pair.a.state is State.CLOSING and pair.b.state is State.CLOSING
    pair.transfer()
    assert pair.a.state is State.TIME_WAIT and pair.b.state is State.TIME_WAIT
    pair.run(until=10.0)
    assert pair.a.state is State.CLOSED and pair.b.state is State.CLOSED
    for ep in (pair.a, pair.b):
        assert states(ep)[-4:] == [State.FIN_WAIT_1, State.CLOSING, State.TIME_WAIT, State.CLOSED]


# ---------------------------------------------------------------- FIN in every state
def test_fin_in_established_gives_close_wait_and_we_can_still_send():
    ep = endpoint_established()
    feed(ep, 1.0, PEER_FIN)
    assert ep.state is State.CLOSE_WAIT and ep.peer_fin and ep.rcv_nxt == SISN + 2
    assert any(isinstance(e, PeerClosed) for e in drain_events(ep))
    expect(ep, 1.0, [Want(".", CISN + 1, SISN + 2)])
    ep.send(b"more", 1.0)
    expect(ep, 1.0, [Want("P.", CISN + 1, SISN + 2, 4)])
    ep.close(1.0)
    assert ep.state is State.LAST_ACK
    expect(ep, 1.0, [Want("F.", CISN + 5, SISN + 2)])
    feed(ep, 1.1, replace(PEER_ACK, seq=SISN + 2, ack=CISN + 6))
    assert ep.state is State.CLOSED


def test_fin_in_fin_wait_1_without_ack_of_ours_gives_closing():
    ep = endpoint_closing()
    assert ep.state is State.CLOSING
    feed(ep, 0.5, replace(PEER_ACK, seq=SISN + 2, ack=CISN + 2))
    assert ep.state is State.TIME_WAIT


def test_fin_with_ack_of_our_fin_in_fin_wait_1_goes_to_time_wait():
    ep = endpoint_fin_wait_1()
    feed(ep, 0.5, replace(PEER_FIN, ack=CISN + 2))
    assert ep.state is State.TIME_WAIT
    assert states(ep)[-3:] == [State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT]
    expect(ep, 0.5, [Want(".", CISN + 2, SISN + 2)])


def test_fin_in_fin_wait_2_and_data_still_accepted_before_it():
    ep = endpoint_fin_wait_2()
    feed(ep, 0.0, replace(PEER_ACK, payload=b"late", flags=A))
    assert ep.read() == b"late"
    expect(ep, 0.0, [Want(".", CISN + 2, SISN + 5)])
    feed(ep, 0.0, replace(PEER_FIN, seq=SISN + 5, ack=CISN + 2))
    assert ep.state is State.TIME_WAIT


@pytest.mark.parametrize("state", [State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK, State.TIME_WAIT])
def test_repeated_fin_after_fin_is_just_acked(state):
    ep = ENDPOINT_IN[state]()
    seq_after_fin = ep.snd_nxt
    feed(ep, 0.5, replace(PEER_FIN, ack=ep.snd_una))
    assert ep.state is state
    expect(ep, 0.5, [Want(".", seq_after_fin, SISN + 2)])


@pytest.mark.parametrize("state", [State.LISTEN, State.SYN_SENT])
def test_fin_before_synchronization_is_dropped(state):
    ep = ENDPOINT_IN[state]()
    fin = PEER_FIN if state is State.SYN_SENT else Seg(CPORT, SPORT, 1, 0, F, 100)
    feed(ep, 0.0, fin)
    assert ep.state is state
    expect_nothing(ep, 0.0)


def test_fin_in_syn_received_with_ack_goes_established_then_close_wait():
    ep = endpoint_syn_received()
    feed(ep, 0.0, Seg(CPORT, SPORT, CISN + 1, SISN + 1, F | A, 1000))
    assert states(ep)[-3:] == [State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT]


# ---------------------------------------------------------------- TIME-WAIT
def test_time_wait_expires_after_configured_2msl():
    ep = endpoint_time_wait(msl2=3.0)
    assert ep.next_timer() == 3.0
    ep.handle_timer(2.9)
    assert ep.state is State.TIME_WAIT
    ep.handle_timer(3.0)
    assert ep.state is State.CLOSED and ep.next_timer() is None


def test_time_wait_re_acks_retransmitted_fin_and_restarts_timer():
    ep = endpoint_time_wait(msl2=3.0)
    feed(ep, 2.0, replace(PEER_FIN, ack=CISN + 2))  # the same FIN again: our last ACK was lost
    expect(ep, 2.0, [Want(".", CISN + 2, SISN + 2)])
    assert ep.next_timer() == 5.0
    ep.handle_timer(4.0)
    assert ep.state is State.TIME_WAIT
    ep.handle_timer(5.0)
    assert ep.state is State.CLOSED


# ---------------------------------------------------------------- user calls
def test_close_in_listen_and_syn_sent_goes_closed_without_segments():
    for ep in (endpoint_listen(), endpoint_syn_sent()):
        ep.close(1.0)
        assert ep.state is State.CLOSED
        expect_nothing(ep, 1.0)


def test_close_in_syn_received_sends_fin_after_handshake():
    ep = endpoint_syn_received()
    ep.close(0.0)
    assert ep.state is State.FIN_WAIT_1
    expect_nothing(ep, 0.0)  # no FIN before our SYN is acknowledged
    feed(ep, 0.1, Seg(CPORT, SPORT, CISN + 1, SISN + 1, A, 1000))
    expect(ep, 0.1, [Want("F.", SISN + 1, CISN + 1)])
    feed(ep, 0.2, Seg(CPORT, SPORT, CISN + 1, SISN + 2, A, 1000))
    assert ep.state is State.FIN_WAIT_2


def test_close_before_pull_of_syn_ack_still_sends_syn_ack():
    ep = endpoint_listen()
    feed(ep, 0.0, Seg(CPORT, SPORT, CISN, 0, S, 1000))
    ep.close(0.0)
    expect(ep, 0.0, [Want("S.", SISN, CISN + 1)])


def test_shutdown_sends_fin_after_pending_data_and_repeat_is_noop():
    ep = endpoint_established()
    ep.send(b"x" * 3000, 0.0)
    ep.shutdown(0.0)
    ep.shutdown(0.0)
    ep.close(0.0)
    expect(ep, 0.0, [Want(".", CISN + 1, SISN + 1, 1460), Want(".", CISN + 1461, SISN + 1, 1460),
                     Want("FP.", CISN + 2921, SISN + 1, 80)])


def test_send_errors():
    with pytest.raises(TcpError):
        endpoint_closed().send(b"x", 0.0)
    with pytest.raises(TcpError):
        endpoint_listen().send(b"x", 0.0)
    for fixture in (endpoint_fin_wait_1, endpoint_fin_wait_2, endpoint_closing, endpoint_last_ack,
                    endpoint_time_wait):
        with pytest.raises(TcpError, match="closing"):
            fixture().send(b"x", 0.0)
    with pytest.raises(TcpError):
        endpoint_closed().close(0.0)
    ep = endpoint_established()
    with pytest.raises(TcpError):
        ep.open_active(0.0)
    with pytest.raises(TcpError, match="remote port"):
        endpoint_closed(remote_port=0).open_active(0.0)


def test_send_queued_in_syn_sent_goes_after_handshake():
    ep = endpoint_syn_sent()
    assert ep.send(b"early", 0.0) == 5
    expect_nothing(ep, 0.0)
    feed(ep, 0.1, PEER_SYN_ACK)
    expect(ep, 0.1, [Want("P.", CISN + 1, SISN + 1, 5)])


def test_send_bounded_by_send_buffer():
    ep = endpoint_established(send_buffer=100)
    assert ep.send(b"a" * 80, 0.0) == 80
    assert ep.send(b"b" * 80, 0.0) == 20
    assert ep.send(b"c", 0.0) == 0
    assert ep.unsent == 100


@pytest.mark.parametrize("state", [State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1,
                                   State.FIN_WAIT_2, State.CLOSE_WAIT])
def test_abort_sends_rst_in_synchronized_states(state):
    ep = ENDPOINT_IN[state]()
    nxt = ep.snd_nxt
    ep.abort(1.0)
    assert ep.state is State.CLOSED
    expect(ep, 1.0, [Want("R", nxt)])
    ep.abort(1.0)  # idempotent


@pytest.mark.parametrize("state", [State.LISTEN, State.SYN_SENT, State.CLOSING, State.LAST_ACK,
                                   State.TIME_WAIT])
def test_abort_without_rst(state):
    ep = ENDPOINT_IN[state]()
    ep.abort(1.0)
    assert ep.state is State.CLOSED
    expect_nothing(ep, 1.0)


# ---------------------------------------------------------------- every transition of the table is reached
def _after(fixture, *actions):
    ep = fixture()
    for action in actions:
        if isinstance(action, Seg):
            feed(ep, 0.0, action)
        else:
            action(ep)
    return ep


def _rst_at_rcv_nxt(ep):
    feed(ep, 0.0, replace(PEER_RST, seq=ep.rcv_nxt))


def _expire(ep):
    """Fire the endpoint's timers (output pulled each time) until it closes."""
    for _ in range(20):
        t = ep.next_timer()
        if ep.state is State.CLOSED or t is None:
            return
        ep.handle_timer(t)
        ep.segments_to_send(t)
    raise AssertionError(f"still {ep.state} after 20 timers")


def _send_data(ep):
    ep.send(b"data", 0.0)
    ep.segments_to_send(0.0)


def _all_scenarios():
    eps = [ENDPOINT_IN[s]() for s in State]
    client_syn_ack_ack = Seg(CPORT, SPORT, CISN + 1, SISN + 1, A, 1000)
    eps += [
        _after(lambda: endpoint_time_wait(msl2=1.0), lambda ep: ep.handle_timer(1.0)),  # 2MSL
        _after(endpoint_listen, lambda ep: ep.close(0.0)),
        _after(endpoint_syn_sent, lambda ep: ep.close(0.0)),
        _after(endpoint_syn_received, lambda ep: ep.close(0.0)),
        _after(endpoint_syn_received, client_syn_ack_ack),
        _after(endpoint_syn_received, Seg(CPORT, SPORT, CISN + 1, 0, R)),               # back to LISTEN
        _after(endpoint_syn_received, Seg(CPORT, SPORT, CISN + 1, 0, S, 1000)),         # a new SYN: LISTEN
        _after(endpoint_closing, replace(PEER_ACK, seq=SISN + 2, ack=CISN + 2)),
        _after(endpoint_last_ack, replace(PEER_ACK, seq=SISN + 2, ack=CISN + 2)),
        _after(endpoint_syn_sent, PEER_SYN),                                            # simultaneous open
        _after(endpoint_syn_sent, replace(PEER_RST, ack=CISN + 1, flags=R | A)),        # refused
        _after(endpoint_syn_sent, PEER_SYN, replace(PEER_RST, seq=SISN + 1)),           # refused (simultaneous)
    ]
    for fixture in (endpoint_established, endpoint_fin_wait_1, endpoint_fin_wait_2, endpoint_close_wait,
                    endpoint_closing, endpoint_last_ack, endpoint_time_wait):
        eps.append(_after(fixture, _rst_at_rcv_nxt))
    for state in State:
        if state is not State.CLOSED:
            eps.append(_after(ENDPOINT_IN[state], lambda ep: ep.abort(0.0)))
    # retransmissions (of SYN, SYN-ACK, data or FIN) exhausted
    for fixture, actions in ((endpoint_syn_sent, ()), (endpoint_syn_received, ()),
                             (endpoint_established, (_send_data,)), (endpoint_fin_wait_1, ()),
                             (endpoint_close_wait, (_send_data,)), (endpoint_closing, ()), (endpoint_last_ack, ())):
        eps.append(_after(lambda fixture=fixture: fixture(max_retries=0), *actions, _expire))
    for fixture in (endpoint_established, endpoint_close_wait, endpoint_fin_wait_2):
        eps.append(_after(lambda fixture=fixture: fixture(keepalive=1.0, keepalive_probes=1), _expire))
    return eps


def test_every_transition_in_the_table_is_reachable():
    traces = [c for ep in _all_scenarios() for c in ep.trace]
    assert all(TRANSITIONS[c.old, c.cause] is c.new for c in traces)
    assert set(TRANSITIONS) - {(c.old, c.cause) for c in traces} == set()


def test_a_cause_undefined_in_a_state_is_refused():
    undefined = [(s, c) for s in State for c in Cause if (s, c) not in TRANSITIONS]
    assert (State.LISTEN, Cause.RCV_FIN) in undefined and (State.CLOSED, Cause.ABORT) in undefined
    for state, cause in undefined:
        with pytest.raises(TransitionError, match=f"from {state} on {cause.name}"):
            next_state(state, cause)


def test_causes_in_the_trace_name_what_happened():
    ep = endpoint_fin_wait_1()
    feed(ep, 0.5, replace(PEER_FIN, ack=CISN + 2))
    assert [c.cause for c in ep.trace] == [Cause.OPEN_ACTIVE, Cause.RCV_SYN_ACK, Cause.CLOSE,
                                           Cause.RCV_ACK_OF_FIN, Cause.RCV_FIN]
    ep = endpoint_established(max_retries=0)
    _send_data(ep)
    _expire(ep)
    assert ep.trace[-1].cause is Cause.TIMEOUT and str(ep.trace[-1].cause) == "retransmissions exhausted"


def test_refused_and_reset_events():
    ep = endpoint_syn_sent()
    feed(ep, 0.0, replace(PEER_RST, ack=CISN + 1, flags=R | A))
    assert ep.state is State.CLOSED
    assert any(isinstance(e, ConnectionRefused) for e in drain_events(ep))
    ep = endpoint_established()
    feed(ep, 0.0, PEER_RST)
    assert ep.state is State.CLOSED
    assert any(isinstance(e, ConnectionReset) for e in drain_events(ep))


def test_timed_out_event_closes():
    ep = endpoint_syn_sent(max_retries=1)
    ep.handle_timer(1.0)
    ep.segments_to_send(1.0)
    ep.handle_timer(3.0)
    assert ep.state is State.CLOSED
    (timeout,) = [e for e in drain_events(ep) if isinstance(e, TimedOut)]
    assert (timeout.what, timeout.tries, timeout.elapsed) == ("SYN", 1, 3.0)


@pytest.mark.parametrize("bad", [{"local_port": 0}, {"local_port": 70000}, {"remote_port": -1}, {"mss": 0},
                                 {"wscale": 15}, {"window": -1}, {"rto_min": 2.0, "rto_max": 1.0},
                                 {"max_retries": -1}, {"dupack_threshold": 0}, {"rto_initial": 0}])
def test_bad_config_is_one_line_tcp_error(bad):
    from .helpers import client_config

    with pytest.raises(TcpError) as info:
        client_config(**bad)
    assert "\n" not in str(info.value)


def test_syn_arriving_before_our_syn_is_pulled_gives_one_syn_ack():
    # Simultaneous open (RFC 9293 §3.10.7.3) where our SYN never left: one SYN-ACK goes out, not two.
    ep = endpoint_closed()
    ep.open_active(0.0)
    feed(ep, 0.0, PEER_SYN)
    assert ep.state is State.SYN_RECEIVED
    expect(ep, 0.0, [Want("S.", CISN, SISN + 1)])
    expect_nothing(ep, 0.0)
    expect_nothing(ep, 0.1)


def test_syn_received_back_to_listen_starts_the_next_connection_afresh():
    # RFC 9293 §3.10.7.4: the TCB returns to LISTEN; the next SYN is a new connection, with a new ISS
    # from the ISN clock (§3.4.1) and the initial RTO (RFC 6298 §2.1), not the backed-off one.
    ep = endpoint_syn_received()
    for _ in range(2):
        t = ep.next_timer()
        ep.handle_timer(t)
        expect(ep, t, [Want("S.", SISN, CISN + 1)])
    assert ep.rto == 4.0
    feed(ep, 3.5, Seg(CPORT, SPORT, CISN + 1, 0, R))
    assert ep.state is State.LISTEN
    feed(ep, 4.0, Seg(CPORT, SPORT, 5555, 0, S, 65535, (("MSS", 1460),)))
    (synack,) = ep.segments_to_send(4.0)
    assert synack.ack == 5556 and synack.seq != SISN and ep.iss == synack.seq
    assert ep.rto == 1.0 and ep.next_timer() == 5.0
