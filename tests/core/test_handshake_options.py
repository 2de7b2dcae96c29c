"""SYN options: window scaling on simultaneous open (RFC 7323 §2.2), odd option values never raise,
the peer's MSS clamped as Linux clamps it."""

from dataclasses import replace

import pytest

from rawtcp.core import Endpoint, EndpointConfig, Flags, State
from rawtcp.core.segment import format_options

from .helpers import (
    CISN,
    CPORT,
    PEER_ACK,
    PEER_SYN_ACK,
    SPORT,
    EndpointPair,
    endpoint_established,
    endpoint_listen,
    endpoint_syn_sent,
    feed,
)
from .helpers import Segment as Seg


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


ODD_OPTIONS = [
    (("Timestamp", ("x", None)),),
    (("Timestamp", (None, 0)),),
    (("Timestamp", (1.5, "7")),),
    (("Timestamp", b"\x00" * 8),),
    (("MSS", "1460"), ("WScale", 2.5)),
    (("MSS",), ("WScale", 7, 7)),
    (("SAck", ("a", None, 3)),),
    (("SAck", 7),),
    (("SAckOK", None), (None, None)),
]


@pytest.mark.parametrize("options", ODD_OPTIONS)
@pytest.mark.parametrize("state", [State.LISTEN, State.SYN_SENT, State.ESTABLISHED])
def test_receive_never_raises_on_odd_hand_built_options(state, options):
    kw = {"timestamps": True, "wscale": 7}
    ep = {State.LISTEN: endpoint_listen, State.SYN_SENT: endpoint_syn_sent,
          State.ESTABLISHED: endpoint_established}[state](**kw)
    if state is State.ESTABLISHED:
        # negotiate timestamps first, so the odd TSopt reaches PAWS and TS.Recent
        ep = endpoint_syn_sent(**kw)
        feed(ep, 0.0, replace(PEER_SYN_ACK, options=(("MSS", 1460), ("SAckOK", b""),
                                                     ("Timestamp", (10, 0)), ("WScale", 7))))
        ep.segments_to_send(0.0)
    flags = PEER_SYN_ACK.flags if state is State.SYN_SENT else PEER_ACK.flags
    if state is State.LISTEN:
        seg = Seg(CPORT, SPORT, CISN, 0, Flags.SYN, 65535, options)
    else:
        seg = replace(PEER_ACK if state is State.ESTABLISHED else PEER_SYN_ACK, flags=flags, options=options,
                      payload=b"p" if state is State.ESTABLISHED else b"")
    ep.receive(seg, 0.1)
    ep.segments_to_send(0.1)


@pytest.mark.parametrize(("announced", "used"), [(1, 48), (47, 48), (48, 48), (536, 536)])
def test_peer_mss_below_48_is_clamped_as_linux_does(announced, used):
    # Linux's net.ipv4.tcp_min_snd_mss (48): a tiny announced MSS would make us send one-byte segments.
    ep = endpoint_syn_sent()
    feed(ep, 0.0, replace(PEER_SYN_ACK, options=(("MSS", announced),)))
    assert ep.state is State.ESTABLISHED and ep.send_mss == used


def test_plain_config_keeps_the_seed_bare_mss_syn():
    ep = Endpoint(EndpointConfig(local_port=CPORT, remote_port=SPORT, isn=CISN))
    ep.open_active(0.0)
    (syn,) = ep.segments_to_send(0.0)
    assert format_options(syn.options) == "mss 1460"
    assert ep.config.rto_min == 0.2  # Linux's TCP_RTO_MIN


def test_linux_like_preset_offers_what_linux_offers():
    cfg = EndpointConfig.linux_like(CPORT, remote_port=SPORT, isn=CISN)
    assert (cfg.sack, cfg.timestamps, cfg.wscale, cfg.nagle, cfg.delayed_ack) == (True, True, 7, True, True)
    assert cfg.challenge_ack_interval == 0.5 and cfg.ack_delay == 0.2
    ep = Endpoint(cfg)
    ep.open_active(1.0)
    (syn,) = ep.segments_to_send(1.0)
    assert format_options(syn.options) == "mss 1460,sackOK,TS val 1000 ecr 0,nop,wscale 7"
    assert EndpointConfig.linux_like(CPORT, sack=False).sack is False  # overrides win


def test_linux_like_pair_negotiates_everything():
    pair = EndpointPair(Endpoint(EndpointConfig.linux_like(CPORT, remote_port=SPORT, isn=CISN)),
                        Endpoint(EndpointConfig.linux_like(SPORT, isn=8000)))
    pair.b.open_passive(0.0)
    pair.a.open_active(0.0)
    pair.run(until=1.0)
    for ep in (pair.a, pair.b):
        assert ep.state is State.ESTABLISHED and ep.sack_ok and ep.ts_ok
        assert ep.snd_wscale == ep.rcv_wscale == 7
    synack = pair.sent_by("b")[0]
    assert format_options(synack.options).startswith("mss 1460,sackOK,TS val")
