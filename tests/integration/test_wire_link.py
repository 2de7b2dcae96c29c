"""Namespaces, routes/ARP and the packet socket against a real kernel (root; private namespaces
``rtt-wire-<pid>-*`` joined by a veth pair, removed in a finally)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from wire_helpers import Pair, mac_of, veth_pair, wait_for

from rawtcp.core.segment import Flags, Segment
from rawtcp.wire import netns
from rawtcp.wire.errors import WireError
from rawtcp.wire.link import PacketLink
from rawtcp.wire.packet import Decoded, FrameBuilder
from rawtcp.wire.route import resolve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lpair() -> Iterator[Pair]:
    with veth_pair("l") as p:
        yield p


# -- netns -------------------------------------------------------------------------------------


def test_inside_enters_and_returns(lpair: Pair) -> None:
    home = netns.current_inode()
    assert netns.exists(lpair.a) and not netns.exists("rtt-wire-no-such-ns")
    with netns.inside(lpair.a):
        assert netns.current_inode() == netns.inode(lpair.a) != home
        with netns.inside(lpair.b):
            assert netns.current_inode() == netns.inode(lpair.b)
        assert netns.current_inode() == netns.inode(lpair.a)
    assert netns.current_inode() == home


def test_inside_returns_on_exception(lpair: Pair) -> None:
    home = netns.current_inode()
    with pytest.raises(RuntimeError), netns.inside(lpair.a):
        raise RuntimeError("boom")
    assert netns.current_inode() == home


def test_enter_for_good_in_a_child(lpair: Pair) -> None:
    code = f"from rawtcp.wire import netns; netns.enter({lpair.b!r}); print(netns.current_inode())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert int(out.stdout) == netns.inode(lpair.b)


@pytest.mark.unprivileged
def test_missing_namespace_and_bad_name() -> None:
    with pytest.raises(WireError, match="no network namespace 'rtt-wire-no-such-ns'"):
        netns.enter("rtt-wire-no-such-ns")
    with pytest.raises(WireError, match="bad network namespace name"):
        netns.enter("../etc")


def test_unprivileged_gets_one_line_error(lpair: Pair) -> None:
    code = (f"import os, ctypes\n"  # import first: the stdlib may not be readable by nobody
            f"from rawtcp.wire import netns\n"
            f"from rawtcp.wire.errors import WireError\n"
            f"os.setgid(65534); os.setuid(65534)\n"
            f"try:\n    netns.enter({lpair.a!r})\nexcept WireError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd="/", env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW): run it with sudo")


# -- route -------------------------------------------------------------------------------------


def test_resolve_direct_by_arp_then_neighbour_table(lpair: Pair) -> None:
    with netns.inside(lpair.a):
        subprocess.run(["ip", "neigh", "flush", "dev", lpair.a_if], check=False)
        path = resolve(lpair.b_ip)
        assert (path.ifname, path.src_ip, path.next_hop, path.mtu, path.mss) == \
            (lpair.a_if, lpair.a_ip, lpair.b_ip, 1500, 1460)
        assert path.src_mac == mac_of(lpair.a, lpair.a_if)
        assert path.dst_mac == mac_of(lpair.b, lpair.b_if)  # from our own ARP exchange
        fake = bytes.fromhex("020000abcdef")
        subprocess.run(["ip", "neigh", "replace", lpair.b_ip, "lladdr", fake.hex(":"), "dev", lpair.a_if,
                        "nud", "permanent"], check=True)
        try:
            assert resolve(lpair.b_ip, iface=lpair.a_if).dst_mac == fake  # the table wins when valid
        finally:
            subprocess.run(["ip", "neigh", "del", lpair.b_ip, "dev", lpair.a_if], check=False)


def test_resolve_via_gateway_with_route_mtu(lpair: Pair) -> None:
    with netns.inside(lpair.a):
        subprocess.run(["ip", "route", "add", "198.19.8.0/24", "via", lpair.b_ip, "mtu", "1400"], check=True)
        try:
            path = resolve("198.19.8.5")
        finally:
            subprocess.run(["ip", "route", "del", "198.19.8.0/24"], check=False)
    assert (path.next_hop, path.mtu, path.mss, path.dst_mac) == (lpair.b_ip, 1400, 1360, mac_of(lpair.b, lpair.b_if))


def test_resolve_local_address_is_loopback(lpair: Pair) -> None:
    with netns.inside(lpair.a):
        path = resolve(lpair.a_ip)
    assert (path.ifname, path.src_ip, path.src_mac, path.dst_mac) == ("lo", lpair.a_ip, bytes(6), bytes(6))


def test_resolve_errors(lpair: Pair) -> None:
    with netns.inside(lpair.a):
        with pytest.raises(WireError, match=r"^no route to 198\.18\.99\.1 \(ENETUNREACH\)$"):
            resolve("198.18.99.1")
        with pytest.raises(WireError, match=r"^no such interface: nope0$"):
            resolve(lpair.b_ip, iface="nope0")
        with pytest.raises(WireError, match="not an IPv4 address"):
            resolve("300.1.1.1")
        t0 = time.monotonic()
        with pytest.raises(WireError) as err:
            resolve("198.19.7.9")  # on the subnet, nobody there
        assert str(err.value) == f"no ARP reply from 198.19.7.9 on {lpair.a_if}"
        assert 1.4 <= time.monotonic() - t0 < 3.0  # 3 tries × 0.5 s, bounded


# -- link --------------------------------------------------------------------------------------


def _sender(pair: Pair) -> tuple[PacketLink, FrameBuilder]:
    """A packet socket in A that sends crafted frames to B (it receives nothing of interest)."""
    with netns.inside(pair.a):
        path = resolve(pair.b_ip)
        link = PacketLink(path.ifname, pair.a_ip, 1, pair.b_ip, 1)
    return link, FrameBuilder(pair.a_ip, pair.b_ip, path.src_mac, path.dst_mac)


def test_set_filter_narrows_a_passive_open(lpair: Pair) -> None:
    out, fb = _sender(lpair)
    with netns.inside(lpair.b):
        sniff = PacketLink(lpair.b_if, lpair.b_ip, 9100)  # any peer: a listener before the SYN
    with out, sniff:
        for sport in (1111, 2222):
            out.send(fb.frame(Segment(sport, 9100, 1, 0, Flags.SYN, 100)))
        seen: list[Decoded] = []
        assert wait_for(sniff, lambda d: d.segment.sport == 2222, seen=seen) is not None
        assert [d.segment.sport for d in seen] == [1111, 2222]
        sniff.set_filter(lpair.b_ip, 9100, lpair.a_ip, 1111)  # the peer is known now
        for sport in (2222, 1111):
            out.send(fb.frame(Segment(sport, 9100, 2, 0, Flags.ACK, 100)))
        seen = []
        assert wait_for(sniff, lambda d: d.segment.seq == 2, seen=seen) is not None
        assert [d.segment.sport for d in seen] == [1111]


def test_recv_frames_batches_and_checksums(lpair: Pair) -> None:
    out, fb = _sender(lpair)
    with netns.inside(lpair.b):
        sniff = PacketLink(lpair.b_if, lpair.b_ip, 9200, lpair.a_ip, 3333)
    with out, sniff:
        for seq in range(5):
            out.send(fb.frame(Segment(3333, 9200, seq, 0, Flags.ACK, 100, payload=b"x" * seq),
                              bad_checksum=seq == 4))
        got: list[tuple[bytes, int]] = []
        deadline = time.monotonic() + 2
        while len(got) < 5 and time.monotonic() < deadline:
            select.select([sniff], [], [], max(0.0, deadline - time.monotonic()))
            batch = sniff.recv_frames(max_n=2)
            assert len(batch) <= 2
            got += batch
        assert sniff.recv_frames() == []
    from rawtcp.wire.link import decode

    decoded = [decode(frame, status) for frame, status in got]
    assert [d.segment.seq for d in decoded] == [0, 1, 2, 3, 4]
    # crafted frames carry full checksums, so the status does not vouch for them: verified here
    assert [d.checksum_ok for d in decoded] == [True, True, True, True, False]


def test_own_transmissions_not_received(lpair: Pair) -> None:
    with netns.inside(lpair.a):
        path = resolve(lpair.b_ip)
        # a filter that our outgoing frames would match if the kernel handed them back
        mirror = PacketLink(path.ifname, lpair.b_ip, 9300, lpair.a_ip, 4444)
        out = PacketLink(path.ifname, lpair.a_ip, 4444, lpair.b_ip, 9300)
    fb = FrameBuilder(lpair.a_ip, lpair.b_ip, path.src_mac, path.dst_mac)
    with netns.inside(lpair.b):
        sniff = PacketLink(lpair.b_if, lpair.b_ip, 9300, lpair.a_ip, 4444)
    with mirror, out, sniff:
        out.send(fb.frame(Segment(4444, 9300, 7, 0, Flags.SYN, 100)))
        assert wait_for(sniff, lambda d: True) is not None  # it went out
        assert mirror.recv_frames() == []


def test_link_errors(lpair: Pair) -> None:
    with netns.inside(lpair.a):
        with pytest.raises(WireError, match=r"^no such interface: nope0$"):
            PacketLink("nope0", lpair.a_ip, 1)
        made = subprocess.run(["ip", "tuntap", "add", "rttwtun", "mode", "tun"], capture_output=True,
                              check=False).returncode == 0
        try:
            if made:
                with pytest.raises(WireError, match="rttwtun is not an Ethernet interface"):
                    PacketLink("rttwtun", lpair.a_ip, 1)
        finally:
            subprocess.run(["ip", "link", "del", "rttwtun"], capture_output=True, check=False)
        link = PacketLink(lpair.a_if, lpair.a_ip, 1)
        big = FrameBuilder(lpair.a_ip, lpair.b_ip, link.mac, link.mac).frame(
            Segment(1, 2, 3, 0, Flags.ACK, 1, payload=b"x" * 3000))
        with pytest.raises(WireError, match="larger than vwa's MTU"):
            link.send(big)
        link.close(wait=False)
        link.close(wait=False)  # idempotent
        assert link.closed and PacketLink.flush_closes()
