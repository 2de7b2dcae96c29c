"""RFC 5961 §7: challenge ACKs (and ACKs for out-of-window SYNs and pure ACKs) are rate-limited per
connection when EndpointConfig.challenge_ack_interval is set, as Linux's net.ipv4.tcp_invalid_ratelimit
(500 ms) does; segments with data are always answered."""

from dataclasses import replace

from rawtcp.core import State

from .helpers import (
    CISN,
    PEER_ACK,
    PEER_RST,
    PEER_SYN,
    SISN,
    Want,
    endpoint_established,
    expect,
    expect_nothing,
    feed,
    peer_data,
)

LIMIT = {"challenge_ack_interval": 0.5}
BAD_RST = replace(PEER_RST, seq=SISN + 100)  # in window, not RCV.NXT: a challenge ACK (RFC 5961 §3.2)


def test_challenge_acks_unlimited_by_default():
    ep = endpoint_established()
    for t in (1.0, 1.1, 1.2):
        feed(ep, t, BAD_RST)
        expect(ep, t, [Want(".", CISN + 1, SISN + 1)])


def test_challenge_acks_for_rst_are_rate_limited():
    ep = endpoint_established(**LIMIT)
    feed(ep, 1.0, BAD_RST)
    expect(ep, 1.0, [Want(".", CISN + 1, SISN + 1)])
    feed(ep, 1.2, BAD_RST)
    expect_nothing(ep, 1.2)
    feed(ep, 1.5, BAD_RST)
    expect(ep, 1.5, [Want(".", CISN + 1, SISN + 1)])
    assert ep.state is State.ESTABLISHED


def test_challenge_acks_for_syn_and_out_of_window_acks_share_the_limit():
    ep = endpoint_established(**LIMIT)
    feed(ep, 1.0, replace(PEER_SYN, seq=SISN + 50))
    expect(ep, 1.0, [Want(".", CISN + 1, SISN + 1)])
    feed(ep, 1.1, replace(PEER_ACK, seq=SISN + 1 + 10**6))
    expect_nothing(ep, 1.1)
    feed(ep, 1.2, replace(PEER_ACK, ack=CISN + 5000))  # acknowledges unsent data
    expect_nothing(ep, 1.2)


def test_out_of_window_data_is_always_answered():
    ep = endpoint_established(**LIMIT)
    feed(ep, 1.0, BAD_RST)
    ep.segments_to_send(1.0)
    feed(ep, 1.1, peer_data(b"old", seq=SISN - 100))
    expect(ep, 1.1, [Want(".", CISN + 1, SISN + 1)])
