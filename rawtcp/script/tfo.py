"""TCP Fast Open cookies as Linux makes them, so unmodified scripts pass with the lab's addresses.

A Linux server's TFO cookie (RFC 7413 §4.1.2) is SipHash-2-4 over the SYN's source and destination
addresses, keyed by ``net.ipv4.tcp_fastopen_key`` (net/ipv4/tcp_fastopen.c,
``__tcp_fastopen_cookie_gen_cipher``). packetdrill's suite writes cookies for packetdrill's own
addresses (``-D TFO_COOKIE=3021b9d889017eeb`` is 192.0.2.1 -> 192.168.0.1 under defaults.sh's key),
and some scripts spell such cookies out literally. The runner computes the cookie the script's
addresses would get and the one the lab's addresses do get, and swaps one for the other in both
directions: what the script sends and what it expects. Cookies the script invents (``FO abcd1234``
in a SYN-ACK to a client) match neither and pass through untouched.
"""

from __future__ import annotations

import ipaddress
import struct

_MASK = (1 << 64) - 1
DEFAULTS_SH_KEY = "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"  # packetdrill's common/defaults.sh


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(k0: int, k1: int, data: bytes) -> int:
    """SipHash-2-4 (Aumasson and Bernstein, 2012) of ``data`` with the 128-bit key (k0, k1)."""
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    whole = len(data) - len(data) % 8
    for (m,) in struct.iter_unpack("<Q", data[:whole]):
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = (len(data) & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def parse_key(text: str) -> tuple[int, int]:
    """``net.ipv4.tcp_fastopen_key``'s ``xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`` (the primary key, first) as
    SipHash's (k0, k1): the kernel stores the four 32-bit words little-endian and reads the 16 bytes
    back as two little-endian 64-bit halves (proc_tcp_fastopen_key, tcp_fastopen_reset_cipher)."""
    primary = text.strip().split(",")[0]
    words = [int(w, 16) for w in primary.split("-")]
    if len(words) != 4:
        raise ValueError(f"not a TFO key: {text!r}")
    return words[1] << 32 | words[0], words[3] << 32 | words[2]


def server_cookie(key: str, client_ip: str, server_ip: str) -> bytes:
    """The 8-byte cookie a Linux server with ``key`` gives ``client_ip`` for its address ``server_ip``.

    IPv4-mapped addresses count as IPv4: such a SYN arrives over IPv4 and is handled as one.
    """
    src, dst = _packed(client_ip), _packed(server_ip)
    k0, k1 = parse_key(key)
    return struct.pack("<Q", siphash24(k0, k1, src + dst))


def _packed(ip: str) -> bytes:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.packed


class CookieMap:
    """Script cookie -> live cookie (and back), for the pairs of addresses a script may mean."""

    def __init__(self, key: str, script_pairs: list[tuple[str, str]], live_client: str, live_server: str) -> None:
        live = server_cookie(key, live_client, live_server)
        self.to_live: dict[bytes, bytes] = {}
        for client, server in script_pairs:
            self.to_live[server_cookie(key, client, server)] = live
        self.to_script = {v: k for k, v in self.to_live.items()}

    def live(self, cookie: bytes) -> bytes:
        return self.to_live.get(cookie, cookie)

    def script(self, cookie: bytes) -> bytes:
        return self.to_script.get(cookie, cookie)
