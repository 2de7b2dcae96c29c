"""Micro-benchmark of the packet fast path against scapy, in the same run (not a test).

Run: python scripts/benchmark/packet.py  — prints µs per build and per parse, ours vs scapy, and the ratio.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    # best of 5 repeats: the VMs are shared, the minimum is the least noisy estimate
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def bench_packet(number: int = 20000) -> dict[str, dict[str, float]]:
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    from rawtcp.core.segment import Flags, Segment
    from rawtcp.wire.packet import FrameBuilder, decode_frame, decode_ipv4

    syn = Segment(40000, 8080, 1000, 0, Flags.SYN, 64240,
                  (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)))
    ack = Segment(40000, 8080, 1001, 8001, Flags.ACK, 502)
    data = Segment(40000, 8080, 1001, 8001, Flags.PSH | Flags.ACK, 502, (), bytes(range(256)) * 5 + b"x" * 180)
    fb = FrameBuilder("198.18.0.1", "198.18.0.2", b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")

    def scapy_build(seg: Segment) -> bytes:
        pkt = IP(src="198.18.0.1", dst="198.18.0.2", id=1, flags="DF") / TCP(
            sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=int(seg.flags),
            window=seg.window, options=list(seg.options))
        return bytes(pkt / Raw(seg.payload) if seg.payload else pkt)

    results: dict[str, dict[str, float]] = {}
    print(f"{'segment':<22}{'ours build':>12}{'scapy build':>13}{'ratio':>8}"
          f"{'ours parse':>12}{'scapy parse':>13}{'ratio':>8}   (µs per packet)")
    for name, seg in (("SYN + 5 options", syn), ("bare ACK", ack), ("1460-byte data", data)):
        raw = fb.packet(seg)
        frame = fb.frame(seg)
        scapy_n = max(200, number // 50)
        row = {
            "ours_build_us": _per_call_us(lambda s=seg: fb.packet(s), number),
            "ours_frame_us": _per_call_us(lambda s=seg: fb.frame(s), number),
            "scapy_build_us": _per_call_us(lambda s=seg: scapy_build(s), scapy_n),
            "ours_parse_us": _per_call_us(lambda r=raw: decode_ipv4(r), number),
            "ours_parse_frame_us": _per_call_us(lambda f=frame: decode_frame(f), number),
            "scapy_parse_us": _per_call_us(lambda r=raw: IP(r), scapy_n),
        }
        results[name] = row
        print(f"{name:<22}{row['ours_build_us']:>12.2f}{row['scapy_build_us']:>13.1f}"
              f"{row['scapy_build_us'] / row['ours_build_us']:>7.0f}x"
              f"{row['ours_parse_us']:>12.2f}{row['scapy_parse_us']:>13.1f}"
              f"{row['scapy_parse_us'] / row['ours_parse_us']:>7.0f}x")
    return results


if __name__ == "__main__":
    bench_packet()
