"""The IPv6 and TCP-or-ICMP BPF programs, run in the classic-BPF interpreter of bpf_helpers.py on frames
scapy builds, side by side with what ``tcpdump -dd`` compiles, and attached to a real socket."""

from __future__ import annotations

import socket

import pytest
from bpf_helpers import LINKS, as_bytes, check_tcp_or_icmp, check_verdict, check_wildcards, full_tuple_expr, run_bpf
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)

from rawtcp.wire.bpf import ACCEPT, attach, detach, tcp4_filter, tcp6_filter, tcp_filter
from rawtcp.wire.icmp import IcmpBuilder, Quoted

LOCAL, LPORT, REMOTE, RPORT = "2001:db8::1", 40000, "2001:db8::2", 8080
LOCAL4, REMOTE4 = "198.18.0.1", "198.18.0.2"


def frames6() -> dict[str, tuple[bool, IPv6 | bytes]]:
    """name -> (expected to match the full 4-tuple TCP filter, packet)."""
    ip = IPv6(src=REMOTE, dst=LOCAL)
    tcp = TCP(sport=RPORT, dport=LPORT, flags="SA", options=[("MSS", 1024)])
    return {
        "match": (True, ip / tcp),
        "match with payload": (True, ip / tcp / (b"x" * 100)),
        "traffic class and flow label": (True, IPv6(src=REMOTE, dst=LOCAL, tc=0xB8, fl=0xABCDE) / tcp),
        "wrong local port": (False, ip / TCP(sport=RPORT, dport=LPORT + 1)),
        "wrong remote port": (False, ip / TCP(sport=RPORT + 1, dport=LPORT)),
        "ports swapped": (False, ip / TCP(sport=LPORT, dport=RPORT)),
        "remote differs in the last word": (False, IPv6(src="2001:db8::3", dst=LOCAL) / tcp),
        "remote differs in the first word": (False, IPv6(src="2001:db9::2", dst=LOCAL) / tcp),
        "local differs in a middle word": (False, IPv6(src=REMOTE, dst="2001:db8:0:1::1") / tcp),
        "our own outgoing": (False, IPv6(src=LOCAL, dst=REMOTE) / TCP(sport=LPORT, dport=RPORT)),
        "udp same ports": (False, ip / UDP(sport=RPORT, dport=LPORT)),
        "fragment header": (False, ip / IPv6ExtHdrFragment() / tcp),
        "icmpv6 from the peer": (False, ip / ICMPv6DestUnreach() / IPv6(src=LOCAL, dst=REMOTE) / TCP()),
        "truncated before the ports": (False, bytes(ip / tcp)[:41]),
    }


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("name", list(frames6()))
def test_full_tuple_ipv6_filter(link: str, name: str) -> None:
    expected, pkt = frames6()[name]
    program = tcp6_filter(LOCAL, LPORT, REMOTE, RPORT, link=link)
    assert tcp_filter(LOCAL, LPORT, REMOTE, RPORT, link=link) == program
    # tcpdump looks through one fragment header: no reference for that row
    check_verdict(program, pkt, link, expected,
                  None if name == "fragment header" else full_tuple_expr("ip6", LOCAL, REMOTE))


@pytest.mark.parametrize("link", LINKS)
def test_ipv6_wildcards(link: str) -> None:
    check_wildcards(tcp6_filter, IPv6, LOCAL, REMOTE, "2001:db8::77", link)


def test_families_do_not_cross() -> None:
    tcp = TCP(sport=RPORT, dport=LPORT)
    v4 = as_bytes(IP(src=REMOTE4, dst=LOCAL4) / tcp, "ether")
    v6 = as_bytes(IPv6(src=REMOTE, dst=LOCAL) / tcp, "ether")
    assert run_bpf(tcp6_filter(LOCAL, LPORT, REMOTE, RPORT), v4) == 0
    assert run_bpf(tcp4_filter(LOCAL4, LPORT, REMOTE4, RPORT), v6) == 0
    assert run_bpf(tcp6_filter(LOCAL, LPORT, REMOTE, RPORT, link="raw"), as_bytes(IP(src=REMOTE4, dst=LOCAL4) / tcp,
                                                                                   "raw")) == 0
    assert run_bpf(tcp_filter(LOCAL4, LPORT, REMOTE4, RPORT, icmp=True), v4) == ACCEPT
    with pytest.raises(ValueError, match="different address families"):
        tcp_filter(LOCAL, LPORT, REMOTE4, RPORT)
    with pytest.raises(ValueError, match="different address families"):
        tcp_filter(LOCAL4, LPORT, REMOTE, RPORT)
    with pytest.raises(ValueError, match="not an IPv6 address"):
        tcp6_filter("2001:db8::1::1", LPORT, None, None)
    with pytest.raises(ValueError):
        tcp6_filter(LOCAL, 70000, None, None)


# -- TCP or ICMP -------------------------------------------------------------------------------


