"""SYN options: window scaling on simultaneous open (RFC 7323 §2.2), odd option values never raise,
the peer's MSS clamped as Linux clamps it."""

from dataclasses import replace

from rawtcp.core import Endpoint, State

from .helpers import EndpointPair


def simultaneous_pair(a: dict[str, object], b: dict[str, object]) -> EndpointPair:
    pair = EndpointPair.client_server(client={"local_port": 5000, "remote_port": 6000, **a},
                                      server={"local_port": 6000, "remote_port": 5000, **b})
    pair.b = Endpoint(replace(pair.b.config))  # a second active opener instead of the listener
    pair.b.open_active(0.0)
    return pair


def test_simultaneous_open_never_scales_the_syn_ack_window():
    # RFC 7323 §2.2: the window field of a SYN or SYN-ACK is never scaled, also when it is the
    # SYN-ACK of a simultaneous open that reaches us in SYN-RECEIVED.
    pair = simultaneous_pair({"wscale": 7}, {"wscale": 7, "recv_buffer": 3000})
    pair.transfer()
    assert pair.a.state is State.ESTABLISHED and pair.b.state is State.ESTABLISHED
    assert pair.a.snd_wnd == 3000
    pair.auto_read = False
    pair.a.send(b"x" * 20000, pair.t)
    pair.pull()
    burst = sum(len(s.payload) for s in pair.queues["a"])
    assert 0 < burst <= 3000
