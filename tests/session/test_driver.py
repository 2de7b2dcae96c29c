"""The session driver without root or a network: a fake link carries the frames, a fake clock the time.

What is checked is what a user sees: the frames on the wire (decoded as the peer's kernel would) and the
records the CLI prints, in their order.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from rawtcp.core import Flags, State
from rawtcp.core.rto import RTO_INITIAL

from .fakes import (
    CISN,
    CLIENT_SYN,
    CPORT,
    LOCAL_IP,
    PEER_IP,
    PEER_SYN_ACK,
    SISN,
    SPORT,
    STRANGER_IP,
    Rig,
    active_rig,
    corrupt_checksum,
    passive_rig,
)


def wire(rig: Rig) -> list[tuple[str, int, int | None, int]]:
    """What the driver sent since the last look: (flags, seq, ack or None, payload length)."""
    return [(d.segment.flags.short(), d.segment.seq, d.segment.ack if d.segment.has(Flags.ACK) else None,
             len(d.segment.payload)) for d in rig.sent()]


# -- a rig in each state ------------------------------------------------------------------------------


@pytest.fixture
def syn_sent() -> Rig:
    rig = active_rig()
    rig.ep.open_active(rig.clock())
    rig.driver.flush()
    rig.sent(), rig.take_records()
    return rig


@pytest.fixture
def established(syn_sent: Rig) -> Rig:
    syn_sent.feed(PEER_SYN_ACK)
    syn_sent.sent(), syn_sent.take_records()
    return syn_sent


@pytest.fixture
def listening() -> Rig:
    rig = passive_rig()
    rig.ep.open_passive(rig.clock())
    rig.driver.flush()
    rig.take_records()
    return rig


# -- active open --------------------------------------------------------------------------------------


def test_driver_sends_the_syn_the_core_asks_for():
    rig = active_rig()
    rig.ep.open_active(rig.clock())
    rig.driver.flush()
    (syn,) = rig.sent()
    assert (syn.src_ip, syn.dst_ip, syn.checksum_ok) == (LOCAL_IP, PEER_IP, True)
    assert (syn.segment.sport, syn.segment.dport, syn.segment.seq) == (CPORT, SPORT, CISN)
    assert syn.segment.flags == Flags.SYN and ("MSS", 1460) in syn.segment.options
    assert rig.take_records() == [("segment", "out", "S"), ("state", "CLOSED", "SYN-SENT")]


def test_syn_ack_fed_back_establishes_and_is_acknowledged(syn_sent: Rig):
    syn_sent.feed(PEER_SYN_ACK)
    assert wire(syn_sent) == [(".", CISN + 1, SISN + 1, 0)]
    assert syn_sent.take_records() == [
        ("segment", "in", "S."),
        ("state", "SYN-SENT", "ESTABLISHED"),
        ("segment", "out", "."),
    ]
    assert syn_sent.ep.state is State.ESTABLISHED


def test_segment_records_carry_relative_numbers_and_the_state_they_found(syn_sent: Rig):
    syn_sent.clock.advance(0.25)
    syn_sent.feed(PEER_SYN_ACK)
    synack, _state, ack = syn_sent.records
    assert (synack["t"], synack["src"], synack["dst"]) == (0.25, f"{PEER_IP}:{SPORT}", f"{LOCAL_IP}:{CPORT}")
    assert (synack["seq"], synack["rel_seq"], synack["rel_ack"], synack["state"]) == (SISN, 0, 1, "SYN-SENT")
    assert (ack["rel_seq"], ack["rel_ack"], ack["state"]) == (1, 1, "ESTABLISHED")


def test_data_goes_out_and_the_peers_ack_is_recorded(established: Rig):
    established.ep.send(b"hello", established.clock())
    established.driver.flush()
    assert wire(established) == [("P.", CISN + 1, SISN + 1, 5)]
    ack = replace(PEER_SYN_ACK, seq=SISN + 1, ack=CISN + 6, flags=Flags.ACK, options=())
    established.feed(ack)
    assert wire(established) == []
    assert established.take_records() == [("segment", "out", "P."), ("segment", "in", ".")]
    assert established.ep.snd_una == CISN + 6


# -- timers on the fake clock -------------------------------------------------------------------------


def test_syn_is_retransmitted_when_the_rto_runs_out(syn_sent: Rig):
    syn_sent.clock.advance(RTO_INITIAL - 0.001)
    syn_sent.driver.pump(0)
    assert wire(syn_sent) == [] and syn_sent.take_records() == []
    syn_sent.clock.advance(0.001)  # RFC 6298 §5.4: on expiry, the earliest unacknowledged segment again
    syn_sent.driver.pump(0)
    assert wire(syn_sent) == [("S", CISN, None, 0)]
    assert syn_sent.take_records() == [("event", "retransmission"), ("segment", "out", "S")]
    retransmission = syn_sent.driver.events[-1]
    assert retransmission.time == syn_sent.clock()


def test_a_syn_ack_after_the_retransmission_still_establishes(syn_sent: Rig):
    syn_sent.clock.advance(RTO_INITIAL)
    syn_sent.driver.pump(0)
    syn_sent.sent(), syn_sent.take_records()
    syn_sent.feed(PEER_SYN_ACK)
    assert syn_sent.ep.state is State.ESTABLISHED and wire(syn_sent) == [(".", CISN + 1, SISN + 1, 0)]


# -- what the driver drops ----------------------------------------------------------------------------


def test_bad_checksum_is_counted_recorded_and_dropped(syn_sent: Rig):
    syn_sent.link.deliver(corrupt_checksum(syn_sent.peer_frame(PEER_SYN_ACK)))
    syn_sent.driver.pump(0)
    assert syn_sent.driver.bad_checksums == 1
    assert syn_sent.take_records() == [("segment", "in", "S.")]
    assert syn_sent.ep.state is State.SYN_SENT and wire(syn_sent) == []
    syn_sent.feed(PEER_SYN_ACK)  # the good copy still counts
    assert syn_sent.ep.state is State.ESTABLISHED and syn_sent.driver.bad_checksums == 1


def test_bad_checksum_record_says_it_was_dropped(syn_sent: Rig):
    syn_sent.link.deliver(corrupt_checksum(syn_sent.peer_frame(PEER_SYN_ACK)))
    syn_sent.driver.pump(0)
    (rec,) = syn_sent.records
    assert rec["note"] == "bad checksum: dropped" and rec["state"] == "SYN-SENT"


def test_frames_from_another_address_are_ignored(syn_sent: Rig):
    syn_sent.feed(PEER_SYN_ACK, src_ip=STRANGER_IP)
    assert syn_sent.take_records() == [] and wire(syn_sent) == []
    assert syn_sent.ep.state is State.SYN_SENT


# -- passive open ------------------------------------------------------------------------------------


def test_passive_open_learns_the_peer_from_its_syn(listening: Rig):
    listening.feed(CLIENT_SYN)
    (learned,) = listening.peers_learned
    assert (learned.src_ip, learned.segment.sport) == (PEER_IP, CPORT)
    assert listening.driver.remote_ip == PEER_IP
    (synack,) = listening.sent()
    assert (synack.src_ip, synack.dst_ip) == (LOCAL_IP, PEER_IP)
    assert (synack.segment.flags.short(), synack.segment.seq, synack.segment.ack) == ("S.", SISN, CISN + 1)
    assert listening.take_records() == [
        ("segment", "in", "S"),
        ("state", "LISTEN", "SYN-RECEIVED"),
        ("segment", "out", "S."),
    ]


def test_passive_open_ignores_all_but_a_syn_until_it_knows_the_peer(listening: Rig):
    stray_ack = replace(CLIENT_SYN, seq=CISN + 1, ack=SISN + 1, flags=Flags.ACK, options=())
    listening.feed(stray_ack, replace(CLIENT_SYN, flags=Flags.SYN | Flags.ACK))
    assert listening.peers_learned == [] and listening.driver.remote_ip is None
    assert listening.take_records() == [] and listening.sent() == []
    assert listening.ep.state is State.LISTEN


def test_passive_open_completes_with_the_clients_ack(listening: Rig):
    listening.feed(CLIENT_SYN)
    listening.sent(), listening.take_records()
    listening.feed(replace(CLIENT_SYN, seq=CISN + 1, ack=SISN + 1, flags=Flags.ACK, options=()))
    assert listening.take_records() == [("segment", "in", "."), ("state", "SYN-RECEIVED", "ESTABLISHED")]
    assert listening.ep.state is State.ESTABLISHED
