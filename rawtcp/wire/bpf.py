"""Classic BPF (Linux socket filter) programs for one TCP connection, generated without tcpdump.

The filter runs in the kernel before a packet is queued on our socket, so a busy host costs us
nothing and the socket's buffer holds only this connection's segments. Each instruction is
``(code, jt, jf, k)`` exactly as ``tcpdump -dd`` prints it and ``struct sock_filter`` lays it out.
"""

from __future__ import annotations

import ctypes
import socket
import struct

from rawtcp.wire.errors import WireError

Instruction = tuple[int, int, int, int]

# linux/filter.h (classic BPF) opcodes: class | size | mode.
BPF_LD, BPF_LDX, BPF_JMP, BPF_RET, BPF_ALU = 0x00, 0x01, 0x05, 0x06, 0x04
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_IMM, BPF_ABS, BPF_IND, BPF_MSH = 0x00, 0x20, 0x40, 0xA0
BPF_JEQ, BPF_JSET = 0x10, 0x40
BPF_AND = 0x50
BPF_K = 0x00

LDH_ABS = BPF_LD | BPF_H | BPF_ABS  # 0x28
LDB_ABS = BPF_LD | BPF_B | BPF_ABS  # 0x30
LD_ABS = BPF_LD | BPF_W | BPF_ABS  # 0x20
LDH_IND = BPF_LD | BPF_H | BPF_IND  # 0x48
LDXB_MSH = BPF_LDX | BPF_B | BPF_MSH  # 0xb1: X = 4 * (pkt[k] & 0xf), the IP header length
AND_K = BPF_ALU | BPF_AND | BPF_K  # 0x54
JEQ_K = BPF_JMP | BPF_JEQ | BPF_K  # 0x15
JSET_K = BPF_JMP | BPF_JSET | BPF_K  # 0x45
RET_K = BPF_RET | BPF_K  # 0x06

ACCEPT = 0x40000  # bytes to keep: tcpdump's 262144, more than any frame
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP, IPPROTO_ICMP, IPPROTO_ICMPV6 = 6, 1, 58
JGT_K = BPF_JMP | 0x20 | BPF_K  # 0x25
ICMPV6_LAST_KEPT = 129  # RFC 4443 §2.1: errors are 0-127, then echo request/reply; NDP/MLD (130+) dropped
SO_ATTACH_FILTER = 26  # asm-generic/socket.h
SO_DETACH_FILTER = 27

LINK_OFFSETS = {"ether": 14, "raw": 0}


def _ip_u32(ip: str) -> int:
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {ip!r}") from None


def _ip6_words(ip: str) -> list[int]:
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, TypeError, ValueError):
        raise ValueError(f"not an IPv6 address: {ip!r}") from None
    return [int.from_bytes(packed[i : i + 4], "big") for i in range(0, 16, 4)]


def _port(port: int) -> int:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port outside 0..65535: {port}")
    return port


class _Assembler:
    """Straight-line code with forward jumps to labels; ``None`` as a target is the next instruction.

    Every program ends ``ret #ACCEPT`` (label ``accept``) then ``ret #0`` (label ``drop``), as
    tcpdump's do; a classic BPF jump offset is one byte, so targets must lie within 255 instructions.
    """

    def __init__(self) -> None:
        self._code: list[tuple[int, str | None, str | None, int]] = []
        self._labels: dict[str, int] = {}

    def op(self, code: int, k: int = 0, jt: str | None = None, jf: str | None = None) -> None:
        self._code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def assemble(self) -> list[Instruction]:
        self.label("accept")
        self.op(RET_K, ACCEPT)
        self.label("drop")
        self.op(RET_K, 0)
        program: list[Instruction] = []
        for i, (code, jt, jf, k) in enumerate(self._code):
            hops = [0 if t is None else self._labels[t] - i - 1 for t in (jt, jf)]
            if not all(0 <= h <= 255 for h in hops):
                raise ValueError("BPF jump out of range")
            program.append((code, hops[0], hops[1], k))
        return program


def _link(link: str, asm: _Assembler, ethertype: int, version_nibble: int) -> int:
    """Check the network protocol; returns where the IP header starts."""
    if link not in LINK_OFFSETS:
        raise ValueError(f"link must be one of {sorted(LINK_OFFSETS)}, not {link!r}")
    if link == "ether":
        asm.op(LDH_ABS, 12)
        asm.op(JEQ_K, ethertype, jf="drop")
    else:  # no EtherType to look at: check the version nibble
        asm.op(LDB_ABS, 0)
        asm.op(AND_K, 0xF0)
        asm.op(JEQ_K, version_nibble, jf="drop")
    return LINK_OFFSETS[link]


