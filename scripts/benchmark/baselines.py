"""The baselines measured beside rawtcp in the same run: kernel sockets, scapy, and the server kernel's
own counters (SYN-ACKs sent, listen-queue drops, the veth's transmitted packets)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any

from benchmark.lean import LeanClient

REQUEST = b"GET / rawtcp\r\n\r\n"  # 16 bytes; the echo listener sends them back


def _linger0(sock: socket.socket) -> None:
    # close() then sends RST, as the rawtcp loop does (no TIME-WAIT piling up on either side)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def kernel_handshakes(dst: str, port: int, n: int) -> list[float]:
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((dst, port))
        t1 = clock()
        samples.append(t1 - t0)
        _linger0(s)
        s.close()
    return samples


def _scapy() -> Any:
    """scapy, imported in this thread's namespace (or told to re-read it if already imported)."""
    already = "scapy.all" in sys.modules
    import scapy.all as sc

    if already:
        sc.conf.ifaces.reload()
        sc.conf.route.resync()
    sc.conf.verb = 0
    return sc


def scapy_handshakes(client: LeanClient, n: int, persistent: bool) -> tuple[list[float], int]:
    """scapy's handshake: SYN out with sr1 (or a persistent L3 socket's sr1), then the ACK with send."""
    sc = _scapy()
    samples, failed = [], 0
    dst, port, src = client.dst_ip, client.dport, client.path.src_ip
    l3 = sc.conf.L3socket(iface=client.path.ifname) if persistent else None
    clock = time.perf_counter
    try:
        for _ in range(n):
            lport = next(client.ports)
            client.guard.add_conn(src, lport, dst, port)
            isn = client.rng.getrandbits(32)
            syn = sc.IP(dst=dst) / sc.TCP(sport=lport, dport=port, flags="S", seq=isn)
            t0 = clock()
            ans = l3.sr1(syn, timeout=2, verbose=0) if l3 is not None else sc.sr1(syn, timeout=2, verbose=0)
            if ans is not None and ans.haslayer(sc.TCP) and ans[sc.TCP].flags & 0x12 == 0x12:
                ack = sc.IP(dst=dst) / sc.TCP(sport=lport, dport=port, flags="A", seq=isn + 1,
                                              ack=ans[sc.TCP].seq + 1)
                if l3 is not None:
                    l3.send(ack)
                else:
                    sc.send(ack, verbose=0)
                t1 = clock()
                samples.append(t1 - t0)
                rst = sc.IP(dst=dst) / sc.TCP(sport=lport, dport=port, flags="R", seq=isn + 1)
                if l3 is not None:
                    l3.send(rst)
                else:
                    sc.send(rst, verbose=0)
            else:
                failed += 1
            client.guard.remove_conn(src, lport, dst, port)
    finally:
        if l3 is not None:
            l3.close()
    return samples, failed



def kernel_connections(dst: str, port: int, n: int) -> tuple[float, int]:
    done = 0
    t0 = time.perf_counter()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((dst, port))
        s.sendall(REQUEST)
        got = b""
        while len(got) < len(REQUEST):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        done += got == REQUEST
    return time.perf_counter() - t0, done


class SynAckCounter:
    """An nftables counter of the SYN-ACKs the server sends (in the server's namespace, a table of our own)."""

    def __init__(self, netns: str, port: int) -> None:
        self.netns, self.table = netns, f"rawtcp_bench_{os.getpid()}"
        script = (f"table inet {self.table} {{\n chain output {{\n"
                  "  type filter hook output priority 0; policy accept;\n"
                  f"  tcp sport {port} tcp flags & (syn|ack) == syn|ack counter\n }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=script, text=True, check=True,
                       capture_output=True, timeout=20)

    def read(self) -> int:
        out = subprocess.run(["ip", "netns", "exec", self.netns, "nft", "-j", "list", "table", "inet", self.table],
                             capture_output=True, text=True, timeout=20).stdout
        for obj in json.loads(out).get("nftables", []):
            for expr in obj.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
        return 0

    def close(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.netns, "nft", "delete", "table", "inet", self.table],
                       capture_output=True, timeout=20)


def listen_drops(netns: str) -> int:
    """The server kernel's count of SYNs/ACKs dropped at a full listen queue (TcpExtListenDrops)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "nstat", "-az", "-s", "TcpExtListenDrops"],
                         capture_output=True, text=True, timeout=20).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "TcpExtListenDrops" and fields[1].isdigit():
            return int(fields[1])
    return 0


def tx_packets(netns: str, ifname: str) -> int:
    out = subprocess.run(["ip", "-n", netns, "-s", "-j", "link", "show", "dev", ifname], capture_output=True,
                         text=True, timeout=20).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])

