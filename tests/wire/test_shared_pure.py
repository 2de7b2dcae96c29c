"""The shared receive path without sockets: its one BPF program (run in the test interpreter of
test_bpf.py) and the demultiplexer fed frames built by rawtcp's own FrameBuilder and IcmpBuilder."""

from __future__ import annotations

import pytest
from test_bpf import run_bpf

from rawtcp.core import Flags, Segment
from rawtcp.wire.bpf import local_filter
from rawtcp.wire.icmp import IcmpBuilder
from rawtcp.wire.packet import FrameBuilder
from rawtcp.wire.shared import Demux

LOCAL, REMOTE, OTHER = "198.18.0.1", "198.18.0.2", "198.18.0.3"
LOCAL6, REMOTE6 = "2001:db8::1", "2001:db8::2"
MAC_A, MAC_B = b"\x02\0\0\0\0\x0a", b"\x02\0\0\0\0\x0b"


class Box:
    """A demultiplexer target: frames land in its inbox."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inbox: list[tuple[bytes, int]] = []

    def __repr__(self) -> str:
        return f"Box({self.name})"


def frame(src: str, dst: str, sport: int, dport: int, flags: Flags = Flags.ACK, payload: bytes = b"") -> bytes:
    """A segment from ``src:sport`` to ``dst:dport`` as it arrives (its sender's builder)."""
    return FrameBuilder(src, dst, MAC_B, MAC_A).frame(Segment(sport, dport, 1, 2, flags, 1000, (), payload, 0))


# ---------------------------------------------------------------------------------------------
# the filter


@pytest.mark.parametrize(("pkt", "kept"), [
    (frame(REMOTE, LOCAL, 8080, 40000), True),
    (frame(REMOTE, LOCAL, 1, 2, Flags.SYN | Flags.ACK), True),
    (frame(OTHER, LOCAL, 9, 9), True),  # any peer, any port: ports are chosen in user space
    (frame(LOCAL, REMOTE, 40000, 8080), False),  # to another address
    (frame(REMOTE6, LOCAL6, 8080, 40000), True),
    (frame(LOCAL6, REMOTE6, 40000, 8080), False),
])
def test_the_filter_keeps_tcp_to_our_addresses_of_both_families(pkt, kept):
    program = local_filter([LOCAL, LOCAL6])
    assert (run_bpf(program, pkt) > 0) is kept


def test_the_filter_keeps_icmp_errors_and_echo_but_not_neighbour_discovery():
    program = local_filter([LOCAL, LOCAL6])
    unreachable = IcmpBuilder(REMOTE, LOCAL, MAC_B, MAC_A).frame(3, 3, payload=frame(LOCAL, REMOTE, 40000, 8080)[14:42])
    echo6 = IcmpBuilder(REMOTE6, LOCAL6, MAC_B, MAC_A).frame(129, 0, echo_id=1)
    advert6 = IcmpBuilder(REMOTE6, LOCAL6, MAC_B, MAC_A).frame(136, 0)
    assert run_bpf(program, unreachable) > 0 and run_bpf(program, echo6) > 0
    assert run_bpf(program, advert6) == 0
    assert run_bpf(local_filter([LOCAL], icmp=False), unreachable) == 0


def test_the_filter_drops_non_first_fragments_and_other_ethertypes():
    program = local_filter([LOCAL])
    pkt = bytearray(frame(REMOTE, LOCAL, 8080, 40000))
    pkt[20:22] = (0x0010).to_bytes(2, "big")  # fragment offset 16 (x 8 bytes)
    assert run_bpf(program, bytes(pkt)) == 0
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    assert run_bpf(program, arp) == 0
    assert run_bpf(local_filter([]), frame(REMOTE, LOCAL, 1, 2)) == 0


def test_the_filter_takes_several_addresses_of_each_family():
    many = [f"198.18.1.{i}" for i in range(1, 9)] + [f"2001:db8::{i:x}" for i in range(1, 5)]
    program = local_filter(many)
    for addr in many:
        src = "2001:db8::99" if ":" in addr else REMOTE
        assert run_bpf(program, frame(src, addr, 1, 2)) > 0
    assert run_bpf(program, frame(REMOTE, "198.18.1.9", 1, 2)) == 0
    assert run_bpf(program, frame("2001:db8::99", "2001:db8::5", 1, 2)) == 0
    with pytest.raises(ValueError, match="too many"):
        local_filter([f"2001:db8::{i:x}" for i in range(1, 20)])


# ---------------------------------------------------------------------------------------------
# the demultiplexer


def test_each_connection_gets_its_own_frames_and_no_other():
    demux = Demux()
    boxes = {port: Box(str(port)) for port in range(40000, 40100)}
    for port, box in boxes.items():
        demux.add(box, LOCAL, port, REMOTE, 8080)
    frames = [(frame(REMOTE, LOCAL, 8080, port, payload=b"%d" % port), 0) for port in reversed(boxes)]
    touched = demux.dispatch(frames)
    assert sorted(touched, key=lambda b: b.name) == sorted(boxes.values(), key=lambda b: b.name)
    for port, box in boxes.items():
        assert box.inbox == [(frame(REMOTE, LOCAL, 8080, port, payload=b"%d" % port), 0)]
    assert demux.unmatched == 0


def test_a_target_is_touched_once_per_batch_and_frames_keep_their_order():
    demux = Demux()
    box = Box("c")
    demux.add(box, LOCAL, 40000, REMOTE, 8080)
    batch = [(frame(REMOTE, LOCAL, 8080, 40000, payload=bytes([i])), i) for i in range(5)]
    assert demux.dispatch(batch) == [box]
    assert box.inbox == batch
    assert demux.dispatch(batch[:1]) == []  # its inbox was not empty: already on the caller's list


def test_wrong_peer_port_address_or_family_goes_nowhere():
    demux = Demux()
    box = Box("c")
    demux.add(box, LOCAL, 40000, REMOTE, 8080)
    strays = [frame(REMOTE, LOCAL, 8081, 40000), frame(OTHER, LOCAL, 8080, 40000), frame(REMOTE, LOCAL, 8080, 40001),
              frame(REMOTE6, LOCAL6, 8080, 40000), b"\0" * 20]
    assert demux.dispatch([(f, 0) for f in strays]) == []
    assert box.inbox == [] and demux.unmatched == len(strays)


def test_exact_tuple_then_peer_then_bind():
    demux = Demux()
    exact, peer, bind = Box("exact"), Box("peer"), Box("bind")
    demux.add(exact, LOCAL, 5555, REMOTE, 1111)
    demux.add(peer, LOCAL, 5555, REMOTE)  # remote port still unknown
    demux.add(bind, LOCAL, 5555)  # passive open: anyone
    demux.dispatch([(frame(REMOTE, LOCAL, 1111, 5555), 0), (frame(REMOTE, LOCAL, 2222, 5555), 0),
                    (frame(OTHER, LOCAL, 3333, 5555), 0)])
    assert [len(b.inbox) for b in (exact, peer, bind)] == [1, 1, 1]
    assert bind.inbox[0][0] == frame(OTHER, LOCAL, 3333, 5555)


def test_removing_a_route_stops_delivery_and_frees_the_tuple():
    demux = Demux()
    old, new = Box("old"), Box("new")
    route = demux.add(old, LOCAL, 40000, REMOTE, 8080)
    with pytest.raises(ValueError, match="taken"):
        demux.add(new, LOCAL, 40000, REMOTE, 8080)
    demux.remove(route)
    assert len(demux) == 0
    demux.add(new, LOCAL, 40000, REMOTE, 8080)
    demux.dispatch([(frame(REMOTE, LOCAL, 8080, 40000), 0)])
    assert old.inbox == [] and len(new.inbox) == 1
    demux.remove(route)  # a stale route removes nothing that is not its own
    assert len(demux) == 1


def test_ipv6_connections_and_binds():
    demux = Demux()
    conn, bind = Box("conn"), Box("bind")
    demux.add(conn, LOCAL6, 40000, REMOTE6, 8080)
    demux.add(bind, LOCAL6, 8080)
    demux.dispatch([(frame(REMOTE6, LOCAL6, 8080, 40000), 0), (frame(REMOTE6, LOCAL6, 40000, 8080), 0)])
    assert len(conn.inbox) == 1 and len(bind.inbox) == 1


def test_icmp_goes_to_every_icmp_target_of_the_pair_only():
    demux = Demux()
    a, b, quiet, anyone = Box("a"), Box("b"), Box("quiet"), Box("anyone")
    demux.add(a, LOCAL, 40000, REMOTE, 8080, icmp=True)
    demux.add(b, LOCAL, 40001, REMOTE, 8080, icmp=True)
    demux.add(quiet, LOCAL, 40002, REMOTE, 8080)
    error = IcmpBuilder(REMOTE, LOCAL, MAC_B, MAC_A).frame(3, 3, payload=frame(LOCAL, REMOTE, 40000, 8080)[14:42])
    from_other = IcmpBuilder(OTHER, LOCAL, MAC_B, MAC_A).frame(0, 0, echo_id=7)
    demux.dispatch([(error, 0), (from_other, 0)])
    assert a.inbox == b.inbox == [(error, 0)] and quiet.inbox == []
    demux.add(anyone, LOCAL, 5000, icmp=True)
    demux.dispatch([(from_other, 0)])
    assert anyone.inbox == [(from_other, 0)]


def test_icmpv6_neighbour_discovery_is_not_delivered():
    demux = Demux()
    box = Box("c")
    demux.add(box, LOCAL6, 40000, REMOTE6, 8080, icmp=True)
    echo = IcmpBuilder(REMOTE6, LOCAL6, MAC_B, MAC_A).frame(129, 0, echo_id=1)
    advert = IcmpBuilder(REMOTE6, LOCAL6, MAC_B, MAC_A).frame(136, 0)
    demux.dispatch([(echo, 0), (advert, 0)])
    assert box.inbox == [(echo, 0)]


def test_bad_registrations():
    demux = Demux()
    with pytest.raises(ValueError, match="different address families"):
        demux.add(Box("x"), LOCAL, 1, REMOTE6, 2)
    with pytest.raises(ValueError, match="remote port needs a remote address"):
        demux.add(Box("x"), LOCAL, 1, None, 2)
    with pytest.raises(ValueError):
        demux.add(Box("x"), "not-an-ip", 1)