def tcp4_filter(local_ip: str, local_port: int, remote_ip: str | None, remote_port: int | None,
                link: str = "ether", *, icmp: bool = False) -> list[Instruction]:
    """Accept IPv4 TCP from ``remote_ip:remote_port`` to ``local_ip:local_port`` (None: any), drop the rest.

    Non-first fragments are dropped (their first bytes are not a TCP header); the TCP header is found
    through the real IHL, so packets with IP options match too. ``link`` is ``"ether"`` (Ethernet
    header, 14 bytes) or ``"raw"`` (packet starts at the IP header: cooked sockets, L3 links).
    ``icmp`` also accepts ICMP (RFC 792) from ``remote_ip`` to ``local_ip``, of any type.
    """
    asm = _Assembler()
    off = _link(link, asm, ETH_P_IP, 0x40)
    remote = None if remote_ip is None else _ip_u32(remote_ip)
    local = _ip_u32(local_ip)

    def addresses_and_fragment() -> None:
        asm.op(LDH_ABS, off + 6)
        asm.op(JSET_K, 0x1FFF, jt="drop")  # fragment offset != 0: drop
        if remote is not None:
            asm.op(LD_ABS, off + 12)
            asm.op(JEQ_K, remote, jf="drop")
        asm.op(LD_ABS, off + 16)
        asm.op(JEQ_K, local, jf="drop")

    asm.op(LDB_ABS, off + 9)
    asm.op(JEQ_K, IPPROTO_TCP, jf="icmp" if icmp else "drop")
    addresses_and_fragment()
    asm.op(LDXB_MSH, off)
    if remote_port is not None:
        asm.op(LDH_IND, off)
        asm.op(JEQ_K, _port(remote_port), jf="drop")
    asm.op(LDH_IND, off + 2)
    asm.op(JEQ_K, _port(local_port), jt="accept" if icmp else None, jf="drop")
    if icmp:
        asm.label("icmp")
        asm.op(JEQ_K, IPPROTO_ICMP, jf="drop")
        addresses_and_fragment()
    return asm.assemble()


def tcp6_filter(local_ip: str, local_port: int, remote_ip: str | None, remote_port: int | None,
                link: str = "ether", *, icmp: bool = False) -> list[Instruction]:
    """Accept IPv6 TCP from ``remote_ip:remote_port`` to ``local_ip:local_port`` (None: any), drop the rest.

    TCP must follow the fixed header directly (next header 6): no kernel puts extension headers on its
    segments, and skipping them needs a loop classic BPF does not have (tcpdump's ``tcp`` does the
    same). ``icmp`` also accepts ICMPv6 from ``remote_ip`` to ``local_ip``: errors and echo (types
    up to 129, RFC 4443 §2.1), not neighbour discovery or MLD, which a kernel sends on its own.
    """
    asm = _Assembler()
    off = _link(link, asm, ETH_P_IPV6, 0x60)
    remote = None if remote_ip is None else _ip6_words(remote_ip)
    local = _ip6_words(local_ip)

    def addresses() -> None:  # RFC 8200 §3: source at 8, destination at 24, each four words
        for base, words in ((off + 8, remote), (off + 24, local)):
            for i, word in enumerate(words or ()):
                asm.op(LD_ABS, base + 4 * i)
                asm.op(JEQ_K, word, jf="drop")

    asm.op(LDB_ABS, off + 6)  # next header
    asm.op(JEQ_K, IPPROTO_TCP, jf="icmp" if icmp else "drop")
    addresses()
    if remote_port is not None:
        asm.op(LDH_ABS, off + 40)
        asm.op(JEQ_K, _port(remote_port), jf="drop")
    asm.op(LDH_ABS, off + 42)
    asm.op(JEQ_K, _port(local_port), jt="accept" if icmp else None, jf="drop")
    if icmp:
        asm.label("icmp")
        asm.op(JEQ_K, IPPROTO_ICMPV6, jf="drop")
        addresses()
        asm.op(LDB_ABS, off + 40)  # ICMPv6 type
        asm.op(JGT_K, ICMPV6_LAST_KEPT, jt="drop")
    return asm.assemble()


def tcp_filter(local_ip: str, local_port: int, remote_ip: str | None = None, remote_port: int | None = None,
               link: str = "ether", *, icmp: bool = False) -> list[Instruction]:
    """:func:`tcp4_filter` or :func:`tcp6_filter`, by the family of ``local_ip``."""
    if ":" in local_ip:
        if remote_ip is not None and ":" not in remote_ip:
            raise ValueError(f"{local_ip} and {remote_ip} are of different address families")
        return tcp6_filter(local_ip, local_port, remote_ip, remote_port, link, icmp=icmp)
    if remote_ip is not None and ":" in remote_ip:
        raise ValueError(f"{local_ip} and {remote_ip} are of different address families")
    return tcp4_filter(local_ip, local_port, remote_ip, remote_port, link, icmp=icmp)



