#!/usr/bin/env python3
"""Benchmark: ``rawtcp compare`` on two identical 1,000,000-packet captures vs tshark reading one.

Generates a pcap of a few thousand interleaved, realistic TCP connections (handshake with the
options Linux sends, request/response data with timestamps, ACKs, a four-way close) with
struct-built frames and rawtcp's PcapWriter, copies it, then times in the same run:

* ``tshark -r FILE -T fields -e tcp.seq -e tcp.ack`` on one copy (the baseline), and
* rawtcp's comparison of the two copies (in-process, and the ``rawtcp compare`` CLI when installed).

Prints a human summary and one JSON line. Not a test: timings depend on the machine.

    python scripts/benchmark/compare.py [--packets 1000000] [--keep DIR] [--no-cli]

scripts/bench.py uses its generator for the ``rawtcp compare`` row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

# the checkout's rawtcp, also when run as a file (scripts/benchmark/ -> the repository root)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from rawtcp.capture.compare import compare_captures
from rawtcp.capture.pcap import PcapWriter

_ETH = bytes.fromhex("020000000002" "020000000001" "0800")
_ETH_REV = bytes.fromhex("020000000001" "020000000002" "0800")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_TS = struct.Struct("!BBBBII")  # NOP, NOP, kind 8, len 10, TSval, TSecr
SYN_OPTS = bytes.fromhex("020405b4" "0402" "080a") + b"\0" * 8 + bytes.fromhex("01" "030307")


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
          opts: bytes, payload_len: int, ip_id: int, client: bool) -> bytes:
    tcp_len = 20 + len(opts)
    total = 20 + tcp_len + payload_len
    ip = _IP.pack(0x45, 0, total, ip_id & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (tcp_len // 4) << 4, flags, win, 0, 0)
    return (_ETH if client else _ETH_REV) + ip + tcp + opts + b"x" * payload_len


def connection_frames(n: int, start: float) -> list[tuple[float, bytes]]:
    """One connection: handshake, request/response rounds, close; ~300 packets."""
    c_ip = bytes([198, 18, ((n + 1) >> 8) & 0xFF, (n + 1) & 0xFF])
    s_ip = bytes([198, 19, 0, 2])
    cport, sport = 32768 + n % 28000, 80 + n % 3
    cisn, sisn = (n * 2654435761) & 0xFFFFFFFF, (n * 40503 + 12345) & 0xFFFFFFFF
    t, ts = start, 1000 + n
    out: list[tuple[float, bytes]] = []
    cid, sid = n * 7, n * 13

    def c(seq: int, ack: int, flags: int, plen: int = 0, opts: bytes | None = None) -> None:
        nonlocal t, cid, ts
        t += 0.00003
        cid += 1
        o = _TS.pack(1, 1, 8, 10, ts, ts + 5) if opts is None else opts
        out.append((t, frame(c_ip, s_ip, cport, sport, cisn + seq, sisn + ack, flags, 502, o, plen, cid, True)))

    def s(seq: int, ack: int, flags: int, plen: int = 0, opts: bytes | None = None) -> None:
        nonlocal t, sid, ts
        t += 0.00002
        sid += 1
        ts += 1
        o = _TS.pack(1, 1, 8, 10, ts + 5, ts) if opts is None else opts
        out.append((t, frame(s_ip, c_ip, sport, cport, sisn + seq, cisn + ack, flags, 509, o, plen, sid, False)))

    c(0, 0, 0x02, opts=SYN_OPTS)
    s(0, 1, 0x12, opts=SYN_OPTS)
    c(1, 1, 0x10)
    cs, ss = 1, 1
    for _ in range(74):  # request, response in two segments, ACK
        c(cs, ss, 0x18, 120)
        cs += 120
        s(ss, cs, 0x10, 1448)
        ss += 1448
        s(ss, cs, 0x18, 600)
        ss += 600
        c(cs, ss, 0x10)
    c(cs, ss, 0x11)
    s(ss, cs + 1, 0x11)
    c(cs + 1, ss + 1, 0x10)
    return out


def generate(path: str, packets: int) -> int:
    """Write about ``packets`` packets of interleaved connections (8 open at a time); return the count."""
    written, n = 0, 0
    with PcapWriter(path) as w:
        t0 = 1_700_000_000.0
        while written < packets:
            group = [connection_frames(n + i, t0 + (n + i) * 0.001) for i in range(8)]
            n += 8
            longest = max(len(g) for g in group)
            for k in range(longest):
                for g in group:
                    if k < len(g) and written < packets:
                        # one clock for the whole file: 10 us between packets
                        w.write(g[k][1], t0 + written * 0.00001)
                        written += 1
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", help="write the captures into this directory and keep them")
    ap.add_argument("--no-cli", action="store_true", help="skip timing the rawtcp CLI")
    args = ap.parse_args()
    workdir = args.keep or tempfile.mkdtemp(prefix="rawtcp-bench-")
    os.makedirs(workdir, exist_ok=True)
    a, b = os.path.join(workdir, "a.pcap"), os.path.join(workdir, "b.pcap")
    try:
        t = time.perf_counter()
        count = generate(a, args.packets)
        shutil.copyfile(a, b)
        gen_s = time.perf_counter() - t
        size = os.path.getsize(a)
        print(f"generated {count} packets ({size / 1e6:.1f} MB) x2 in {gen_s:.1f} s", flush=True)

        result = {"packets": count, "bytes": size}
        tshark = shutil.which("tshark")
        if tshark:
            t = time.perf_counter()
            subprocess.run([tshark, "-r", a, "-T", "fields", "-e", "tcp.seq", "-e", "tcp.ack"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            result["tshark_s"] = round(time.perf_counter() - t, 3)
            print(f"tshark -T fields -e tcp.seq -e tcp.ack (one file): {result['tshark_s']:.2f} s", flush=True)

        t = time.perf_counter()
        res = compare_captures(a, b)
        result["compare_s"] = round(time.perf_counter() - t, 3)
        result["same"] = res.same
        result["segments"] = res.segments_a
        print(f"rawtcp compare in-process (both files): {result['compare_s']:.2f} s, same={res.same}, "
              f"{res.segments_a} segments, {len(res.connections)} connections", flush=True)

        rawtcp = shutil.which("rawtcp") or os.path.join(os.path.dirname(sys.executable), "rawtcp")
        if not args.no_cli and os.path.exists(rawtcp):
            t = time.perf_counter()
            proc = subprocess.run([rawtcp, "compare", a, b], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            result["cli_s"] = round(time.perf_counter() - t, 3)
            result["cli_exit"] = proc.returncode
            print(f"rawtcp compare CLI: {result['cli_s']:.2f} s (exit {proc.returncode})", flush=True)

        if "tshark_s" in result:
            result["ratio"] = round(result["compare_s"] / result["tshark_s"], 3)
            verdict = "faster" if result["ratio"] < 1 else "SLOWER"
            print(f"ratio compare/tshark = {result['ratio']:.3f} ({verdict} than tshark)")
        print(json.dumps({"bench": "compare", **result}))
        return 0 if result.get("ratio", 0) < 1 and res.same else 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
