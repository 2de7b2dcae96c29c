"""Crafted probes and their answers, nping/hping style: one segment out, the first answer matched.

Everything a probe needs exists before it is sent (RFC-free but hard-won, see ENVIRONMENT.md): the
RST-suppression entry for its 4-tuple (else our own kernel answers the SYN-ACK with a RST) and the
BPF-filtered packet socket (else a reply that comes back in microseconds is missed). A SYN-ACK leaves a
half-open connection (SYN-RECEIVED) on the target, so we answer it with a RST of our own, as nping
and hping do: it carries seq = the SYN-ACK's ack, which is acceptable to the target (RFC 9293 §3.10.7.4).
Runs in the calling thread's network namespace (enter the lab's with ``rawtcp.wire.netns.inside``).
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.core.segment import Flags, Option, Segment, SegmentWords, format_options, segment_words
from rawtcp.craft.errors import CraftError
from rawtcp.craft.spec import flag_text, rtt_summary

MAX_COUNT = 100_000  # hard cap, whatever --count says
MAX_RUN_SECONDS = 3600.0  # hard cap on count * max(interval, timeout)
PORT_POOL = (20000, 29999)  # default source ports: below Linux's ephemeral range (32768-60999)


@dataclass
class ProbeSpec:
    dst_ip: str
    dport: int
    flags: Flags = Flags.SYN
    seq: int | None = None  # None: a random one per probe
    ack: int = 0
    window: int = 64240
    options: tuple[Option, ...] = ()
    payload: bytes = b""
    ttl: int = 64
    ip_id: int | None = None  # None: counting up from 1
    df: bool = False
    tos: int = 0
    badsum: bool = False
    count: int = 4
    interval: float = 1.0
    timeout: float = 1.0
    sport: int | None = None
    sport_range: tuple[int, int] | None = None
    iface: str | None = None
    pcap: str | None = None
    reset_half_open: bool = True

    def check(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise CraftError(f"--count {self.count} outside 1-{MAX_COUNT}")
        if self.interval < 0 or self.timeout <= 0:
            raise CraftError("--interval must be >= 0 and --timeout > 0")
        if self.count * max(self.interval, self.timeout) > MAX_RUN_SECONDS:
            raise CraftError(f"this run could last over {MAX_RUN_SECONDS:.0f} s: lower --count, --interval "
                             "or --timeout")
        if not 1 <= self.dport <= 65535:
            raise CraftError(f"port {self.dport} outside 1-65535")
        for name, value, top in (("--seq", self.seq, 2**32 - 1), ("--ack", self.ack, 2**32 - 1),
                                 ("--win", self.window, 65535), ("--ttl", self.ttl, 255), ("--tos", self.tos, 255),
                                 ("--id", self.ip_id, 65535)):
            if value is not None and not 0 <= value <= top:
                raise CraftError(f"{name} {value} outside 0-{top}")

    def source_port(self, i: int, default: int) -> int:
        if self.sport is not None:
            return self.sport
        if self.sport_range is not None:
            lo, hi = self.sport_range
            return lo + i % (hi - lo + 1)
        return default


@dataclass
class ProbeResult:
    """One probe and its answer (``reply`` None when nothing came within the timeout)."""

    seq_no: int
    src: str
    dst: str
    sent: Segment
    sent_at: float  # seconds since the run started
    ip_len: int
    ttl: int
    ip_id: int
    reply: Segment | None = None
    reply_ttl: int | None = None
    reply_ip_id: int | None = None
    reply_checksum_ok: bool | None = None
    rtt_ms: float | None = None
    rst_sent: bool = False

    def to_json(self) -> dict[str, Any]:
        r = self.reply
        return {
            "type": "probe", "seq_no": self.seq_no, "src": self.src, "dst": self.dst,
            "sent_flags": flag_text(self.sent.flags), "sent_seq": self.sent.seq, "sent_ack": self.sent.ack,
            "sent_win": self.sent.window, "sent_options": format_options(self.sent.options),
            "sent_len": len(self.sent.payload),
            "reply_flags": flag_text(r.flags) if r else None,
            "reply_seq": r.seq if r else None, "reply_ack": r.ack if r else None,
            "reply_win": r.window if r else None,
            "reply_options": format_options(r.options) if r else None,
            "reply_len": len(r.payload) if r else None,
            "reply_ttl": self.reply_ttl,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
            "rst_sent": self.rst_sent,
        }


@dataclass
class ProbeRun:
    spec: ProbeSpec
    ifname: str = ""
    src_ip: str = ""
    results: list[ProbeResult] = field(default_factory=list)
    rsts_sent: int = 0

    def summary(self) -> dict[str, Any]:
        rtts = [r.rtt_ms for r in self.results if r.rtt_ms is not None]
        return {"type": "summary", **rtt_summary(len(self.results), rtts), "rsts_sent": self.rsts_sent}


def _reserve(ip: str, port: int) -> socket.socket | None:
    """Hold ``port`` with a bound, never-listening kernel socket so the kernel's own connections cannot
    pick it meanwhile; None if something already has it (we still probe from it: the user asked)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # this family's port only
        sock.bind((ip, port))
    except OSError:
        sock.close()
        return None
    return sock