def local_filter(addresses: list[str] | tuple[str, ...], *, icmp: bool = True) -> list[Instruction]:
    """Accept TCP (and, with ``icmp``, ICMP/ICMPv6) to any of ``addresses``, IPv4 and IPv6 alike; drop the rest.

    The one program of a receive socket shared by every connection of an interface (wire/shared.py):
    the per-connection choice, by ports and peer, is made in user space. It matches what each
    connection's own filter would let through: IPv4 non-first fragments are dropped, IPv6 TCP must
    follow the fixed header, and of ICMPv6 only errors and echo (types up to 129, RFC 4443 §2.1) pass.
    Ethernet framing only; no addresses: drop everything.
    """
    v4 = [_ip_u32(a) for a in addresses if ":" not in a]
    v6 = [_ip6_words(a) for a in addresses if ":" in a]
    if len(v4) + 2 * len(v6) > 24:  # each address costs 2 or 8 instructions; jumps reach 255 at most
        raise ValueError(f"too many local addresses for one filter: {len(addresses)}")
    asm = _Assembler()
    asm.op(LDH_ABS, 12)
    asm.op(JEQ_K, ETH_P_IP, jf="v6" if v6 else "drop")
    if v4:
        off = LINK_OFFSETS["ether"]
        asm.op(LDB_ABS, off + 9)
        asm.op(JEQ_K, IPPROTO_TCP, jt="v4-tcp", jf="v4-icmp" if icmp else "drop")
        asm.label("v4-icmp")
        if icmp:
            asm.op(JEQ_K, IPPROTO_ICMP, jf="drop")
        asm.label("v4-tcp")
        asm.op(LDH_ABS, off + 6)
        asm.op(JSET_K, 0x1FFF, jt="drop")  # fragment offset != 0: drop
        asm.op(LD_ABS, off + 16)
        for i, addr in enumerate(v4):
            asm.op(JEQ_K, addr, jt="accept", jf="drop" if i == len(v4) - 1 else None)
    else:
        asm.op(RET_K, 0)
    asm.label("v6")
    if v6:
        off = LINK_OFFSETS["ether"]
        asm.op(JEQ_K, ETH_P_IPV6, jf="drop")
        asm.op(LDB_ABS, off + 6)  # next header
        asm.op(JEQ_K, IPPROTO_TCP, jt="v6-dst", jf="v6-icmp" if icmp else "drop")
        asm.label("v6-icmp")
        if icmp:
            asm.op(JEQ_K, IPPROTO_ICMPV6, jf="drop")
            asm.op(LDB_ABS, off + 40)  # ICMPv6 type
            asm.op(JGT_K, ICMPV6_LAST_KEPT, jt="drop")
        asm.label("v6-dst")
        for n, words in enumerate(v6):
            last = n == len(v6) - 1
            nxt = "drop" if last else f"v6-{n + 1}"
            for i, word in enumerate(words):
                asm.op(LD_ABS, off + 24 + 4 * i)
                asm.op(JEQ_K, word, jt="accept" if i == 3 else None, jf=nxt)
            if not last:
                asm.label(nxt)
    return asm.assemble()


DROP_ALL: list[Instruction] = [(RET_K, 0, 0, 0)]


_SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k
_SOCK_FPROG = struct.Struct("@HP")  # struct sock_fprog: len, pointer (native alignment pads)


class FilterProgram:
    """A program laid out as ``struct sock_fprog``; holds the instruction array it points to."""

    __slots__ = ("_insns", "program")

    def __init__(self, program: list[Instruction]) -> None:
        if not 0 < len(program) <= 4096:  # BPF_MAXINSNS
            raise ValueError(f"a BPF program has 1..4096 instructions, not {len(program)}")
        self.program = list(program)
        packed = b"".join(_SOCK_FILTER.pack(*insn) for insn in program)
        # the kernel reads the array through the pointer during setsockopt: this buffer must live
        self._insns = ctypes.create_string_buffer(packed, len(packed))

    def as_bytes(self) -> bytes:
        return _SOCK_FPROG.pack(len(self.program), ctypes.addressof(self._insns))


def attach(sock: socket.socket, program: list[Instruction]) -> FilterProgram:
    """Attach (or atomically replace) the socket's filter; returns the buffer, keep it with the socket."""
    prog = FilterProgram(program)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog.as_bytes())
    except OSError as exc:
        raise WireError(f"cannot attach the BPF filter: {exc.strerror or exc}") from None
    return prog


def detach(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as exc:
        raise WireError(f"cannot detach the BPF filter: {exc.strerror or exc}") from None
