"""The baselines measured beside rawtcp in the same run: kernel sockets, scapy, and the server kernel's
own counters (SYN-ACKs sent, listen-queue drops, the veth's transmitted packets)."""

from __future__ import annotations

import itertools
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import time
from typing import Any

from rawtcp.session.hub import Hub

REQUEST = b"GET / rawtcp\r\n\r\n"  # 16 bytes; the echo listener sends them back
SCAPY_PORTS = (10000, 29999)  # below the kernel's ephemeral range, where the hub and the kernel baseline take theirs


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


def scapy_handshakes(hub: Hub, dst: str, port: int, n: int, persistent: bool) -> tuple[list[float], int]:
    """scapy's handshake: SYN out with sr1 (or a persistent L3 socket's sr1), then the ACK with send. The
    hub lends its route and RST-suppression guard (the kernel's RSTs to the SYN-ACKs are dropped alike)."""
    sc = _scapy()
    samples, failed = [], 0
    path, guard = hub.path(dst), hub.guard
    src = path.src_ip
    ports = itertools.cycle(range(SCAPY_PORTS[0], SCAPY_PORTS[1] + 1))
    l3 = sc.conf.L3socket(iface=path.ifname) if persistent else None
    clock = time.perf_counter
    try:
        for _ in range(n):
            lport = next(ports)
            guard.add_conn(src, lport, dst, port)
            isn = hub.rng.getrandbits(32)
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
            guard.remove_conn(src, lport, dst, port)
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


def kernel_connections_pipelined(dst: str, port: int, n: int, inflight: int, timeout: float = 60.0
                                 ) -> tuple[float, int]:
    """The same connections from kernel sockets, ``inflight`` at a time (non-blocking, one selector)."""
    sel = selectors.DefaultSelector()
    started = done = active = 0
    t0 = time.perf_counter()
    end = t0 + timeout
    try:
        while (started < n or active) and time.perf_counter() < end:
            while started < n and active < inflight:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((dst, port))
                sel.register(s, selectors.EVENT_WRITE, [False, b""])
                started += 1
                active += 1
            for key, _events in sel.select(1.0):
                s, state = key.fileobj, key.data
                assert isinstance(s, socket.socket)
                try:
                    if not state[0]:  # connected: the request goes
                        s.send(REQUEST)
                        state[0] = True
                        sel.modify(s, selectors.EVENT_READ, state)
                        continue
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                state[1] += chunk
                if len(state[1]) >= len(REQUEST) or not chunk:
                    done += state[1] == REQUEST
                    sel.unregister(s)
                    s.close()
                    active -= 1
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
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