def icmp_cases6() -> dict[str, tuple[bool, IPv6]]:
    """name -> (accepted by the TCP-or-ICMPv6 filter, packet)."""
    kernel_seg = IPv6(src=LOCAL, dst=REMOTE) / TCP(sport=LPORT, dport=RPORT)
    ip = IPv6(src=REMOTE, dst=LOCAL)
    return {
        "tcp still matches": (True, ip / TCP(sport=RPORT, dport=LPORT)),
        "tcp wrong port still dropped": (False, ip / TCP(sport=RPORT, dport=LPORT + 1)),
        "unreachable": (True, ip / ICMPv6DestUnreach(code=4) / kernel_seg),
        "packet too big": (True, ip / ICMPv6PacketTooBig(mtu=1280) / kernel_seg),
        "echo reply": (True, ip / ICMPv6EchoReply()),
        "neighbour solicitation": (False, ip / ICMPv6ND_NS(tgt=LOCAL)),
        "neighbour advertisement": (False, ip / ICMPv6ND_NA(tgt=REMOTE)),
        "mld report after hop-by-hop": (False, ip / IPv6ExtHdrHopByHop() / ICMPv6MLReport2()),
        "icmpv6 from someone else": (False, IPv6(src="2001:db8::9", dst=LOCAL) / ICMPv6DestUnreach()),
        "icmpv6 to someone else": (False, IPv6(src=REMOTE, dst="2001:db8::9") / ICMPv6DestUnreach()),
        "udp": (False, ip / UDP(sport=RPORT, dport=LPORT)),
    }


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("name", list(icmp_cases6()))
def test_tcp_or_icmpv6(link: str, name: str) -> None:
    expected, pkt = icmp_cases6()[name]
    check_tcp_or_icmp(LOCAL, REMOTE, name, pkt, link, expected)


def icmp_cases4() -> dict[str, tuple[bool, IP]]:
    ip = IP(src=REMOTE4, dst=LOCAL4)
    quote = IPerror(src=LOCAL4, dst=REMOTE4) / TCP(sport=LPORT, dport=RPORT)
    return {
        "tcp still matches": (True, ip / TCP(sport=RPORT, dport=LPORT)),
        "tcp wrong port still dropped": (False, ip / TCP(sport=RPORT + 1, dport=LPORT)),
        "frag needed": (True, ip / ICMP(type=3, code=4, nexthopmtu=1200) / quote),
        "port unreachable": (True, ip / ICMP(type=3, code=3) / quote),
        "echo reply": (True, ip / ICMP(type=0)),
        "icmp later fragment": (False, IP(src=REMOTE4, dst=LOCAL4, frag=2, proto=1) / (b"\x00" * 16)),
        "icmp from someone else": (False, IP(src="198.18.0.9", dst=LOCAL4) / ICMP(type=3)),
        "icmp to someone else": (False, IP(src=REMOTE4, dst="198.18.0.9") / ICMP(type=3)),
        "udp": (False, ip / UDP(sport=RPORT, dport=LPORT)),
    }


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("name", list(icmp_cases4()))
def test_tcp_or_icmp4(link: str, name: str) -> None:
    expected, pkt = icmp_cases4()[name]
    check_tcp_or_icmp(LOCAL4, REMOTE4, name, pkt, link, expected,
                      tcpdump_expr=f"src host {REMOTE4} and dst host {LOCAL4} and ((tcp and src port {RPORT} "
                                   f"and dst port {LPORT}) or (icmp and ip[6:2] & 0x1fff = 0))")


def test_our_own_icmp_builder_passes_the_filter() -> None:
    frame = IcmpBuilder(REMOTE, LOCAL, bytes(6), bytes(6)).frame(2, 0, mtu=1280, quoted=Quoted(LPORT, RPORT, 1))
    assert run_bpf(tcp_filter(LOCAL, LPORT, REMOTE, RPORT, icmp=True), frame) == ACCEPT
    frame4 = IcmpBuilder(REMOTE4, LOCAL4, bytes(6), bytes(6)).frame(3, 4, mtu=1200, quoted=Quoted(LPORT, RPORT, 1))
    assert run_bpf(tcp_filter(LOCAL4, LPORT, REMOTE4, RPORT, icmp=True), frame4) == ACCEPT


@pytest.mark.parametrize("icmp", [False, True])
def test_the_kernel_accepts_the_programs(icmp: bool) -> None:
    # SO_ATTACH_FILTER runs the kernel's own checker (sk_chk_filter); a UDP socket needs no privileges.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for program in (tcp6_filter(LOCAL, LPORT, REMOTE, RPORT, icmp=icmp),
                        tcp6_filter(LOCAL, LPORT, None, None, link="raw", icmp=icmp),
                        tcp4_filter(LOCAL4, LPORT, REMOTE4, RPORT, icmp=icmp)):
            assert attach(sock, program).program == program
        detach(sock)
