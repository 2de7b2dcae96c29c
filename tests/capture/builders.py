"""Builders for test captures: SEED.md's 10-segment exchange and other streams, made with scapy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

C_IP, S_IP = "198.18.0.1", "198.18.0.2"
C_PORT, S_PORT = 40000, 8080
T0 = 1_700_000_000.0


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int = 0,
              data: bytes = b"", window: int = 64240, options: list[tuple[Any, Any]] | None = None,
              ip_id: int = 1, ttl: int = 64, ipv6: bool = False) -> Any:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    ip = IPv6(src=src, dst=dst, hlim=ttl) if ipv6 else IP(src=src, dst=dst, id=ip_id, ttl=ttl)
    pkt = Ether() / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=window,
                             options=options or [])
    return pkt / Raw(data) if data else pkt


def seed_packets(c_isn: int = 1000, s_isn: int = 8000, c_port: int = C_PORT, s_port: int = S_PORT,
                 t0: float = T0, step: float = 0.01, c_ip: str = C_IP, s_ip: str = S_IP,
                 ip_id: int = 1, ttl: int = 64, ts_base: int | None = None,
                 server_window: int = 65160) -> list[Any]:
    """SEED.md's table: handshake (MSS 1460 / 1024), 20 bytes, 10 bytes, four-way close."""

    def opts(extra: list[tuple[Any, Any]], k: int) -> list[tuple[Any, Any]]:
        if ts_base is None:
            return extra
        return [*extra, ("NOP", None), ("NOP", None), ("Timestamp", (ts_base + k, ts_base + k - 1))]

    def c(k: int, flags: str, seq: int, ack: int | None, data: bytes = b"", o: list[Any] | None = None) -> Any:
        return tcp_frame(c_ip, s_ip, c_port, s_port, flags, c_isn + seq, 0 if ack is None else s_isn + ack,
                         data, 64240, opts(o or [], k), ip_id + k, ttl)

    def s(k: int, flags: str, seq: int, ack: int, data: bytes = b"", o: list[Any] | None = None) -> Any:
        return tcp_frame(s_ip, c_ip, s_port, c_port, flags, s_isn + seq, c_isn + ack, data, server_window,
                         opts(o or [], k), ip_id + 100 + k, ttl)

    pkts = [
        c(1, "S", 0, None, o=[("MSS", 1460)]),
        s(2, "SA", 0, 1, o=[("MSS", 1024)]),
        c(3, "A", 1, 1),
        c(4, "PA", 1, 1, b"c" * 20),
        s(5, "PA", 1, 21, b"s" * 10),
        c(6, "A", 21, 11),
        c(7, "FA", 21, 11),
        s(8, "A", 11, 22),
        s(9, "FA", 11, 22),
        c(10, "A", 22, 12),
    ]
    for i, pkt in enumerate(pkts):
        pkt.time = t0 + i * step
    return pkts


def write_pcap(path: Path, packets: list[Any]) -> Path:
    from scapy.utils import wrpcap

    wrpcap(str(path), packets)
    return path