def run_probes(spec: ProbeSpec, on_result: Callable[[ProbeResult], None] | None = None,
               on_start: Callable[[ProbeRun], None] | None = None,
               rng: random.Random | None = None, clock: Callable[[], float] = time.perf_counter) -> ProbeRun:
    """Send ``spec.count`` probes, one at a time; each waits up to ``spec.timeout`` for its answer."""
    from rawtcp.capture.streams import endpoint_name
    from rawtcp.wire import nft, route
    from rawtcp.wire.closer import ClosePool
    from rawtcp.wire.errors import WireError
    from rawtcp.wire.link import PacketLink, decode
    from rawtcp.wire.packet import FrameBuilder

    spec.check()
    rng = rng or random.SystemRandom()
    path = route.resolve(spec.dst_ip, spec.iface)
    run = ProbeRun(spec, path.ifname, path.src_ip)
    try:
        builder = FrameBuilder(path.src_ip, spec.dst_ip, path.src_mac, path.dst_mac, ttl=spec.ttl, df=spec.df,
                               tos=spec.tos)
    except ValueError as exc:
        raise CraftError(str(exc)) from None
    if not builder.has_link_header:
        raise CraftError(f"{path.ifname} has no Ethernet header: probes need an Ethernet interface")
    default_port = rng.randint(*PORT_POOL)
    if on_start is not None:
        on_start(run)
    with contextlib.ExitStack() as stack:
        guard = nft.RstGuard()
        stack.callback(guard.close)
        closer = ClosePool()  # one socket per probe; closing one waits for an RCU grace period
        stack.callback(closer.shutdown)
        pcap = None
        fix = None
        if spec.pcap:
            from rawtcp.capture.checksum import with_valid_checksums
            from rawtcp.capture.pcap import LINKTYPE_ETHERNET, PcapWriter, packet_comment

            pcap = PcapWriter(spec.pcap)
            stack.callback(pcap.close)
            fix = with_valid_checksums  # replies over veth carry partial (offloaded) checksums
        guarded: set[int] = set()
        t0 = clock()
        wall0 = time.time() - t0
        for i in range(spec.count):
            due = t0 + i * spec.interval
            delay = due - clock()
            if delay > 0:
                time.sleep(delay)
            sport = spec.source_port(i, default_port)
            if sport not in guarded:
                held = _reserve(path.src_ip, sport)
                if held is not None:
                    stack.callback(held.close)
                guard.add_conn(path.src_ip, sport, spec.dst_ip, spec.dport)
                guarded.add(sport)
            seq = spec.seq if spec.seq is not None else rng.getrandbits(32)
            seg = Segment(sport, spec.dport, seq, spec.ack, spec.flags, spec.window, spec.options, spec.payload)
            link = PacketLink(path.ifname, path.src_ip, sport, spec.dst_ip, spec.dport)  # before the send
            poller = select.poll()
            poller.register(link.fileno(), select.POLLIN)
            try:
                ip_id = spec.ip_id if spec.ip_id is not None else None
                try:
                    frame = builder.frame(seg, ip_id=ip_id, bad_checksum=spec.badsum)
                except ValueError as exc:
                    raise CraftError(str(exc)) from None
                # IPv6 has no identification field (RFC 8200 §4.5 keeps it in a fragment header only).
                sent_id = int.from_bytes(frame[18:20], "big") if builder.version == 4 else 0
                t_send = clock()
                link.send(frame)
                if pcap is not None:
                    pcap.write(frame, wall0 + t_send, comment=packet_comment(note=f"probe {i + 1}"))
                res = ProbeResult(i + 1, endpoint_name((path.src_ip, sport)), endpoint_name((spec.dst_ip, spec.dport)),
                                  seg, t_send - t0, len(frame) - 14, spec.ttl, sent_id)
                deadline = t_send + spec.timeout
                while res.reply is None:
                    left = deadline - clock()
                    if left <= 0:
                        break
                    if not poller.poll(left * 1000.0):
                        break
                    t_recv = clock()
                    for raw, status in link.recv_frames():
                        dec = decode(raw, status)
                        if dec is None or dec.src_ip != spec.dst_ip:
                            continue
                        res.reply, res.reply_ttl, res.reply_ip_id = dec.segment, dec.ttl, dec.ip_id
                        res.reply_checksum_ok = dec.checksum_ok
                        res.rtt_ms = (t_recv - t_send) * 1000.0
                        if pcap is not None and fix is not None:
                            pcap.write(fix(LINKTYPE_ETHERNET, raw), wall0 + t_recv,
                                       comment=packet_comment(note=f"probe {i + 1}: answer, rtt {res.rtt_ms:.3f} ms"))
                        break
                reply = res.reply
                if (spec.reset_half_open and reply is not None and reply.has(Flags.SYN)
                        and reply.has(Flags.ACK)):
                    # The target is in SYN-RECEIVED now; a RST at seq = its ack removes that half-open entry.
                    rst = Segment(sport, spec.dport, reply.ack, 0, Flags.RST, 0)
                    rst_frame = builder.frame(rst)
                    link.send(rst_frame)
                    if pcap is not None:
                        pcap.write(rst_frame, wall0 + clock(), comment=packet_comment(
                            note=f"probe {i + 1}: RST to remove the half-open connection the SYN-ACK left"))
                    res.rst_sent = True
                    run.rsts_sent += 1
            except WireError as exc:
                raise CraftError(str(exc), 1) from None
            finally:
                closer.close_link(link)
                if pcap is not None:
                    pcap.flush()  # each probe on disk as it ends: an interrupted run keeps its packets
            run.results.append(res)
            if on_result is not None:
                on_result(res)
    return run


