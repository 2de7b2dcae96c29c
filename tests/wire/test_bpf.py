"""The generated IPv4 BPF programs, run in a small classic-BPF interpreter (bpf_helpers.py) on frames
scapy builds, side by side with what ``tcpdump -dd`` compiles for the same connection."""

from __future__ import annotations

import socket

import pytest
from bpf_helpers import LINKS, check_verdict, check_wildcards, full_tuple_expr, run_bpf
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from rawtcp.wire.bpf import ACCEPT, DROP_ALL, FilterProgram, attach, detach, tcp4_filter
from rawtcp.wire.errors import WireError

LOCAL, LPORT, REMOTE, RPORT = "198.18.0.1", 40000, "198.18.0.2", 8080


def frames() -> dict[str, tuple[bool, IP | bytes]]:
    """name -> (expected to match the full 4-tuple filter, packet)."""
    ip = IP(src=REMOTE, dst=LOCAL)
    tcp = TCP(sport=RPORT, dport=LPORT, flags="SA", options=[("MSS", 1024)])
    return {
        "match": (True, ip / tcp),
        "match with payload": (True, ip / tcp / (b"x" * 100)),
        "ip options (IHL 6)": (True, IP(src=REMOTE, dst=LOCAL, options=[IPOption_NOP()] * 4) / tcp),
        "ip options (IHL 15)": (True, IP(src=REMOTE, dst=LOCAL, options=[IPOption_NOP()] * 40) / tcp),
        "first fragment": (True, IP(src=REMOTE, dst=LOCAL, flags="MF") / tcp),
        "later fragment": (False, IP(src=REMOTE, dst=LOCAL, frag=1, proto=6) / bytes(tcp)),
        "wrong local port": (False, ip / TCP(sport=RPORT, dport=LPORT + 1)),
        "wrong remote port": (False, ip / TCP(sport=RPORT + 1, dport=LPORT)),
        "ports swapped": (False, ip / TCP(sport=LPORT, dport=RPORT)),
        "wrong remote ip": (False, IP(src="198.18.0.3", dst=LOCAL) / tcp),
        "wrong local ip": (False, IP(src=REMOTE, dst="198.18.0.3") / tcp),
        "our own outgoing": (False, IP(src=LOCAL, dst=REMOTE) / TCP(sport=LPORT, dport=RPORT)),
        "udp same ports": (False, ip / UDP(sport=RPORT, dport=LPORT)),
        "ip truncated": (False, bytes(ip / TCP(sport=RPORT, dport=LPORT))[:22]),  # before the ports
    }


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("name", list(frames()))
def test_full_tuple_filter(link: str, name: str) -> None:
    expected, pkt = frames()[name]
    check_verdict(tcp4_filter(LOCAL, LPORT, REMOTE, RPORT, link=link), pkt, link, expected,
                  full_tuple_expr("ip", LOCAL, REMOTE))


@pytest.mark.parametrize("link", LINKS)
def test_wildcards(link: str) -> None:
    check_wildcards(tcp4_filter, IP, LOCAL, REMOTE, "198.18.0.77", link)


def test_other_ethertypes_dropped() -> None:
    program = tcp4_filter(LOCAL, LPORT, REMOTE, RPORT)
    for pkt in (Ether() / ARP(psrc=REMOTE, pdst=LOCAL),
                Ether() / IPv6() / TCP(sport=RPORT, dport=LPORT)):
        assert run_bpf(program, bytes(pkt)) == 0
    assert run_bpf(tcp4_filter(LOCAL, LPORT, REMOTE, RPORT, link="raw"),
                   bytes(IPv6() / TCP(sport=RPORT, dport=LPORT))) == 0


def test_shape_matches_tcpdump_opcodes() -> None:
    program = tcp4_filter(LOCAL, LPORT, REMOTE, RPORT)
    assert program[0] == (0x28, 0, 0, 12)  # ldh [12]
    assert (0xB1, 0, 0, 14) in program  # ldxb 4*([14]&0xf)
    assert program[-2:] == [(0x06, 0, 0, ACCEPT), (0x06, 0, 0, 0)]
    for i, (code, jt, jf, _k) in enumerate(program):
        if code & 0x07 == 0x05:
            assert i + 1 + max(jt, jf) < len(program)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        tcp4_filter("198.18.0", 1, None, None)
    with pytest.raises(ValueError):
        tcp4_filter(LOCAL, 70000, None, None)
    with pytest.raises(ValueError):
        tcp4_filter(LOCAL, 1, None, None, link="sll")
    with pytest.raises(ValueError):
        FilterProgram([])


def test_attach_and_detach_on_an_ordinary_socket() -> None:
    # SO_ATTACH_FILTER works on any socket; a UDP socket needs no privileges.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        prog = attach(sock, tcp4_filter(LOCAL, LPORT, REMOTE, RPORT, link="raw"))
        assert prog.program[-1] == (0x06, 0, 0, 0)
        attach(sock, DROP_ALL)  # replacing is atomic
        detach(sock)
        with pytest.raises(WireError):
            detach(sock)  # nothing attached any more: ENOENT
