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




# --- captures for Wireshark's expert analysis (tcp.analysis.*) ------------------------------------

def _conversation(step: float = 0.001, c_isn: int = 1000, s_isn: int = 5000, server_window: int = 8000,
                  rtt: float = 0.010) -> tuple[list[Any], Any, Any]:
    """A handshake (no window scaling) and two helpers appending client/server segments in time order.

    ``rtt`` is the SYN to ACK time, the bound Wireshark uses for out-of-order.
    """
    pkts: list[Any] = []
    clock = [T0]

    def at(pkt: Any, gap: float) -> Any:
        clock[0] += gap
        pkt.time = clock[0]
        pkts.append(pkt)
        return pkt

    def c(flags: str, seq: int, ack: int, data: bytes = b"", window: int = 8000, gap: float = step) -> Any:
        return at(tcp_frame(C_IP, S_IP, C_PORT, S_PORT, flags, c_isn + seq, s_isn + ack, data, window), gap)

    def s(flags: str, seq: int, ack: int, data: bytes = b"", window: int = server_window, gap: float = step) -> Any:
        return at(tcp_frame(S_IP, C_IP, S_PORT, C_PORT, flags, s_isn + seq, c_isn + ack, data, window), gap)

    at(tcp_frame(C_IP, S_IP, C_PORT, S_PORT, "S", c_isn, 0, window=8000), 0.0)
    s("SA", 0, 1, gap=rtt / 2)
    c("A", 1, 1, gap=rtt / 2)
    return pkts, c, s


def expert_captures() -> dict[str, list[Any]]:
    """One small capture per expert marker (each also shows the others its story needs)."""
    out = {}
    pk, c, s = _conversation()
    c("PA", 1, 1, b"a" * 100)
    c("PA", 101, 1, b"b" * 100)
    s("A", 1, 101)
    c("PA", 1, 1, b"a" * 100, gap=0.3)  # already acknowledged: spurious
    c("PA", 101, 1, b"b" * 100, gap=0.2)  # not yet: an RTO retransmission
    s("A", 1, 201)
    out["retransmission"] = pk

    pk, c, s = _conversation()
    for k in range(4):
        c("PA", 1 + 100 * k, 1, bytes([97 + k]) * 100, gap=0.0005)
    s("A", 1, 101)
    for _ in range(3):
        s("A", 1, 101, gap=0.002)  # three duplicate ACKs
    c("PA", 101, 1, b"b" * 100, gap=0.001)  # within 20 ms of the last: fast retransmission
    s("A", 1, 401)
    out["fast_retransmission"] = pk

    pk, c, s = _conversation(rtt=0.020)
    c("PA", 1, 1, b"a" * 100)
    c("PA", 201, 1, b"c" * 100)  # 101..200 missing: previous segment not captured
    c("PA", 101, 1, b"b" * 100, gap=0.002)  # arrives within the handshake's RTT: out-of-order
    s("A", 1, 301)
    out["out_of_order"] = pk

    pk, c, s = _conversation()
    c("PA", 1, 1, b"a" * 100)
    s("A", 1, 101, window=0)  # zero window
    c("PA", 101, 1, b"p", gap=0.2)  # zero window probe
    s("A", 1, 101, window=0)  # probe ACK
    s("A", 1, 101, window=4000, gap=0.05)  # window update
    c("PA", 101, 1, b"b" * 100)
    s("A", 1, 201, window=4000)
    out["zero_window"] = pk

    pk, c, s = _conversation(server_window=300)
    c("PA", 1, 1, b"a" * 100)
    c("PA", 101, 1, b"b" * 200)  # reaches the edge of the 300-byte window: window full
    s("A", 1, 301, window=300)
    out["window_full"] = pk

    pk, c, s = _conversation()
    c("PA", 1, 1, b"a" * 50)
    s("A", 1, 51)
    c("A", 50, 1, gap=1.0)  # one byte before the next: keep-alive
    s("A", 1, 51)  # keep-alive ACK
    c("A", 50, 1, b"k", gap=1.0)  # the one-byte kind
    s("A", 1, 51)
    out["keep_alive"] = pk

    pk, c, s = _conversation()
    c("PA", 1, 1, b"a" * 100)
    s("A", 1, 101)
    s("A", 1, 101, window=16000, gap=0.01)  # same seq/ack, new window: window update
    s("A", 1, 101, window=16000)  # and again: a duplicate ACK
    c("FA", 101, 1)
    s("FA", 1, 102)
    c("A", 102, 2)
    out["window_update"] = pk

    pk, c, s = _conversation()
    c("PA", 1, 1, b"a" * 100)
    c("PA", 301, 1, b"d" * 100, gap=0.05)  # 101..300 never captured
    s("A", 1, 401)  # acknowledges bytes the capture never saw
    out["lost_segment"] = pk
    return out