# ---------------------------------------------------------------------------------------------
# text output, nping style


def _words(seg: Segment, show_ack: bool | None = None) -> SegmentWords:
    return segment_words(seg.flags, seg.seq, seg.ack, seg.window, len(seg.payload), seg.options,
                         show_ack=show_ack, sep="=")


def sent_line(res: ProbeResult) -> str:
    s = res.sent
    # what was crafted is shown as sent: an ack value without the ACK flag too
    words = _words(s, show_ack=bool(s.flags & Flags.ACK or s.ack))
    return (f"SENT ({res.sent_at:.4f}s) TCP {res.src} > {res.dst} {words.flags} ttl={res.ttl} "
            f"id={res.ip_id} iplen={res.ip_len} {words.fields()}")


def reply_line(res: ProbeResult) -> str:
    r = res.reply
    if r is None:
        return f"     no answer within the timeout (probe {res.seq_no})"
    assert res.rtt_ms is not None
    words = _words(r)
    text = (f"RCVD ({res.sent_at + res.rtt_ms / 1000:.4f}s) TCP {res.dst} > {res.src} {words.flags} "
            f"ttl={res.reply_ttl} id={res.reply_ip_id} {words.fields()} rtt={res.rtt_ms:.3f}ms")
    if res.reply_checksum_ok is False:
        text += " (bad checksum)"
    return text


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"{summary['sent']} probes sent, {summary['received']} answered, {summary['lost']} lost "
             f"({summary['loss_pct']:.1f}% loss)"]
    if summary["received"]:
        lines.append(f"rtt min/avg/max/mdev = {summary['rtt_min_ms']:.3f}/{summary['rtt_avg_ms']:.3f}/"
                     f"{summary['rtt_max_ms']:.3f}/{summary['rtt_mdev_ms']:.3f} ms")
    if summary.get("rsts_sent"):
        lines.append(f"{summary['rsts_sent']} RST(s) sent to remove the half-open connections the SYN-ACKs "
                     "left on the target (as nping/hping do)")
    return lines
