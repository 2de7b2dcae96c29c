"""IPv6 (and ICMP) through the wire layer against real kernels: NDP, the IPv6 filter, RST suppression
for IPv6 4-tuples, injected ICMP errors the kernel acts on.

Two private namespaces ``rtt-wire6-<pid>-a`` (A, where rawtcp runs and whose kernel it silences) and
``-b`` (B, the kernel under test) joined by a veth pair, dual-stack: 2001:db8:7::1/64 and ::2/64
(added ``nodad``: no tentative period) and 198.19.9.1/24 and .2/24; removed in a finally
(wire_helpers.py, shared with test_wire_nft.py's IPv4 twins of the RST-suppression tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from engine_helpers import IPV4_ONLY, nft_tables
from wire_helpers import (
    BACKENDS,
    Pair6,
    backend_round_trip,
    from_b,
    left_by_a_dead_process,
    mac_of,
    only_the_marker_answered,
    rst_counters,
    veth_pair,
    wait_for,
)

from rawtcp.core.segment import Flags, Segment
from rawtcp.lab.topology import WRITABLE_PROC_SYS, lab_status
from rawtcp.wire import netns
from rawtcp.wire.errors import WireError
from rawtcp.wire.icmp import IcmpBuilder, IcmpMessage, Quoted, icmp_type_code
from rawtcp.wire.link import PacketLink
from rawtcp.wire.nft import RstGuard
from rawtcp.wire.packet import Decoded, FrameBuilder
from rawtcp.wire.route import resolve

pytestmark = pytest.mark.integration


def _out(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True, check=False,
                          timeout=30).stdout


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair6]:
    with veth_pair("m", dual_stack=True) as p:
        yield p


@pytest.fixture
def nft_pair() -> Iterator[Pair6]:
    """A pair of its own per test: nft tables and counters start empty."""
    with veth_pair("n", dual_stack=True) as p:
        yield p


# -- route: NDP ----------------------------------------------------------------------------------


def test_resolve_ipv6_by_neighbour_discovery_then_table(pair: Pair6) -> None:
    with netns.inside(pair.a):
        subprocess.run(["ip", "-6", "neigh", "flush", "dev", pair.a_if], check=False)
        path = resolve(pair.b_ip)
        assert (path.ifname, path.src_ip, path.next_hop, path.mtu, path.mss, path.version) == \
            (pair.a_if, pair.a_ip, pair.b_ip, 1500, 1440, 6)
        assert path.src_mac == mac_of(pair.a, pair.a_if)
        assert path.dst_mac == mac_of(pair.b, pair.b_if)  # from our own solicitation's answer
        fake = bytes.fromhex("020000abcdef")
        subprocess.run(["ip", "-6", "neigh", "replace", pair.b_ip, "lladdr", fake.hex(":"), "dev", pair.a_if,
                        "nud", "permanent"], check=True)
        try:
            assert resolve(pair.b_ip, iface=pair.a_if).dst_mac == fake  # the table wins when valid
        finally:
            subprocess.run(["ip", "-6", "neigh", "del", pair.b_ip, "dev", pair.a_if], check=False)
        assert resolve(pair.b_ip4).mss == 1460  # the IPv4 side of the same link is unchanged


def test_resolve_ipv6_local_gateway_and_errors(pair: Pair6) -> None:
    with netns.inside(pair.a):
        local = resolve(pair.a_ip)
        assert (local.ifname, local.src_ip, local.dst_mac) == ("lo", pair.a_ip, bytes(6))
        subprocess.run(["ip", "-6", "route", "add", "2001:db8:8::/64", "via", pair.b_ip, "mtu", "1400"], check=True)
        try:
            routed = resolve("2001:db8:8::5")
        finally:
            subprocess.run(["ip", "-6", "route", "del", "2001:db8:8::/64"], check=False)
        assert (routed.next_hop, routed.mtu, routed.mss, routed.dst_mac) == \
            (pair.b_ip, 1400, 1340, mac_of(pair.b, pair.b_if))
        with pytest.raises(WireError, match=r"^no route to 2001:db9::1 \(ENETUNREACH\)$"):
            resolve("2001:db9::1")
        t0 = time.monotonic()
        with pytest.raises(WireError) as err:
            resolve("2001:db8:7::9")  # on the subnet, nobody there
        assert str(err.value) == f"no neighbour advertisement from 2001:db8:7::9 on {pair.a_if}"
        assert err.value.exit_code == 8
        assert 1.4 <= time.monotonic() - t0 < 3.0  # 3 tries × 0.5 s, bounded


# -- link: a handshake with a kernel over IPv6 ---------------------------------------------------


def test_ipv6_syn_reaches_a_kernel_listener_and_the_handshake_completes(pair: Pair6) -> None:
    """rawtcp's IPv6 SYN through a PacketLink reaches a listening socket in B; its SYN-ACK comes back
    through the IPv6 filter; our ACK and data complete what the kernel accepts."""
    with netns.inside(pair.b):
        listener = socket.create_server((pair.b_ip, 8086), family=socket.AF_INET6)
    sport, isn = 41086, 7000
    with listener, netns.inside(pair.a), RstGuard() as guard:
        path = resolve(pair.b_ip)
        fb = FrameBuilder(pair.a_ip, pair.b_ip, path.src_mac, path.dst_mac, flow_label=0x12345)
        guard.add_conn(pair.a_ip, sport, pair.b_ip, 8086)
        with PacketLink(path.ifname, pair.a_ip, sport, pair.b_ip, 8086) as link:
            link.send(fb.frame(Segment(sport, 8086, isn, 0, Flags.SYN, 64240, (("MSS", 1440),))))
            synack = wait_for(link, lambda d: True)
            assert isinstance(synack, Decoded)
            seg = synack.segment
            assert seg.flags == Flags.SYN | Flags.ACK and seg.ack == isn + 1 and synack.checksum_ok
            assert (synack.version, synack.src_ip, synack.dst_ip, synack.hop_limit) == (6, pair.b_ip, pair.a_ip, 64)
            assert dict(o for o in seg.options if o[0] == "MSS")["MSS"] == 1440  # 1500 - 40 - 20
            link.send(fb.frame(Segment(sport, 8086, isn + 1, seg.seq + 1, Flags.ACK, 64240)))
            link.send(fb.frame(Segment(sport, 8086, isn + 1, seg.seq + 1, Flags.PSH | Flags.ACK, 64240,
                                       payload=b"hello v6")))
            listener.settimeout(5)
            conn, peer = listener.accept()
            with conn:
                conn.settimeout(5)
                assert peer[:2] == (pair.a_ip, sport)
                assert conn.recv(100) == b"hello v6"
                ack = wait_for(link, lambda d: isinstance(d, Decoded) and d.segment.ack == isn + 9)
                assert ack is not None
                link.send(fb.frame(Segment(sport, 8086, isn + 9, seg.seq + 1, Flags.RST, 0)))
        # A's kernel answered the SYN-ACK (and B's ACK of our data) with RSTs: dropped by the conns6 rule
        counters = rst_counters(pair.a, "output6")
        assert counters[0] >= 1 and counters[1] == 0


def test_ipv6_link_filters_by_address_and_keeps_its_family(pair: Pair6) -> None:
    with netns.inside(pair.a):
        path = resolve(pair.b_ip)
        out = PacketLink(path.ifname, pair.a_ip, 1, pair.b_ip, 1)
    fb = FrameBuilder(pair.a_ip, pair.b_ip, path.src_mac, path.dst_mac)
    fb4 = FrameBuilder(pair.a_ip4, pair.b_ip4, path.src_mac, path.dst_mac)
    with netns.inside(pair.b):
        sniff = PacketLink(pair.b_if, pair.b_ip, 9106)  # any peer
    with out, sniff:
        out.send(fb4.frame(Segment(1111, 9106, 1, 0, Flags.SYN, 100)))  # IPv4, same ports: not for this link
        out.send(fb.frame(Segment(2222, 9106, 2, 0, Flags.SYN, 100)))
        seen: list[Decoded | IcmpMessage] = []
        assert wait_for(sniff, lambda d: True, seen=seen) is not None
        assert [(d.version, d.segment.sport) for d in seen if isinstance(d, Decoded)] == [(6, 2222)]
        sniff.set_filter(pair.b_ip, 9106, pair.a_ip, 3333)
        for sport in (2222, 3333):
            out.send(fb.frame(Segment(sport, 9106, 3, 0, Flags.ACK, 100)))
        seen = []
        assert wait_for(sniff, lambda d: True, seen=seen) is not None
        assert [d.segment.sport for d in seen if isinstance(d, Decoded)] == [3333]
        with pytest.raises(ValueError, match="bound for IPv6"):
            sniff.set_filter(pair.b_ip4, 9106)


@pytest.mark.parametrize("family", [6, 4])
def test_icmp_link_receives_the_kernels_echo_reply(pair: Pair6, family: int) -> None:
    """An ICMP-enabled link gets ICMP/ICMPv6 from the peer; our echo request is the kernel's question."""
    local, remote = (pair.a_ip, pair.b_ip) if family == 6 else (pair.a_ip4, pair.b_ip4)
    with netns.inside(pair.a):
        path = resolve(remote)
        link = PacketLink(path.ifname, local, 9107, remote, 9107, icmp=True)
    builder = IcmpBuilder(local, remote, path.src_mac, path.dst_mac)
    with link:
        link.send(builder.frame(*icmp_type_code(family, "echo_request"), echo_id=4242, echo_seq=1, payload=b"ping"))
        reply = wait_for(link, lambda m: isinstance(m, IcmpMessage))
    assert isinstance(reply, IcmpMessage)
    assert reply.names == ("echo_reply", None) and reply.echo_id == 4242 and reply.body.endswith(b"ping")
    assert (reply.version, reply.src_ip, reply.dst_ip, reply.checksum_ok) == (family, remote, local, True)


