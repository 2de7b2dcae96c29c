"""``rawtcp run``: play a packetdrill script against the Linux kernel in a fresh pair of namespaces.

The kernel under test lives in the server namespace (198.18.0.2, interface ``tun0``, so scripts'
``tc ... dev tun0`` commands work unchanged). rawtcp is the remote peer in the client namespace
(198.18.0.1): it sends the script's ``<`` packets through an AF_PACKET socket and sniffs the
kernel's ``>`` packets through the same socket, opened with its BPF filter before the first event.
The peer namespace's own kernel has no socket for these connections and would answer every
SYN-ACK or data segment with a RST; an nftables RstGuard silences it for the peer's port.
A helper process inside the kernel's namespace (rawtcp.script.syscall_helper) performs the
script's system calls and shell commands.

Semantics follow packetdrill's run.c / run_packet.c:
- a relative time is an offset from *now* when the event is reached, except between two inbound
  packets, which are anchored to the previous one's script time (no drift from our own overhead);
  the event after a blocking call is therefore timed from the call's start;
- outbound packets are sniffed, not waited for: the first one not yet checked must match;
- times are checked within max(tolerance_usecs, tolerance_percent of the gap from the last event);
- the peer's sequence numbers are the script's (the remote ISN is what the script says); the
  kernel's are relative to its ISN, learned from its SYN or SYN-ACK, and ``ack`` numbers the peer
  sends are mapped the same way;
- outbound TCP options must match byte for byte, except the TS val (not checked unless
  ``--tcp_ts_tick_usecs`` is given); ``<...>`` skips the option check.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import select
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rawtcp.core.segment import EXP_KIND, TFO_EXP_MAGIC, TFO_KIND, Flags, Segment, flags_str, format_options
from rawtcp.core.seq import MOD
from rawtcp.script import ast
from rawtcp.script.addresses import SCRIPT_ADDRESSES, translate_command
from rawtcp.script.annotate import annotate_states
from rawtcp.script.codeblock import CodeProgram
from rawtcp.script.errors import ScriptError
from rawtcp.script.parser import parse_file
from rawtcp.script.results import (
    EXIT_FAIL,
    EXIT_PASS,
    LadderEntry,
    RunResult,
    ScriptFailure,
    flags_value,
    script_flags_text,
)
from rawtcp.script.syscalls import SUPPORTED, encode_expr, realtime_priority
from rawtcp.script.target import defaults_command, docker_target, inside, prepare_lab
from rawtcp.script.tfo import CookieMap

SEQ_MASK = MOD - 1

DEFAULT_TOLERANCE_USECS = 10_000  # packetdrill's 4 ms, plus room for a Python peer on a shared VM
# packetdrill's default (config.c): 12.5 % of the gap since the last event, which is also how late the
# kernel's timer wheel may fire a timer (a level's granularity is 1/8 of its range)
DEFAULT_TOLERANCE_PERCENT = 12.5
DEFAULT_BIND_PORT = 8080  # packetdrill's live_bind_port / live_connect_port
SNIFF_GRACE = 1.0  # seconds past an outbound packet's window before "timed out waiting"
SYSCALL_GRACE = 2.0
_ECN_BITS = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}

@dataclass
class RunOptions:
    tolerance_usecs: int | None = None  # None: the script's --tolerance_usecs, else the default
    pcap: str | None = None
    lab: str = "netns"
    watch_states: bool = False  # record the kernel's socket states for the ladder (rawtcp lab run)
    peer_port: int | None = None
    ip_version: str | None = None  # None: the script's --ip_version option line, else ipv4
    stack: str = "linux"  # the TCP stack under test (rawtcp.lab.stack.STACKS); its agent makes the calls
    agent: str | None = None  # an agent already serving (unix socket path or HOST:PORT), for a stack's own lab
    lab_ns: str | None = None  # with ``agent``: the client namespace of the lab that is up (None: the default lab)


IP_VERSIONS = ("ipv4", "ipv4-mapped-ipv6", "ipv6")


@dataclass
class _Frame:
    """A packet for the capture and the ladder row it became (None: a packet the script passed over)."""

    wall: float
    data: bytes
    entry: LadderEntry | None = None


def preflight(script: ast.Script) -> None:
    """Refuse, before any namespace exists, what this runner cannot run (exit 2, not a failed test)."""
    version = script.options.get("ip_version", "ipv4")
    if version not in IP_VERSIONS:
        raise ScriptError(script.path, None, f"--ip_version={version}: choose ipv4, ipv4-mapped-ipv6 or ipv6")
    if not script.events:
        raise ScriptError(script.path, None, "script has no events")
    first = script.events[0]
    if first.time.kind == "absolute" and first.time.start != 0:
        raise ScriptError(script.path, first.line, "first event should be at time 0")
    for event in script.events:
        if isinstance(event, ast.SyscallEvent) and event.name not in SUPPORTED:
            raise ScriptError(script.path, event.line, f"system call '{event.name}' is not supported")
    for key in ("tolerance_usecs", "tolerance_percent", "bind_port", "connect_port", "tcp_ts_tick_usecs"):
        if key in script.options:
            try:
                float(script.options[key])
            except ValueError:
                raise ScriptError(script.path, None, f"--{key} needs a number") from None


def _cookie(option: tuple[Any, Any]) -> tuple[bytes, bytes] | None:
    """(prefix, cookie) of a TFO option (kind 34, or 254 with TFO's experimental magic), else None."""
    name, value = option
    if name in ("TFO", TFO_KIND):
        if isinstance(value, tuple):
            value = struct.pack(f"!{len(value)}I", *value)
        return b"", bytes(value or b"")
    if name == EXP_KIND and isinstance(value, bytes | bytearray) and bytes(value[:2]) == TFO_EXP_MAGIC:
        return TFO_EXP_MAGIC, bytes(value[2:])
    return None


def _swap_cookie(option: tuple[Any, Any], swap: Any) -> tuple[Any, Any]:
    found = _cookie(option)
    if found is None or not found[1]:
        return option
    prefix, cookie = found
    return (TFO_KIND, swap(cookie)) if not prefix else (EXP_KIND, prefix + swap(cookie))


def _uses_tfo(script: ast.Script) -> bool:
    return any(isinstance(e, ast.PacketEvent) and any(_cookie(o) for o in e.options or []) for e in script.events)


class Runner:
    """One run of one script. Use :func:`run_script`."""

    def __init__(self, script: ast.Script, opts: RunOptions) -> None:
        self.script = script
        self.opts = opts
        self.path = script.path
        so = script.options
        self.tolerance = (opts.tolerance_usecs if opts.tolerance_usecs is not None
                          else int(float(so.get("tolerance_usecs", DEFAULT_TOLERANCE_USECS)))) / 1e6
        self.tolerance_percent = float(so.get("tolerance_percent", DEFAULT_TOLERANCE_PERCENT))
        self.ip_version = so.get("ip_version", "ipv4")
        default_local, default_remote = SCRIPT_ADDRESSES[self.ip_version]
        # An address mode from the command line comes with run_all.py's addresses, which override the
        # script's own --local_ip/--remote_ip lines (packetdrill applies its command line last).
        own = opts.ip_version is None
        self.script_local_ip = so.get("local_ip", default_local) if own else default_local
        self.script_remote_ip = so.get("remote_ip", default_remote) if own else default_remote
        self.own_ips = (so.get("local_ip", default_local), so.get("remote_ip", default_remote))
        self.cookies: CookieMap | None = None
        self.code = CodeProgram(script.path)
        self.ts_tick = float(so["tcp_ts_tick_usecs"]) if "tcp_ts_tick_usecs" in so else None
        default_bind = DEFAULT_BIND_PORT
        if opts.lab == "docker":
            default_bind = int(os.environ.get("RAWTCP_DOCKER_SCRIPT_PORT", "8081"))
        self.bind_port = int(float(so.get("bind_port", default_bind)))
        self.connect_port = int(float(so.get("connect_port", DEFAULT_BIND_PORT)))
        # packetdrill: the peer of an active open listens on connect_port; for a passive open it
        # uses an ephemeral port of its own. The script's first opening segment says which: a SYN
        # the kernel sends (connect(), sendto(MSG_FASTOPEN) ...) or one it receives.
        opening = next((e for e in script.events if isinstance(e, ast.PacketEvent) and "S" in e.flags), None)
        if opening is not None:
            active = opening.direction == ">" and "." not in opening.flags
        else:
            active = any(isinstance(e, ast.SyscallEvent) and e.name == "connect" for e in script.events)
        self.peer_port = opts.peer_port or (self.connect_port if active else random.randint(32768, 60999))
        self.kernel_port: int | None = None if active else self.bind_port
        # packetdrill's socket under test: a SYN injected while it listens opens a new connection
        # from a new ephemeral port of the peer (run_packet.c, handle_listen_for_script_packet)
        self.listening = False
        self.passive_opens = 0
        # packetdrill's per-connection ISNs (socket.h): the kernel's as the script wrote it and as it
        # lives, and the peer's (the script's own). A SYN's numbers are mapped by the ISN difference;
        # every other segment's are relative to the ISN.
        self.script_local_isn = 0
        self.live_local_isn: int | None = None
        self.remote_isn = 0
        self.ts_off: int | None = None
        self.event_time = 0.0  # script time of the outbound packet being checked
        self.ts_vals: dict[int, int] = {}  # script TS val -> live TS val, of the kernel's packets
        self.sniffed: deque[tuple[float, float, Segment, bytes]] = deque()
        self.sniff_cond = threading.Condition()
        self.ladder: list[LadderEntry] = []
        self.frames: list[_Frame] = []
        self.live_start = 0.0
        # a blocking call in flight: its event, reply id, expected end and (script) start time
        self.pending: tuple[ast.SyscallEvent, int, float, float] | None = None
        self.events_done = 0
        self.script_end = float("inf")
        self.notes: list[str] = []  # what the agent said about calls it took but could not honour

    # -- infrastructure -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        # Like packetdrill: a real-time scheduling class while the script runs (threads started now
        # inherit it), so a busy machine does not shift packets and calls by milliseconds.
        saved = None
        with contextlib.suppress(OSError, AttributeError):
            saved = (os.sched_getscheduler(0), os.sched_getparam(0))
        realtime_priority()
        # No garbage-collection pauses while packets are timed to the millisecond: a script's objects
        # are few and short-lived, and the collector runs again once the script is over.
        collecting = gc.isenabled()
        gc.disable()
        # The sniffer thread and the event loop share the GIL: hand it over within 0.5 ms, not 5 ms,
        # so a packet that just arrived (or one due now) does not wait for the other thread's slice.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            return self._run()
        finally:
            sys.setswitchinterval(switch)
            if collecting:
                gc.enable()
            if saved is not None:
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(0, saved[0], saved[1])

    def _run(self) -> RunResult:
        from rawtcp.lab.topology import fresh_lab, temporary_lab

        started = time.monotonic()
        result = RunResult(self.path, EXIT_PASS)
        if self.opts.lab == "docker":
            cfg, info = docker_target()
            self.cfg = cfg
            lab: Any = contextlib.nullcontext(info)
        elif self.opts.agent is not None:
            from rawtcp.lab.stack import lab_in_use

            cfg, info = lab_in_use(self.opts.lab_ns or "rawtcp-client")
            self.cfg = cfg
            lab = contextlib.nullcontext(info)
        else:
            cfg = fresh_lab("rtt-run", server_if="tun0", client_if="peer0", stack=self.opts.stack)
            self.cfg = cfg
            lab = temporary_lab(cfg, listener=False)
        with lab as info:
            if self.opts.lab != "docker" and self.opts.stack == "linux" and self.opts.agent is None:
                prepare_lab(cfg, self.ip_version)
            watcher = None
            if self.opts.watch_states:
                watcher = self._start_watcher()
            try:
                self._run_in_lab(cfg, info)
            except ScriptFailure as exc:
                result.exit_code, result.error = EXIT_FAIL, str(exc)
            finally:
                if self.script_end == float("inf"):
                    self.script_end = self.now()
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        watcher.sync(0.5)
                    self._annotate_states(watcher)
                    with contextlib.suppress(Exception):
                        watcher.stop()
        result.ladder = self.ladder
        result.stack = self.opts.stack
        result.notes.extend(self.notes)
        result.duration = time.monotonic() - started
        result.events = self.events_done
        result.kernel_isn = None
        for entry in self.ladder:
            if entry.direction == ">" and entry.segment.flags & Flags.SYN:
                result.kernel_isn = entry.segment.seq
                break
        if self.opts.pcap:
            self._write_pcap(self.opts.pcap)
        return result

    def _start_watcher(self) -> Any:
        from rawtcp.lab.kstate import KernelStateWatcher
        from rawtcp.lab.stack import state_watcher

        ports = {self.bind_port, self.peer_port, self.connect_port}
        try:
            if self.opts.stack != "linux" or self.opts.agent is not None:
                return state_watcher(self.cfg.client_ns, ports, self.cfg.server_ns)
            return KernelStateWatcher(self.cfg.server_ns).start(ports)
        except Exception:  # noqa: BLE001 (states are a nicety of the ladder, never a reason to fail the run)
            return None

    def _annotate_states(self, watcher: Any) -> None:
        from rawtcp.lab.stack import reaction_time, state_label

        annotate_states(self.ladder, watcher.events(), self.server_ip, self.client_ip, self.live_start,
                        self.script_end, reaction=reaction_time(self.opts.stack))
        for entry in self.ladder:
            entry.who = state_label(self.opts.stack)  # "kernel" for Linux, also behind --agent

    def _write_pcap(self, path: str) -> None:
        from rawtcp.capture.pcap import PcapWriter, packet_comment

        # Written once the run is over: each packet's kernel state (read from the tracepoint after the
        # fact) and its script line are known by then.
        with PcapWriter(path) as writer:
            for frame in sorted(self.frames, key=lambda f: f.wall):
                entry = frame.entry
                if entry is None:
                    comment = packet_comment(note="passed over: not the connection the script was checking")
                else:
                    comment = packet_comment(None, entry.kstate, f"script line {entry.line}" if entry.line else None,
                                             stack=entry.who)
                writer.write(frame.data, frame.wall, comment=comment or None)

    def _run_in_lab(self, cfg: Any, info: Any) -> None:
        from rawtcp.lab.agent import HelperConnection, HelperProcess
        from rawtcp.wire.link import PacketLink
        from rawtcp.wire.nft import RstGuard
        from rawtcp.wire.packet import FrameBuilder

        self.client_mac = bytes.fromhex(info.client_mac.replace(":", ""))
        self.server_mac = bytes.fromhex(info.server_mac.replace(":", ""))
        # the wire's addresses: IPv6 in ipv6 mode; IPv4 otherwise (ipv4-mapped-ipv6 is IPv4 on the wire)
        if self.ip_version == "ipv6":
            if getattr(cfg, "server_ip6", None) is None:
                raise ScriptError(self.path, None, "--ip_version=ipv6 needs a dual-stack lab (--lab netns)")
            self.client_ip, self.server_ip = cfg.client_ip6, cfg.server_ip6
        else:
            self.client_ip, self.server_ip = cfg.client_ip, cfg.server_ip
        self.builder = FrameBuilder(self.client_ip, self.server_ip, self.client_mac, self.server_mac)
        link = guard = helper = None
        stop_r, stop_w = os.pipe()
        sniffer = None
        try:
            with inside(cfg.client_ns):
                # Open and filter before the first event: the kernel answers in microseconds.
                link = PacketLink(cfg.client_if, self.client_ip, self.peer_port, self.server_ip, None)
                guard = RstGuard()
                guard.add_bind(self.client_ip, self.peer_port)
            self.link = link
            self.guard = guard
            sniffer = threading.Thread(target=self._sniff, args=(link, stop_r), name="rawtcp-run-sniffer",
                                       daemon=True)
            sniffer.start()
            if self.opts.stack != "linux" or self.opts.agent is not None:
                helper = self._agent(cfg)
            elif getattr(cfg, "helper", None) is not None:
                host, port, token = cfg.helper
                helper = HelperConnection(host, port, token, self.server_ip, self.client_ip, self.bind_port,
                                          self.connect_port)
            else:
                helper = HelperProcess(cfg.server_ns, self.server_ip, self.client_ip, self.bind_port,
                                       self.connect_port, ip_version=self.ip_version,
                                       script_ips=(self.script_local_ip, self.script_remote_ip, *self.own_ips))
            self.helper = helper
            if self.opts.stack != "linux" or self.opts.agent is not None:
                self._check_supported(helper)
            if getattr(cfg, "helper", None) is not None:
                # Best effort, as prepare_lab does it: without procps' sysctl, and through a read-only
                # /proc/sys where the helper may remount it; where it may not (compose's listener),
                # compose's `sysctls:` have set them.
                helper.request("cmd", timeout=30.0, cmd=defaults_command(), cwd="/")
            script_dir = str(Path(self.path).resolve().parent)
            self.script_dir = script_dir
            for cmd in self.script.init_commands:
                self._shell(cmd.command, cmd.line, "init")
            if _uses_tfo(self.script):
                self.cookies = self._cookie_map()
            try:
                self._events()
                self._finish_pending()
                self.script_end = self.now()
            except BaseException:
                # packetdrill runs the cleanup command whatever happened, but the failure that stopped the
                # script stays the one reported: a cleanup undoing what never ran (a sysctl restore file
                # the script did not get to write) only adds a note
                for cmd in self.script.cleanup_commands:
                    try:
                        self._shell(cmd.command, cmd.line, "cleanup")
                    except Exception as exc:  # noqa: BLE001 (the script's own failure is on its way up)
                        self.notes.append(f"line {cmd.line}: after the failure, {str(exc).split(': ', 1)[-1]}")
                raise
            for cmd in self.script.cleanup_commands:
                self._shell(cmd.command, cmd.line, "cleanup")
            self._run_code()
        finally:
            os.write(stop_w, b"x")
            if sniffer is not None:
                sniffer.join(timeout=2)
            if helper is not None:
                helper.close()
            if link is not None:
                link.close()
            if guard is not None:
                with contextlib.suppress(Exception), inside(cfg.client_ns):
                    guard.close()
            os.close(stop_r)
            os.close(stop_w)

    def _agent(self, cfg: Any) -> Any:
        """The stack's agent (docs/agent-protocol.md): the lab's own, or the one --agent names."""
        from rawtcp.lab.agent import AgentConnection
        from rawtcp.lab.stack import lab_stack

        address = self.opts.agent
        if address is None:
            _stack, sock = lab_stack(cfg.client_ns)
            if sock is None:
                raise ScriptError(self.path, None, f"the {self.opts.stack} lab has no agent")
            address = str(sock)
        hello = {"protocol": "rawtcp-agent/1", "local_ip": self.server_ip, "remote_ip": self.client_ip,
                 "bind_port": self.bind_port, "connect_port": self.connect_port, "ip_version": self.ip_version,
                 "script_local_ips": [self.script_local_ip, self.own_ips[0]],
                 "script_remote_ips": [self.script_remote_ip, self.own_ips[1]]}
        token = os.environ.get("RAWTCP_HELPER_TOKEN")
        if token and not address.startswith("/"):
            hello["token"] = token  # a TCP-served agent's shared secret (a unix socket is 0600 instead)
        agent = AgentConnection(address, hello)
        if self.opts.agent is not None:
            self.opts.stack = agent.stack  # the ladder and messages name the stack the agent drives
        return agent

    def _check_supported(self, agent: Any) -> None:
        """Ask the stack's agent, before the first packet, whether its API can express every system call
        of the script (the protocol's ``check``): a script asking the stack to do what it cannot is
        unsupported (exit 2) even when the stack differs from Linux earlier on. ``%{ }%`` blocks only
        observe, so they are not asked about: a stack without tcp_info runs the script up to the first
        one (its differences before that are failures). An agent without ``check`` answers each call as
        it comes instead."""
        try:
            calls = [{"line": ev.line, "name": ev.name, "args": [encode_expr(a) for a in ev.args]}
                     for ev in self.script.events if isinstance(ev, ast.SyscallEvent)]
        except Exception:  # noqa: BLE001 (an argument the wire format cannot carry: its call reports it)
            return
        reply = agent.request("check", timeout=30.0, calls=calls)
        if "unsupported" in reply:
            raise self.unsupported(reply.get("line"), reply["unsupported"])

    def _cookie_map(self) -> CookieMap:
        """The kernel's TFO key, after the init command set it: the script's cookies become the lab's."""
        reply = self.helper.request("cmd", timeout=10.0, cmd="cat /proc/sys/net/ipv4/tcp_fastopen_key", cwd="/")
        key = (reply.get("output") or "").strip().splitlines()
        if reply.get("status") != 0 or not key:
            raise ScriptError(self.path, None, "cannot read net.ipv4.tcp_fastopen_key in the kernel's namespace")
        default_local, default_remote = SCRIPT_ADDRESSES[self.ip_version]
        pairs = [(self.script_remote_ip, self.script_local_ip), (default_remote, default_local),
                 (self.own_ips[1], self.own_ips[0])]
        return CookieMap(key[-1], pairs, self.client_ip, self.server_ip)

    def _sniff(self, link: Any, stop_fd: int) -> None:
        from rawtcp.wire.link import decode

        fd = link.fileno()
        while True:
            ready, _, _ = select.select([fd, stop_fd], [], [], 1.0)
            if stop_fd in ready:
                return
            if fd not in ready:
                continue
            try:
                frames = link.recv_frames()
            except OSError:
                return
            now, wall = time.monotonic(), time.time()
            for frame, status in frames:
                dec = decode(frame, status)
                if dec is None or dec.src_ip != self.server_ip:
                    continue
                with self.sniff_cond:
                    self.sniffed.append((now, wall, dec.segment, frame))
                    self.sniff_cond.notify_all()

    # -- timing -----------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.live_start

    def _wait_until(self, t: float) -> None:
        target = self.live_start + t
        while True:
            left = target - time.monotonic()
            if left <= 0:
                return
            self._check_pending()
            time.sleep(min(left, 0.002) if left < 0.003 else min(left - 0.001, 0.05))

    def _tolerance(self, script_t: float, last_t: float | None) -> float:
        tol = self.tolerance
        if last_t is not None and self.tolerance_percent:
            tol = max(tol, self.tolerance_percent / 100.0 * (script_t - last_t))
        return tol

    def _verify_time(self, line: int, kind: str, t: float, t_end: float | None, actual: float,
                     last_t: float | None, what: str) -> None:
        if kind == "any":
            return
        tol = self._tolerance(t, last_t)
        if t_end is not None:
            if actual < t - tol or actual > t_end + tol:
                raise self.fail(line, f"timing error: expected {what} in time range {t:.6f}~{t_end:.6f} sec "
                                      f"but happened at {actual:.6f} sec; tolerance {tol:.6f} sec")
            return
        if actual < t - tol or actual > t + tol:
            raise self.fail(line, f"timing error: expected {what} at {t:.6f} sec but happened at "
                                  f"{actual:.6f} sec; tolerance {tol:.6f} sec")

    def unsupported(self, line: int | None, message: str) -> ScriptError:
        """What the stack under test's agent cannot express: bad input for that stack (exit 2), not a
        failure of the stack."""
        return ScriptError(self.path, line, f"unsupported on stack {self.opts.stack}: {message}")

    def fail(self, line: int | None, message: str) -> ScriptFailure:
        return ScriptFailure(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")

    # -- the event loop -----------------------------------------------------------------------------

    def _events(self) -> None:
        last: ast.AnyEvent | None = None
        last_t: float | None = None
        self.live_start = time.monotonic()
        # script time 0 for the helper too: recvmsg() checks scm_timestamping against it
        self.helper.send("config", live_start=self.live_start, tolerance_usecs=round(self.tolerance * 1e6))
        for event in self.script.events:
            self._check_pending()
            tm = event.time
            t_end: float | None = None
            if tm.kind == "absolute":
                t = tm.start
                if tm.end is not None:
                    t_end = tm.end
            elif tm.kind == "any":
                t = self.now()
            else:
                anchored = (last is not None and _inbound(last) and _inbound(event) and last_t is not None)
                offset = last_t if anchored and last_t is not None else self.now()
                t = offset + tm.start
                if tm.end is not None:
                    t_end = offset + tm.end
            if last_t is not None and tm.kind == "absolute" and _absolute(last) and t < last_t:
                raise ScriptError(self.path, event.line, "time goes backward in script")
            if isinstance(event, ast.IcmpPacketEvent):
                if event.direction == ">":
                    raise ScriptError(self.path, event.line, "outbound ICMP packets are not supported")
                self._wait_until(t)
                self._verify_time(event.line, tm.kind, t, None, self.now(), last_t, "inbound packet")
                self._inbound_icmp(event)
            elif isinstance(event, ast.PacketEvent) and event.direction == ">":
                self._outbound(event, t, None if tm.blocking else t_end, last_t)
            elif isinstance(event, ast.PacketEvent):
                self._wait_until(t)
                self._verify_time(event.line, tm.kind, t, None, self.now(), last_t, "inbound packet")
                self._inbound(event)
            elif isinstance(event, ast.SyscallEvent):
                self._syscall(event, t, t_end if tm.blocking else None, last_t)
            elif isinstance(event, ast.CommandEvent):
                self._wait_until(t)
                self._verify_time(event.line, tm.kind, t, None, self.now(), last_t, "command")
                self._shell(event.command, event.line, "timed")
            elif isinstance(event, ast.CodeEvent):
                self._wait_until(t)
                self._code(event)
            last, last_t = event, t
            self.events_done += 1

    # -- packets ------------------------------------------------------------------------------------

    def _local_offset(self, syn: bool) -> int:
        """local_seq_script_to_live_offset(): script kernel seq/ack + this = live."""
        live = self.live_local_isn or 0
        return (live - self.script_local_isn) & SEQ_MASK if syn else live

    def _remote_offset(self, syn: bool) -> int:
        """remote_seq_script_to_live_offset(): the peer's seq (script) + this = live."""
        return 0 if syn else self.remote_isn

    def _inbound(self, ev: ast.PacketEvent) -> None:
        from rawtcp.wire.packet import FrameBuilder

        flags = flags_value(ev.flags)
        syn = bool(flags & Flags.SYN)
        if syn:
            self.remote_isn = ev.seq_start & SEQ_MASK  # a new connection from the peer (run_packet.c)
            if self.listening and not flags & Flags.ACK:
                self.listening = False
                if self.passive_opens:
                    self._new_peer_port()
                self.passive_opens += 1
        ack_offset = self._local_offset(syn)
        ack = (ev.ack + ack_offset) & SEQ_MASK if ev.ack is not None else 0
        options: list[Any] = []
        for name, value in ev.options or []:
            if name == "Timestamp":
                val, ecr = value
                if ecr in self.ts_vals:  # an exact outbound TS val (get_outbound_ts_val_mapping)
                    ecr = self.ts_vals[ecr]
                elif ecr and self.ts_off is not None:
                    ecr = (ecr + self.ts_off) & SEQ_MASK
                value = (val, ecr)
            elif name == "SAck":
                value = tuple((v + ack_offset) & SEQ_MASK for v in value)
            elif self.cookies is not None:
                name, value = _swap_cookie((name, value), self.cookies.live)
            options.append((name, value))
        if self.kernel_port is None:
            raise self.fail(ev.line, "cannot send an inbound packet before the kernel's port is known "
                                     "(no connect() or outbound SYN yet)")
        window = ev.window if ev.window is not None else (0 if flags & Flags.RST else 65535)
        seq = (ev.seq_start + self._remote_offset(syn)) & SEQ_MASK
        seg = Segment(self.peer_port, self.kernel_port, seq, ack, Flags(flags), window,
                      tuple(options), b"\0" * ev.seq_len, ev.urg or 0)
        builder = self.builder
        if ev.ecn is not None or ev.tos is not None or ev.ttl is not None or ev.flowlabel is not None:
            tos = (ev.tos or 0) | _ECN_BITS.get(ev.ecn or "noecn", 0)
            builder = FrameBuilder(self.client_ip, self.server_ip, self.client_mac, self.server_mac,
                                   ttl=ev.ttl if ev.ttl is not None else 64, tos=tos, flow_label=ev.flowlabel or 0)
        try:
            frame = builder.frame(seg)
        except ValueError as exc:
            raise ScriptError(self.path, ev.line, f"cannot build this packet: {exc}") from None
        sent_at, wall = self.now(), time.time()
        self.link.send(frame)
        entry = LadderEntry(sent_at, "<", seg, ev.seq_start & SEQ_MASK, ev.ack if ev.ack is not None else 0, ev.line)
        self.frames.append(_Frame(wall, frame, entry))
        self.ladder.append(entry)

    def _inbound_icmp(self, ev: ast.IcmpPacketEvent) -> None:
        """An ICMP error quoting the kernel's segment at ``ev.seq_start`` (packetdrill's icmp_packet.c):
        the quoted sequence number is mapped like an ACK (map_inbound_icmp_tcp_packet)."""
        from rawtcp.wire.icmp import IPPROTO_UDP, IcmpBuilder, Quoted, icmp_type_code

        if self.kernel_port is None:
            raise self.fail(ev.line, "cannot send an ICMP message before the kernel's port is known")
        version = 6 if self.ip_version == "ipv6" else 4
        try:
            icmp_type, code = icmp_type_code(version, ev.icmp_type, ev.icmp_code)
        except ValueError as exc:
            raise ScriptError(self.path, ev.line, str(exc)) from None
        if ev.echoed_protocol == "tcp":
            seq = (ev.seq_start + self._local_offset(False)) & SEQ_MASK
            quoted = Quoted(self.kernel_port, self.peer_port, seq, ev.seq_len)
        elif ev.echoed_protocol == "udp":
            quoted = Quoted(self.kernel_port, self.peer_port, 0, ev.seq_len, protocol=IPPROTO_UDP)
        else:
            raise ScriptError(self.path, ev.line, "ICMP messages quoting raw IP packets are not supported")
        tos = (ev.tos or 0) | _ECN_BITS.get(ev.ecn or "noecn", 0)
        builder = IcmpBuilder(self.client_ip, self.server_ip, self.client_mac, self.server_mac,
                              ttl=ev.ttl if ev.ttl is not None else 64, tos=tos, flow_label=ev.flowlabel or 0)
        try:
            frame = builder.frame(icmp_type, code, mtu=ev.mtu, echo_id=ev.echo_id, quoted=quoted)
        except ValueError as exc:
            raise ScriptError(self.path, ev.line, f"cannot build this ICMP message: {exc}") from None
        sent_at, wall = self.now(), time.time()
        self.link.send(frame)
        text = " ".join(p for p in (ev.icmp_type, ev.icmp_code, f"mtu {ev.mtu}" if ev.mtu is not None else None)
                        if p)
        text += f" [{ev.seq_start}:{ev.seq_end}({ev.seq_len})]"
        quoted_seg = Segment(self.kernel_port, self.peer_port, quoted.seq, 0, Flags(0), 0, (), b"", 0)
        entry = LadderEntry(sent_at, "<", quoted_seg, ev.seq_start, 0, ev.line, icmp=text)
        self.frames.append(_Frame(wall, frame, entry))
        self.ladder.append(entry)

    def _new_peer_port(self) -> None:
        """A fresh ephemeral port for the peer's next passive connection, filtered and RST-guarded."""
        old = self.peer_port
        while self.peer_port == old:
            self.peer_port = random.randint(32768, 60999)
        with inside(self.cfg.client_ns):
            self.guard.add_bind(self.client_ip, self.peer_port)
            self.link.set_filter(self.client_ip, self.peer_port, self.server_ip, None)

    def _next_sniffed(self, deadline: float) -> tuple[float, float, Segment, bytes] | None:
        with self.sniff_cond:
            while not self.sniffed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sniff_cond.wait(min(left, 0.01))
                if not self.sniffed:
                    # let a finished blocking call report while we wait
                    self.sniff_cond.release()
                    try:
                        self._check_pending()
                    finally:
                        self.sniff_cond.acquire()
            return self.sniffed.popleft()

    def _outbound(self, ev: ast.PacketEvent, t: float, t_end: float | None, last_t: float | None) -> None:
        """packetdrill's do_outbound_script_packet(): sniff the kernel's packets for this connection and
        aggregate them until they hold the payload the script expects (a TSO/GSO burst may arrive in
        pieces), then check the result against the script."""
        if ev.time.kind == "any":
            deadline = time.monotonic() + 10.0
        else:
            deadline = self.live_start + (t_end if t_end is not None else t) + self.tolerance + SNIFF_GRACE
        self.event_time = t
        strict = "strict_segments" in self.script.options
        pieces: list[tuple[float, float, Segment, bytes]] = []
        captured: list[_Frame] = []  # the pieces' packets in the capture
        total = 0
        while True:
            found = self._sniff_for(ev, deadline)
            if found is None:
                if pieces:
                    break  # what arrived is checked below: "live packet payload: expected ... vs actual"
                raise self.fail(ev.line, "error handling packet: timed out waiting for packet "
                                         f"{ev.direction} {ev.flags} {ev.seq_start}:{ev.seq_end}({ev.seq_len})")
            got, packet = found
            seg = got[2]
            if pieces and (seg.sport, seg.dport) != (pieces[-1][2].sport, pieces[-1][2].dport):
                # another connection's packet: packetdrill discards what it had and starts anew
                pieces, captured, total = [], [], 0
            elif pieces:
                self._check_fragment(ev, pieces[-1][2], seg, total)
            pieces.append(got)
            captured.append(packet)
            total += len(seg.payload)
            if strict or total >= ev.seq_len:
                break
        first = pieces[0][2]
        syn = bool(first.flags & Flags.SYN)
        if syn and "S" in ev.flags:
            # every SYN the script expects starts a connection: learn (or re-learn) the kernel's ISN,
            # and the kernel's port when it is the one opening
            self.script_local_isn = ev.seq_start & SEQ_MASK
            self.live_local_isn = first.seq
            if not first.flags & Flags.ACK:
                self.kernel_port = first.sport
        if self.kernel_port is None:
            self.kernel_port = first.sport
        for (mono, _wall, piece, _frame), in_capture in zip(pieces, captured, strict=True):
            rel = (piece.seq - self._local_offset(syn)) & SEQ_MASK
            rel_ack = (piece.ack - self._remote_offset(syn)) & SEQ_MASK
            in_capture.entry = LadderEntry(mono - self.live_start, ">", piece, rel, rel_ack, ev.line)
            self.ladder.append(in_capture.entry)
        seg = _aggregate([p[2] for p in pieces])
        rel_seq = (seg.seq - self._local_offset(syn)) & SEQ_MASK
        rel_ack = (seg.ack - self._remote_offset(syn)) & SEQ_MASK
        mono, frame = pieces[-1][0], pieces[-1][3]  # aggregate_packets() keeps the last piece's headers
        self._check_ip(ev, frame)
        self._check_fields(ev, seg, rel_seq, rel_ack)
        self._verify_time(ev.line, ev.time.kind, t, t_end, mono - self.live_start, last_t, "outbound packet")

    def _sniff_for(self, ev: ast.PacketEvent,
                   deadline: float) -> tuple[tuple[float, float, Segment, bytes], _Frame] | None:
        """The next kernel packet that may be ``ev`` (sniff_outbound_live_packet()): one of the socket under
        test's, or, for a SYN the script expects from a connecting socket, any SYN to the peer's port
        (from the kernel's new ephemeral port). Packets of connections the script has moved on from
        are passed over, as packetdrill passes over them; they stay in the capture."""
        active_syn = "S" in ev.flags and "." not in ev.flags
        while True:
            got = self._next_sniffed(deadline)
            if got is None:
                return None
            seg = got[2]
            packet = _Frame(got[1], got[3])
            self.frames.append(packet)
            if active_syn:
                if seg.flags & Flags.SYN and not seg.flags & Flags.ACK and seg.dport == self.peer_port:
                    return got, packet
            elif self.kernel_port is None or (seg.sport, seg.dport) == (self.kernel_port, self.peer_port):
                return got, packet

    def _check_fragment(self, ev: ast.PacketEvent, prev: Segment, cur: Segment, sniffed: int) -> None:
        """verify_packet_fragments(): a piece continues the previous one with the same headers (FIN, PSH
        and CWR aside), and every piece but the last has the previous piece's size."""
        def mismatch(name: str, want: Any, got: Any) -> ScriptFailure:
            return self.fail(ev.line, f"error handling packet: aggregate candidate packet field {name}: "
                                      f"expected: {want} vs actual: {got}")

        loose = Flags.FIN | Flags.PSH | Flags.CWR
        if (prev.flags & ~loose) != (cur.flags & ~loose):
            raise mismatch("tcp_flags", flags_str(int(prev.flags)), flags_str(int(cur.flags)))
        if cur.seq != (prev.seq + len(prev.payload)) & SEQ_MASK:
            raise mismatch("tcp_seq", (prev.seq + len(prev.payload)) & SEQ_MASK, cur.seq)
        for name, want, got in (("tcp_ack_seq", prev.ack, cur.ack), ("tcp_window", prev.window, cur.window),
                                ("tcp_urg_ptr", prev.urgent, cur.urgent)):
            if want != got:
                raise mismatch(name, want, got)
        if len(cur.payload) < ev.seq_len - sniffed and len(cur.payload) != len(prev.payload):
            raise self.fail(ev.line, f"error handling packet: fragment payload: expected {len(prev.payload)} bytes "
                                     f"vs actual {len(cur.payload)} bytes; total payload: expected {ev.seq_len} "
                                     f"bytes vs actual {sniffed + len(cur.payload)} bytes")

    def _check_ip(self, ev: ast.PacketEvent, frame: bytes) -> None:
        """``[ect0]``, ``[tos 0x..]``, ``[ttl N]``, ``[flowlabel 0x..]`` on an outbound packet (RFC 3168 ECN
        codepoints; over IPv6 the traffic class and the hop limit)."""
        if ev.ecn is None and ev.tos is None and ev.ttl is None and ev.flowlabel is None:
            return
        from rawtcp.wire.packet import decode_frame

        dec = decode_frame(frame, verify=False)
        if dec is None:
            return
        tos, ttl = dec.tos, dec.ttl
        names = {0: "noecn", 1: "ect1", 2: "ect0", 3: "ce"}
        if ev.ecn is not None:
            ok = (tos & 3) in (1, 2) if ev.ecn == "ect01" else (tos & 3) == _ECN_BITS[ev.ecn]
            if not ok:
                raise self.fail(ev.line, f"error handling packet: live packet field ip_ecn: expected: {ev.ecn} "
                                         f"vs actual: {names[tos & 3]}")
        if ev.tos is not None and (tos & 0xFC) != (ev.tos & 0xFC):
            raise self.fail(ev.line, f"error handling packet: live packet field ip_tos: expected: {ev.tos:#04x} "
                                     f"vs actual: {tos & 0xFC:#04x}")
        if ev.ttl is not None and ttl != ev.ttl:
            what = "ipv6_hop_limit" if dec.version == 6 else "ip_ttl"
            raise self.fail(ev.line, f"error handling packet: live packet field {what}: expected: {ev.ttl} "
                                     f"vs actual: {ttl}")
        if ev.flowlabel is not None and dec.version == 6 and dec.flow_label != ev.flowlabel:
            raise self.fail(ev.line, f"error handling packet: live packet field ipv6_flow_label: expected: "
                                     f"{ev.flowlabel:#x} vs actual: {dec.flow_label:#x}")

    def _check_fields(self, ev: ast.PacketEvent, seg: Segment, rel_seq: int, rel_ack: int) -> None:
        def field_error(name: str, want: Any, got: Any) -> ScriptFailure:
            return self.fail(ev.line, f"error handling packet: live packet field {name}: "
                                      f"expected: {want} vs actual: {got}")

        want_flags = flags_value(ev.flags)
        if want_flags != int(seg.flags):
            raise field_error("tcp_flags", script_flags_text(ev.flags), flags_str(int(seg.flags)))
        if rel_seq != ev.seq_start:
            raise field_error("tcp_seq", ev.seq_start, rel_seq)
        if ev.ack is not None and rel_ack != ev.ack & SEQ_MASK:
            raise field_error("tcp_ack", ev.ack, rel_ack)
        if ev.window is not None and seg.window != ev.window:
            raise field_error("tcp_window", ev.window, seg.window)
        if ev.urg is not None and seg.urgent != ev.urg:
            raise field_error("tcp_urg_ptr", ev.urg, seg.urgent)
        if len(seg.payload) != ev.seq_len:
            raise self.fail(ev.line, f"error handling packet: live packet payload: expected {ev.seq_len} bytes "
                                     f"vs actual {len(seg.payload)} bytes")
        if ev.options is not None:
            self._check_options(ev, seg)

    def _check_options(self, ev: ast.PacketEvent, seg: Segment) -> None:
        from rawtcp.wire.packet import encode_options

        assert ev.options is not None
        live_ts = seg.option("Timestamp")
        expected: list[Any] = []
        remote = self._remote_offset(bool(seg.flags & Flags.SYN))
        live_options = [(n, tuple((v - remote) & SEQ_MASK for v in val)) if n == "SAck" else (n, val)
                        for n, val in seg.options]
        for name, value in ev.options:
            if name == "Timestamp" and live_ts is not None:
                if self.ts_off is None:
                    self.ts_off = (live_ts[0] - value[0]) & SEQ_MASK
                if self.ts_tick is not None:
                    want_val = (value[0] + (self.ts_off or 0)) & SEQ_MASK
                    # run_packet.c: the tolerance grows with the time since the script started (12.5 %),
                    # not with the gap since the last event, as TS vals drift cumulatively
                    tol_usecs = max(self.tolerance, self.tolerance_percent / 100.0 * self.event_time) * 1e6
                    if abs(live_ts[0] - want_val) * self.ts_tick > tol_usecs:
                        raise self.fail(ev.line, f"error handling packet: bad outbound TCP timestamp value: "
                                                 f"expected: {value[0]} vs actual: "
                                                 f"{(live_ts[0] - self.ts_off) & SEQ_MASK}")
                self.ts_vals[value[0]] = live_ts[0]  # set_outbound_ts_val_mapping()
                value = (live_ts[0], value[1])  # packetdrill rewrites the live TS val before comparing
            elif self.cookies is not None:
                name, value = _swap_cookie((name, value), self.cookies.live)
            expected.append((name, value))
        try:
            want = encode_options(expected)
            got = encode_options(live_options)
        except ValueError:
            want, got = b"", b"?"
        if want != got:
            shown = [(n, (v[0] - (self.ts_off or 0) & SEQ_MASK, v[1]) if n == "Timestamp" else v)
                     for n, v in live_options]
            if self.cookies is not None:
                shown = [_swap_cookie(o, self.cookies.script) for o in shown]
            raise self.fail(ev.line, f"error handling packet: bad outbound TCP options: expected: "
                                     f"<{format_options(list(ev.options))}> vs actual: <{format_options(shown)}>")

    # -- system calls, commands, code -------------------------------------------------------------------

    def _check_pending(self) -> None:
        if self.pending is None:
            return
        ev, rid, _t_end, _t = self.pending
        reply = self.helper.poll(rid)
        if reply is not None:
            self._complete(ev, reply, blocking=True)

    def _finish_pending(self) -> None:
        if self.pending is None:
            return
        ev, rid, t_end, _t = self.pending
        left = self.live_start + t_end + self.tolerance + SYSCALL_GRACE - time.monotonic()
        reply = self.helper.wait(rid, max(left, 0.0))
        if reply is None:
            raise self.fail(ev.line, f"timing error: expected {ev.name} system call to return at {t_end:.6f} sec "
                                     f"but it is still blocked at {self.now():.6f} sec; "
                                     f"tolerance {self.tolerance:.6f} sec")
        self._complete(ev, reply, blocking=True)

    def _complete(self, ev: ast.SyscallEvent, reply: dict[str, Any], blocking: bool) -> None:
        expected_end = started = None
        if blocking and self.pending is not None:
            _ev, _rid, expected_end, started = self.pending
            self.pending = None
        if "script_error" in reply:
            raise ScriptError(self.path, ev.line, reply["script_error"])
        if "unsupported" in reply:
            raise self.unsupported(ev.line, reply["unsupported"])
        if "fatal" in reply:
            raise ScriptError(self.path, ev.line, f"{ev.name}() could not be run: {reply['fatal']}")
        if reply.get("note"):
            self.notes.append(f"line {ev.line}: {reply['note']}")
        if reply.get("error"):
            raise self.fail(ev.line, f"runtime error in {ev.name} call: {reply['error']}")
        end = reply["end"] - self.live_start
        if expected_end is not None:
            # run_system_call.c: a blocking call's end is judged with the dynamic tolerance of its own
            # duration (12.5 % of end - start), the last event being "unpredictable and irrelevant"
            self._verify_time(ev.line, "absolute", expected_end, None, end, started, "system call return")
        else:
            start = reply["start"] - self.live_start
            if end - start > self.tolerance:
                raise self.fail(ev.line, f"timing error: expected non-blocking {ev.name} call to return at "
                                         f"{start:.6f} sec but it returned at {end:.6f} sec; "
                                         f"tolerance {self.tolerance:.6f} sec")

    def _syscall(self, ev: ast.SyscallEvent, t: float, t_end: float | None, last_t: float | None) -> None:
        if ev.name == "listen":
            self.listening = True
        elif ev.name in ("socket", "connect"):
            self.listening = False
        self._wait_until(t)
        if self.pending is not None:
            # packetdrill has one system-call thread: the next call waits for a blocked one
            self._finish_pending()
        self._verify_time(ev.line, ev.time.kind, t, None, self.now(), last_t, "system call start")
        rid = self.helper.send("call", name=ev.name, args=[encode_expr(a) for a in ev.args],
                               result=encode_expr(ev.result), errno=ev.errno, blocking=ev.time.blocking)
        if ev.time.blocking:
            assert t_end is not None
            self.pending = (ev, rid, t_end, t)
            return
        reply = self.helper.wait(rid, self.tolerance + SYSCALL_GRACE + 5.0)
        if reply is None:
            raise self.fail(ev.line, f"runtime error in {ev.name} call: the call blocked, but the script "
                                     f"does not say it blocks (write it as +T...END {ev.name}(...))")
        self._complete(ev, reply, blocking=False)

    def _shell(self, command: str, line: int, what: str) -> None:
        # Scripts aim commands at packetdrill's tun0: the kernel's lab interface has that very name;
        # packetdrill's addresses in a command become the lab's.
        lab_v4 = (self.cfg.server_ip, self.cfg.client_ip) if self.ip_version == "ipv6" else None
        command = translate_command(command, {self.script_local_ip, self.own_ips[0]}, self.server_ip, self.client_ip,
                                    lab_v4)
        reply = self.helper.request("cmd", timeout=120.0, cmd=command, cwd=self.script_dir, timeout_s=60)
        if "unsupported" in reply:
            raise self.unsupported(line, reply["unsupported"])
        status = reply.get("status", -1)
        if status != 0:
            tail = (reply.get("output") or "").strip().splitlines()
            detail = f": {tail[-1]}" if tail else ""
            label = {"init": "init command", "cleanup": "cleanup command"}.get(what, "command")
            raise self.fail(line, f"error executing {label} `{command}`: non-zero status {status}{detail}")

    def _code(self, ev: ast.CodeEvent) -> None:
        """Snapshot the socket under test now; the block itself runs after the script (packetdrill's
        code.c), with every other block, in one Python program."""
        reply = self.helper.request("tcpinfo", timeout=10.0)
        if "unsupported" in reply:
            raise self.unsupported(ev.line, reply["unsupported"])
        if "script_error" in reply:
            raise ScriptError(self.path, ev.line, reply["script_error"])
        if "fatal" in reply:
            raise ScriptError(self.path, ev.line, f"cannot read TCP_INFO: {reply['fatal']}")
        self.code.add(ev.code, reply["info"], ev.line)

    def _run_code(self) -> None:
        outcome = self.code.run()
        if outcome is None:
            return
        line, complaint = outcome
        if complaint.startswith("Python code does not compile"):
            raise ScriptError(self.path, line, complaint)
        raise self.fail(line, complaint)


def _aggregate(pieces: list[Segment]) -> Segment:
    """packetdrill's aggregate_packets(): one segment with the pieces' payloads, the first piece's seq and
    CWR, the last piece's other headers and options."""
    if len(pieces) == 1:
        return pieces[0]
    first, last = pieces[0], pieces[-1]
    flags = (int(last.flags) & ~Flags.CWR) | (int(first.flags) & Flags.CWR)
    return Segment(first.sport, first.dport, first.seq, last.ack, Flags(flags), last.window, last.options,
                   b"".join(p.payload for p in pieces), last.urgent)


def _inbound(event: ast.AnyEvent | None) -> bool:
    return isinstance(event, ast.PacketEvent) and event.direction == "<"


def _absolute(event: ast.AnyEvent | None) -> bool:
    return event is not None and event.time.kind == "absolute"


def run_script(path: str, opts: RunOptions | None = None, defines: dict[str, str] | None = None) -> RunResult:
    """Run the script at ``path`` in fresh namespaces. ScriptError for a bad script (exit 2);
    LabError/WireError when the lab cannot be made; otherwise a RunResult (exit 0 pass, 1 fail)."""
    opts = opts or RunOptions()
    if opts.lab not in ("netns", "docker"):
        raise ScriptError(path, None, f"unknown lab kind {opts.lab!r} (netns or docker)")
    if opts.stack != "linux" or opts.agent is not None:
        from rawtcp.lab.errors import LabError
        from rawtcp.lab.stack import check_stack

        if opts.lab != "netns":
            raise ScriptError(path, None, "--stack and --agent run in namespaces (--lab netns)")
        try:
            check_stack(opts.stack)
        except LabError as exc:
            raise ScriptError(path, None, str(exc)) from None
    script = parse_file(path, defines)
    if opts.ip_version is not None:
        script.options["ip_version"] = opts.ip_version  # the command line wins over the option line
    preflight(script)
    return Runner(script, opts).run()
