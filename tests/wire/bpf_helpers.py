"""Checking BPF programs without a socket: a classic-BPF interpreter with Linux's semantics, what
``tcpdump -dd`` compiles for the same expression, and the checks both families' tests share (the
family's addresses, IP class and tcpdump keyword are all that differ)."""

from __future__ import annotations

import operator
import re
import shutil
import subprocess
from collections.abc import Callable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from rawtcp.wire.bpf import ACCEPT, Instruction, tcp_filter

LPORT, RPORT = 40000, 8080
LINKS = ["ether", "raw"]


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


def as_bytes(pkt: IP | IPv6 | bytes, link: str) -> bytes:
    """The packet as the socket sees it: behind an Ethernet header (``ether``) or bare (``raw``)."""
    raw = pkt if isinstance(pkt, bytes) else bytes(pkt)
    if link == "raw":
        return raw
    ethertype = 0x86DD if raw[0] >> 4 == 6 else 0x0800
    return bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01", type=ethertype)) + raw


def check_verdict(program: list[Instruction], pkt: IP | IPv6 | bytes, link: str, expected: bool,
                  tcpdump_expr: str | None = None) -> None:
    """The program accepts ``pkt`` whole or drops it, as ``expected``; tcpdump's ``tcpdump_expr``
    (when given, and tcpdump is installed) says the same."""
    assert run_bpf(program, as_bytes(pkt, link)) == (ACCEPT if expected else 0)
    ref = tcpdump_program(tcpdump_expr, link) if tcpdump_expr is not None else None
    if ref is not None:
        assert bool(run_bpf(ref, as_bytes(pkt, link))) == expected


def full_tuple_expr(ip: str, local: str, remote: str) -> str:
    """tcpdump's words for the one connection the full 4-tuple filter passes (``ip`` or ``ip6``)."""
    return f"{ip} and tcp and src host {remote} and src port {RPORT} and dst host {local} and dst port {LPORT}"


def check_wildcards(make_filter: Callable[..., list[Instruction]], ip: type[IP] | type[IPv6], local: str,
                    remote: str, stranger: str, link: str) -> None:
    """No remote (any peer) and no remote port (any port of that peer): only our port and TCP count."""
    any_remote = make_filter(local, LPORT, None, None, link=link)
    any_port = make_filter(local, LPORT, remote, None, link=link)
    cases = [
        (ip(src=stranger, dst=local) / TCP(sport=1234, dport=LPORT), True, False),
        (ip(src=remote, dst=local) / TCP(sport=1234, dport=LPORT), True, True),
        (ip(src=remote, dst=local) / TCP(sport=1234, dport=LPORT + 1), False, False),
        (ip(src=remote, dst=local) / UDP(sport=1234, dport=LPORT), False, False),
    ]
    for pkt, want_any, want_port in cases:
        raw = as_bytes(pkt, link)
        assert bool(run_bpf(any_remote, raw)) is want_any
        assert bool(run_bpf(any_port, raw)) is want_port


def check_tcp_or_icmp(local: str, remote: str, name: str, pkt: IP | IPv6, link: str, expected: bool,
                      tcpdump_expr: str | None = None) -> None:
    """The TCP-or-ICMP program passes the connection's segments and the peer's ICMP errors and echo
    replies; without ``icmp=True`` no ICMP gets through."""
    program = tcp_filter(local, LPORT, remote, RPORT, link=link, icmp=True)
    check_verdict(program, pkt, link, expected, tcpdump_expr)
    if "tcp" not in name:
        assert run_bpf(tcp_filter(local, LPORT, remote, RPORT, link=link), as_bytes(pkt, link)) == 0