# -- injected ICMP errors: the kernel acts on them -------------------------------------------------


@contextmanager
def handshake(pair: Pair6, family: int, port: int, sport: int) -> Iterator[tuple[PacketLink, IcmpBuilder, int]]:
    """rawtcp in A opens a connection to a listener in B; yields A's link, an ICMP builder from A to B
    and B's SND.NXT (its ISN + 1: B has sent nothing else), with B's socket accepted and open."""
    peer_ip, kernel_ip = (pair.a_ip, pair.b_ip) if family == 6 else (pair.a_ip4, pair.b_ip4)
    with netns.inside(pair.b):
        listener = socket.create_server((kernel_ip, port), family=socket.AF_INET6 if family == 6 else socket.AF_INET)
    with listener, netns.inside(pair.a), RstGuard() as guard:
        path = resolve(kernel_ip)
        fb = FrameBuilder(peer_ip, kernel_ip, path.src_mac, path.dst_mac)
        guard.add_conn(peer_ip, sport, kernel_ip, port)
        with PacketLink(path.ifname, peer_ip, sport, kernel_ip, port, icmp=True) as link:
            link.send(fb.frame(Segment(sport, port, 100, 0, Flags.SYN, 64240, (("MSS", 1400),))))
            synack = wait_for(link, lambda d: isinstance(d, Decoded))
            assert isinstance(synack, Decoded) and synack.segment.ack == 101
            snd_nxt = (synack.segment.seq + 1) & 0xFFFFFFFF
            link.send(fb.frame(Segment(sport, port, 101, snd_nxt, Flags.ACK, 64240)))
            listener.settimeout(5)
            conn, _peer = listener.accept()
            with conn:
                yield link, IcmpBuilder(peer_ip, kernel_ip, path.src_mac, path.dst_mac), snd_nxt
                link.send(fb.frame(Segment(sport, port, 101, 0, Flags.RST, 0)))


