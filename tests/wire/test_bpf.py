"""The generated BPF programs, run in a small classic-BPF interpreter on frames scapy builds,
side by side with what ``tcpdump -dd`` compiles for the same connection."""

from __future__ import annotations

import operator
import re
import shutil
import socket
import subprocess

import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from rawtcp.wire.bpf import ACCEPT, DROP_ALL, FilterProgram, Instruction, attach, detach, tcp4_filter
from rawtcp.wire.errors import WireError

LOCAL, LPORT, REMOTE, RPORT = "198.18.0.1", 40000, "198.18.0.2", 8080


ALU = {0x00: operator.add, 0x10: operator.sub, 0x20: operator.mul, 0x40: operator.or_,
       0x50: operator.and_, 0x60: operator.lshift, 0x70: operator.rshift, 0x80: lambda a, _k: -a}


def run_bpf(program: list[Instruction], pkt: bytes) -> int:
    """Classic BPF as Linux runs it (net/core/filter.c semantics): out-of-bounds loads drop."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    for _ in range(4096):  # programs are loop-free; bounded anyway
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls in (0x00, 0x01):  # LD / LDX
            mode, size = code & 0xE0, code & 0x18
            width = {0x00: 4, 0x08: 2, 0x10: 1}[size]
            if mode == 0x00:
                val = k
            elif mode in (0x20, 0x40):
                addr = k + (x if mode == 0x40 else 0)
                if addr + width > len(pkt):
                    return 0
                val = int.from_bytes(pkt[addr:addr + width], "big")
            elif mode == 0x60:
                val = mem[k]
            elif mode == 0x80:
                val = len(pkt)
            elif mode == 0xA0:
                if k >= len(pkt):
                    return 0
                val = 4 * (pkt[k] & 0x0F)
            else:
                raise AssertionError(f"bad mode {code:#x}")
            if cls == 0x00:
                a = val
            else:
                x = val
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            src = x if code & 0x08 else k
            op = code & 0xF0
            a = ALU[op](a, src) & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            src = x if code & 0x08 else k
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return a if code & 0x10 else k
        elif cls == 0x07:  # MISC: TAX / TXA
            if code & 0xF8:
                a = x
            else:
                x = a
    raise AssertionError("program did not return")


def tcpdump_program(expr: str, link: str) -> list[Instruction] | None:
    if shutil.which("tcpdump") is None:
        return None
    dlt = "EN10MB" if link == "ether" else "RAW"
    out = subprocess.run(["tcpdump", "-dd", "-y", dlt, expr], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    rows = re.findall(r"\{ (0x[0-9a-f]+), (\d+), (\d+), (0x[0-9a-f]+) \}", out.stdout)
    return [(int(c, 16), int(t), int(f), int(k, 16)) for c, t, f, k in rows]


def frames() -> dict[str, tuple[bool, IP]]:
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
        "ip truncated": (False, None),
    }


def as_bytes(pkt: IP | None, link: str) -> bytes:
    if pkt is None:  # an IP header cut short before the ports
        whole = bytes(IP(src=REMOTE, dst=LOCAL) / TCP(sport=RPORT, dport=LPORT))
        raw = whole[:22]
    else:
        raw = bytes(pkt)
    return bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01", type=0x0800)) + raw \
        if link == "ether" else raw


@pytest.mark.parametrize("link", ["ether", "raw"])
@pytest.mark.parametrize("name", list(frames()))
def test_full_tuple_filter(link: str, name: str) -> None:
    expected, pkt = frames()[name]
    program = tcp4_filter(LOCAL, LPORT, REMOTE, RPORT, link=link)
    verdict = run_bpf(program, as_bytes(pkt, link))
    assert verdict == (ACCEPT if expected else 0)
    ref = tcpdump_program(f"ip and tcp and src host {REMOTE} and src port {RPORT} "
                          f"and dst host {LOCAL} and dst port {LPORT}", link)
    if ref is not None:
        assert bool(run_bpf(ref, as_bytes(pkt, link))) == expected


@pytest.mark.parametrize("link", ["ether", "raw"])
def test_wildcards(link: str) -> None:
    any_remote = tcp4_filter(LOCAL, LPORT, None, None, link=link)
    any_port = tcp4_filter(LOCAL, LPORT, REMOTE, None, link=link)
    cases = [
        (IP(src="198.18.0.77", dst=LOCAL) / TCP(sport=1234, dport=LPORT), True, False),
        (IP(src=REMOTE, dst=LOCAL) / TCP(sport=1234, dport=LPORT), True, True),
        (IP(src=REMOTE, dst=LOCAL) / TCP(sport=1234, dport=LPORT + 1), False, False),
        (IP(src=REMOTE, dst=LOCAL) / UDP(sport=1234, dport=LPORT), False, False),
    ]
    for pkt, want_any, want_port in cases:
        raw = as_bytes(pkt, link)
        assert bool(run_bpf(any_remote, raw)) is want_any
        assert bool(run_bpf(any_port, raw)) is want_port


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