def random_exchange(seed: int) -> list[Any]:
    """A random, messy exchange (losses, retransmissions, dup ACKs, probes, window changes)."""
    import random

    rng = random.Random(seed)
    pkts: list[Any] = []
    clock = [T0]
    cisn, sisn = rng.randrange(2**32), rng.randrange(2**32)
    mod = 0xFFFFFFFF

    def add(src: str, flags: str, seq: int, ack: int, data: bytes = b"", window: int = 1000,
            options: list[Any] | None = None) -> None:
        clock[0] += rng.choice([0.0001, 0.001, 0.002, 0.005, 0.03])
        client = src == C_IP
        pkt = tcp_frame(src, S_IP if client else C_IP, C_PORT if client else S_PORT, S_PORT if client else C_PORT,
                        flags, seq & mod, ack & mod, data, window, options)
        pkt.time = clock[0]
        pkts.append(pkt)

    scaled = rng.random() < 0.3
    swin = rng.choice([1000, 300, 400])
    if rng.random() < 0.85:
        add(C_IP, "S", cisn, 0, window=1000, options=[("WScale", 2)] if scaled else [])
        add(S_IP, "SA", sisn, cisn + 1, window=swin, options=[("WScale", 3)] if scaled and rng.random() < 0.8 else [])
        add(C_IP, "A", cisn + 1, sisn + 1)
    cseq, sseq, cack, sack = cisn + 1, sisn + 1, sisn + 1, cisn + 1
    sent: list[tuple[int, int]] = []
    cwin = 1000
    for _ in range(rng.randrange(5, 30)):
        r = rng.random()
        if r < 0.3:
            n = rng.choice([1, 50, 100, 100, 200])
            sent.append((cseq, n))
            if rng.random() > 0.1:  # else lost before the capture point
                add(C_IP, "PA", cseq, cack, b"x" * n, cwin)
            cseq += n
        elif r < 0.45 and sent:
            s0, n = rng.choice(sent)
            add(C_IP, "PA", s0, cack, b"y" * n, cwin)
        elif r < 0.65:
            if sent and rng.random() < 0.7:
                s0, n = rng.choice(sent)
                sack = max(sack, s0 + n) if rng.random() < 0.8 else sack
            win = rng.choice([swin, swin, 0, swin + 100])
            swin = win or swin
            add(S_IP, "A", sseq, sack, window=win)
        elif r < 0.75:
            add(S_IP, "A", sseq, sack, window=swin)
        elif r < 0.82:
            n = rng.choice([1, 10, 20])
            add(S_IP, "PA", sseq, sack, b"s" * n, swin)
            sseq += n
            if rng.random() < 0.7:
                cack = sseq
        elif r < 0.87:
            add(C_IP, "A", cseq - 1, cack, b"" if rng.random() < 0.5 else b"k", cwin)
        elif r < 0.92:
            cwin = rng.choice([cwin, 2000, 0, 1000])
            add(C_IP, "A", cseq, cack, window=cwin)
        elif r < 0.96:
            n = sack + swin - cseq
            if 0 < n < 3000:
                add(C_IP, "PA", cseq, cack, b"w" * n, cwin)
                sent.append((cseq, n))
                cseq += n
        else:
            add(C_IP, "FA", cseq, cack, window=cwin)
            break
    return pkts