def _route(ns: str, family: int, dst: str) -> str:
    return _out(ns, "ip", f"-{family}", "route", "get", dst)


def _forget_path_mtus(ns: str, family: int) -> None:
    """Drop the path MTUs the kernel learned (``ip route flush cache`` writes /proc/sys/net/*/route/flush,
    read-only inside a container until remounted: without it the next test starts from a lowered MTU)."""
    _out(ns, "sh", "-c", f"{WRITABLE_PROC_SYS}ip -{family} route flush cache")


def _wait_route(ns: str, family: int, dst: str, text: str, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while text not in _route(ns, family, dst):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize(("family", "type_name", "code_name", "mtu"),
                         [(6, "packet_too_big", None, 1280), (4, "unreachable", "frag_needed", 1200)])
def test_injected_mtu_error_lowers_the_kernels_path_mtu(pair: Pair6, family: int, type_name: str,
                                                        code_name: str | None, mtu: int) -> None:
    """A packet-too-big (RFC 8201) / fragmentation-needed (RFC 1191) quoting B's own segment, with the
    sequence number B sends next (Linux accepts SND.UNA..SND.NXT), makes B lower its path MTU to A."""
    port, sport = 9110 + family, 42110 + family
    peer_ip = pair.a_ip if family == 6 else pair.a_ip4
    try:
        with handshake(pair, family, port, sport) as (link, icmp, snd_nxt):
            assert f"mtu {mtu}" not in _route(pair.b, family, peer_ip)
            link.send(icmp.frame(*icmp_type_code(family, type_name, code_name), mtu=mtu,
                                 quoted=Quoted(port, sport, seq=snd_nxt, payload_len=1400)))
            assert _wait_route(pair.b, family, peer_ip, f"mtu {mtu}")
    finally:
        _forget_path_mtus(pair.b, family)


@pytest.mark.parametrize("family", [6, 4])
def test_quote_outside_the_send_window_is_ignored(pair: Pair6, family: int) -> None:
    """Linux drops an ICMP error whose quoted sequence lies outside SND.UNA..SND.NXT (RFC 5927 §4.1),
    and one quoting a 4-tuple it has no connection for. Had either lowered the path MTU to 1290, the
    good one after them (1300) could not raise it again: seeing 1300 proves both were ignored."""
    port, sport = 9120 + family, 42120 + family
    peer_ip = pair.a_ip if family == 6 else pair.a_ip4
    type_code = icmp_type_code(6, "packet_too_big") if family == 6 else icmp_type_code(4, "unreachable",
                                                                                        "frag_needed")
    try:
        with handshake(pair, family, port, sport) as (link, icmp, snd_nxt):
            assert " mtu " not in _route(pair.b, family, peer_ip), "a path MTU an earlier test left"
            link.send(icmp.frame(*type_code, mtu=1290, quoted=Quoted(port, sport, seq=snd_nxt + 100_000)))
            link.send(icmp.frame(*type_code, mtu=1290, quoted=Quoted(port, sport + 1, seq=snd_nxt)))
            link.send(icmp.frame(*type_code, mtu=1300, quoted=Quoted(port, sport, seq=snd_nxt)))
            assert _wait_route(pair.b, family, peer_ip, "mtu 1300")
            assert "mtu 1290" not in _route(pair.b, family, peer_ip)
    finally:
        _forget_path_mtus(pair.b, family)


# -- nft: RST suppression for IPv6 ---------------------------------------------------------------


def test_ipv6_kernel_rst_dropped_only_while_the_entry_exists(nft_pair: Pair6) -> None:
    """A's kernel answers an unsolicited IPv6 SYN-ACK with RST, except for the 4-tuple in ``conns6``."""
    p = nft_pair
    with netns.inside(p.a), RstGuard() as guard:
        guard.add_conn(p.a_ip, 40001, p.b_ip, 8080)
        with from_b(p, 8080) as (sniff, fb, _path):
            synacks = [Segment(8080, port, 5000, 1001, Flags.SYN | Flags.ACK, 64240) for port in (40001, 40002)]
            marker = only_the_marker_answered(sniff, fb, synacks, silenced=40001, marker=40002)
            assert marker.version == 6
            assert rst_counters(p.a, "output6") == [1, 0]
            assert guard.remove_conn(p.a_ip, 40001, p.b_ip, 8080) is True
            assert guard.remove_conn(p.a_ip, 40001, p.b_ip, 8080) is False  # already gone
            sniff.send(fb.frame(Segment(8080, 40001, 5000, 1001, Flags.SYN | Flags.ACK, 64240)))
            rst = wait_for(sniff, lambda d: isinstance(d, Decoded) and d.segment.sport == 40001)
            assert isinstance(rst, Decoded) and rst.segment.has(Flags.RST)  # no entry: the RST goes out
    assert "rawtcp" not in nft_tables(p.a)  # close() dropped the empty table


def test_ipv6_binds_entry_covers_any_peer_and_ipv4_is_separate(nft_pair: Pair6) -> None:
    p = nft_pair
    with netns.inside(p.a), RstGuard() as guard:
        guard.add_bind(p.a_ip, 9000)
        with from_b(p, 5555) as (six, fb6, _path), from_b(p, 5555, p.b_ip4, p.a_ip4) as (four, fb4, _path4):
            # the IPv6 bind does not cover the same port over IPv4
            four.send(fb4.frame(Segment(5555, 9000, 1, 0, Flags.ACK, 100)))
            acks = [Segment(5555, dport, 1, 0, Flags.ACK, 100) for dport in (9000, 9001)]
            only_the_marker_answered(six, fb6, acks, silenced=9000, marker=9001)
            rst4 = wait_for(four, lambda d: True)
            assert isinstance(rst4, Decoded) and rst4.segment.has(Flags.RST) and rst4.version == 4
        assert rst_counters(p.a, "output6") == [0, 1]
    assert "rawtcp" not in nft_tables(p.a)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_backend_handles_both_families(nft_pair: Pair6, backend: str) -> None:
    p = nft_pair
    backend_round_trip(p.a, backend, [(p.a_ip, 42000, p.b_ip, 8080), (p.a_ip4, 42000, p.b_ip4, 8080)],
                       (p.a_ip, 42001), [("binds6", (p.a_ip, 42001)), ("conns", (p.a_ip4, 42000, p.b_ip4, 8080)),
                                         ("conns6", (p.a_ip, 42000, p.b_ip, 8080))])


def test_reap_removes_a_dead_owners_ipv6_entries(nft_pair: Pair6) -> None:
    p = nft_pair
    dead = left_by_a_dead_process(p.a, conns=[(p.a_ip, 41000, p.b_ip, 8080)], binds=[(p.a_ip, 41003)])
    with netns.inside(p.a):
        guard = RstGuard()
        try:
            guard.add_conn(p.a_ip, 41001, p.b_ip, 8080)  # ours, alive: must survive the reap
            assert sorted(guard.reap()) == [
                f"removed RST-suppression entry [{p.a_ip}]:41000 -> [{p.b_ip}]:8080 left by dead process {dead}",
                f"removed RST-suppression entry [{p.a_ip}]:41003 (listening) left by dead process {dead}",
            ]
            assert guard.entries() == [("conns6", (p.a_ip, 41001, p.b_ip, 8080), os.getpid())]
        finally:
            guard.close()
    assert "rawtcp" not in nft_tables(p.a)


def test_an_ipv4_only_table_gets_the_ipv6_part(nft_pair: Pair6) -> None:
    """A table made by an older rawtcp (IPv4 sets only) is completed in place, its entries kept."""
    p = nft_pair
    old = """table inet rawtcp {
  set conns { type ipv4_addr . inet_service . ipv4_addr . inet_service; }
  set binds { type ipv4_addr . inet_service; }
  chain output {
    type filter hook output priority 0; policy accept;
    tcp flags & rst == rst ip saddr . tcp sport . ip daddr . tcp dport @conns counter drop
    tcp flags & rst == rst ip saddr . tcp sport @binds counter drop
  }
}
add element inet rawtcp binds { 198.19.9.1 . 7000 comment "pid=1" }
"""
    subprocess.run(["ip", "netns", "exec", p.a, "nft", "-f", "-"], input=old, text=True, check=True,
                   capture_output=True)
    with netns.inside(p.a):
        guard = RstGuard()
        try:
            guard.add_conn(p.a_ip, 43000, p.b_ip, 8080)
            assert sorted(e[:2] for e in guard.entries()) == [("binds", (p.a_ip4, 7000)),
                                                              ("conns6", (p.a_ip, 43000, p.b_ip, 8080))]
            assert rst_counters(p.a, "output6") == [0, 0]
        finally:
            guard.close()
    assert "7000" in _out(p.a, "nft", "list", "set", "inet", "rawtcp", "binds")  # pid 1 lives: kept


# -- the dual-stack lab --------------------------------------------------------------------------


IPV6_ECHO = """
import socket, sys, threading
srv = socket.create_server((sys.argv[1], 0), family=socket.AF_INET6)
port = srv.getsockname()[1]
def serve():
    conn, _ = srv.accept()
    with conn:
        conn.sendall(conn.recv(100))
threading.Thread(target=serve, daemon=True).start()
print(port, flush=True)
sys.stdin.readline()
"""


def test_dual_stack_lab_carries_ipv6_at_once(make_lab) -> None:
    """The lab's IPv6 addresses are usable the moment lab_up returns (no DAD), with static neighbours."""
    cfg, info = make_lab(listener=None)
    assert (info.client_ip6, info.server_ip6) == ("2001:db8::1", "2001:db8::2")
    status = lab_status(cfg)
    assert "2001:db8::1/64" in status["interfaces"][cfg.client_ns]["addresses6"]
    assert "2001:db8::2/64" in status["interfaces"][cfg.server_ns]["addresses6"]
    assert status["interfaces"][cfg.client_ns]["addresses"] == ["198.18.0.1/24"]
    assert "tentative" not in _out(cfg.client_ns, "ip", "-6", "addr", "show", "dev", cfg.client_if)
    neigh = _out(cfg.client_ns, "ip", "-6", "neigh", "show", "2001:db8::2")
    assert "PERMANENT" in neigh and info.server_mac in neigh
    # a kernel connection over IPv6 from the client namespace, right away
    server = subprocess.Popen(["ip", "netns", "exec", cfg.server_ns, sys.executable, "-c", IPV6_ECHO,
                               "2001:db8::2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())
        with netns.inside(cfg.client_ns):
            with socket.create_connection(("2001:db8::2", port), timeout=5) as sock:
                sock.sendall(b"six")
                assert sock.recv(10) == b"six"
            # rawtcp's own view: the route and the static neighbour, no solicitation needed
            path = resolve("2001:db8::2")
        assert (path.ifname, path.src_ip, path.dst_mac.hex(":")) == (cfg.client_if, "2001:db8::1", info.server_mac)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


def test_ipv4_only_lab_has_no_ipv6(make_lab) -> None:
    cfg, info = make_lab(listener=None, **IPV4_ONLY)
    assert (info.client_ip6, info.server_ip6) == (None, None)
    assert lab_status(cfg)["interfaces"][cfg.client_ns]["addresses6"] == []
    assert _out(cfg.client_ns, "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6").strip() == "1"
