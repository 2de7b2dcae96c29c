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
SO_ATTACH_FILTER = 26  # asm-generic/socket.h
SO_DETACH_FILTER = 27

LINK_OFFSETS = {"ether": 14, "raw": 0}


def _ip_u32(ip: str) -> int:
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {ip!r}") from None


def _port(port: int) -> int:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port outside 0..65535: {port}")
    return port


def tcp4_filter(local_ip: str, local_port: int, remote_ip: str | None, remote_port: int | None,
                link: str = "ether") -> list[Instruction]:
    """Accept IPv4 TCP from ``remote_ip:remote_port`` to ``local_ip:local_port`` (None: any), drop the rest.

    Non-first fragments are dropped (their first bytes are not a TCP header); the TCP header is found
    through the real IHL, so packets with IP options match too. ``link`` is ``"ether"`` (Ethernet
    header, 14 bytes) or ``"raw"`` (packet starts at the IP header: cooked sockets, L3 links).
    """
    if link not in LINK_OFFSETS:
        raise ValueError(f"link must be one of {sorted(LINK_OFFSETS)}, not {link!r}")
    off = LINK_OFFSETS[link]
    # (code, k, jumps_to_drop_if_false): every test either falls through or jumps to the final drop.
    body: list[tuple[int, int, str]] = []
    if link == "ether":
        body += [(LDH_ABS, 12, ""), (JEQ_K, ETH_P_IP, "f")]
    else:  # no EtherType to look at: check the version nibble
        body += [(LDB_ABS, 0, ""), (AND_K, 0xF0, ""), (JEQ_K, 0x40, "f")]
    body += [
        (LDB_ABS, off + 9, ""), (JEQ_K, 6, "f"),  # protocol TCP
        (LDH_ABS, off + 6, ""), (JSET_K, 0x1FFF, "t"),  # fragment offset != 0: drop
    ]
    if remote_ip is not None:
        body += [(LD_ABS, off + 12, ""), (JEQ_K, _ip_u32(remote_ip), "f")]
    body += [(LD_ABS, off + 16, ""), (JEQ_K, _ip_u32(local_ip), "f")]
    body += [(LDXB_MSH, off, "")]
    if remote_port is not None:
        body += [(LDH_IND, off, ""), (JEQ_K, _port(remote_port), "f")]
    body += [(LDH_IND, off + 2, ""), (JEQ_K, _port(local_port), "f")]
    drop = len(body) + 1  # index of "ret #0"; "ret #ACCEPT" sits just before it
    program: list[Instruction] = []
    for i, (code, k, to_drop) in enumerate(body):
        hop = drop - i - 1
        if to_drop == "f":
            program.append((code, 0, hop, k))
        elif to_drop == "t":
            program.append((code, hop, 0, k))
        else:
            program.append((code, 0, 0, k))
    program += [(RET_K, 0, 0, ACCEPT), (RET_K, 0, 0, 0)]
    return program


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
