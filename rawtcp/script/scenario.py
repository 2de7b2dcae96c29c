"""Python lab scenarios: what the ``.pkt`` dialect cannot say (several connections, many source ports).

A scenario gets the same world as ``rawtcp run``: fresh namespaces, the kernel under test at
198.18.0.2 (its namespace set up like packetdrill's), rawtcp as the peer at 198.18.0.1, and a
system-call helper in the kernel's namespace. The peer can use any number of source ports; each
port's packet socket is opened (filter attached) and its RSTs suppressed before anything is sent.

    def run(sc: Scenario) -> None:
        sc.syscall("socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
        ...
        port = sc.peer_port()
        sc.send(port, "S", seq=0, options=[("MSS", 1460)])
        synack = sc.expect(port, "S.")

Kernel system calls are written in the dialect itself (one packetdrill syscall line), so a
scenario reads like a script. ``sc.fail(message)`` stops the lab with a failure.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from rawtcp.capture.pcap import packet_comment
from rawtcp.core.segment import Flags, Segment
from rawtcp.script import ast
from rawtcp.script.annotate import annotate_states
from rawtcp.script.errors import ScriptError
from rawtcp.script.parser import parse
from rawtcp.script.results import EXIT_FAIL, EXIT_PASS, LadderEntry, RunResult, ScriptFailure, flags_value
from rawtcp.script.syscalls import encode_expr
from rawtcp.script.target import prepare_lab


class Scenario:
    def __init__(self, path: str) -> None:
        self.path = path
        self.ladder: list[LadderEntry] = []
        self.notes: list[str] = []
        self._links: dict[int, Any] = {}
        self._queues: dict[int, list[tuple[float, Segment]]] = {}
        self._cond = threading.Condition()
        self._isn: dict[int, int] = {}
        self.start = time.monotonic()
        self.pcap: Any = None  # a PcapWriter when the lab runs with --pcap (written from two threads)
        self._pcap_lock = threading.Lock()
        self.ip_version = "ipv4"  # "ipv6": the lab's IPv6 addresses on the wire
        self.client_ip = self.server_ip = ""  # the wire's addresses, set when the lab is made

    def _capture(self, frame: bytes, port: int) -> None:
        if self.pcap is not None:
            # What is known now: the connection (the ladder's row label); the kernel's states are read
            # from the tracepoint afterwards and added by _record_states.
            with self._pcap_lock:
                self.pcap.write(frame, time.time(), comment=packet_comment(note=f"peer port {port}"))
                self.pcap.flush()  # on disk at once: an interrupted lab keeps its packets and comments

    # -- set-up --------------------------------------------------------------------------------------

    def _open(self, cfg: Any, info: Any) -> None:
        from rawtcp.lab.agent import HelperProcess
        from rawtcp.wire import netns
        from rawtcp.wire.nft import RstGuard
        from rawtcp.wire.packet import FrameBuilder

        self.cfg = cfg
        # the wire's addresses: the dual-stack lab's IPv6 ones when the lab runs over IPv6
        if self.ip_version == "ipv6":
            self.client_ip, self.server_ip = cfg.client_ip6, cfg.server_ip6
        else:
            self.client_ip, self.server_ip = cfg.client_ip, cfg.server_ip
        self.builder = FrameBuilder(self.client_ip, self.server_ip, bytes.fromhex(info.client_mac.replace(":", "")),
                                    bytes.fromhex(info.server_mac.replace(":", "")))
        with netns.inside(cfg.client_ns):
            self.guard = RstGuard()
        self.helper = HelperProcess(cfg.server_ns, self.server_ip, self.client_ip, 8080, 8080,
                                    ip_version=self.ip_version)
        self._stop_r, self._stop_w = os.pipe()

    def _close(self) -> None:
        from rawtcp.wire import netns

        os.write(self._stop_w, b"x")
        self.helper.close()
        for link in self._links.values():
            link.close(wait=False)
        with contextlib.suppress(Exception), netns.inside(self.cfg.client_ns):
            self.guard.close()

    # -- the peer ------------------------------------------------------------------------------------

    def peer_port(self, port: int | None = None) -> int:
        """A peer source port with its own filtered packet socket and RST suppression, ready before use."""
        from rawtcp.wire import netns
        from rawtcp.wire.link import PacketLink

        if port is None:
            port = 40000 + len(self._links)
        with netns.inside(self.cfg.client_ns):
            link = PacketLink(self.cfg.client_if, self.client_ip, port, self.server_ip, None)
            self.guard.add_bind(self.client_ip, port)
        self._links[port] = link
        self._queues[port] = []
        threading.Thread(target=self._sniff, args=(port, link), daemon=True).start()
        return port

    def _sniff(self, port: int, link: Any) -> None:
        from rawtcp.wire.link import decode

        while True:
            try:
                ready, _, _ = select.select([link.fileno(), self._stop_r], [], [], 1.0)
            except (OSError, ValueError):
                return
            if self._stop_r in ready:
                return
            if not ready:
                continue
            try:
                frames = link.recv_frames()
            except OSError:
                return
            now = time.monotonic()
            for frame, status in frames:
                dec = decode(frame, status)
                if dec is None:
                    continue
                self._capture(frame, port)
                with self._cond:
                    self._queues[port].append((now, dec.segment))
                    self._cond.notify_all()

    def send(self, port: int, flags: str, seq: int, ack: int = 0, window: int = 65535,
             options: list[Any] | tuple[Any, ...] = (), payload: bytes = b"", kernel_port: int = 8080) -> Segment:
        seg = Segment(port, kernel_port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, Flags(flags_value(flags)), window,
                      tuple(options), payload)
        frame = self.builder.frame(seg)
        self._links[port].send(frame)
        self._capture(frame, port)
        self._record("<", seg, seg.seq, ack - self._isn.get(port, 0))
        return seg

    def expect(self, port: int, flags: str | None = None, timeout: float = 2.0) -> Segment:
        """The next segment the kernel sends to ``port``; fails the lab if none comes or the flags differ."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._queues[port]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.fail(f"timed out waiting for a segment to peer port {port}"
                                    + (f" (expected {flags})" if flags else ""))
                self._cond.wait(left)
            when, seg = self._queues[port].pop(0)
        if seg.flags & Flags.SYN:
            self._isn[port] = seg.seq
        self._record(">", seg, seg.seq - self._isn.get(port, seg.seq), seg.ack, when)
        if flags is not None and flags_value(flags) != int(seg.flags):
            raise self.fail(f"live packet field tcp_flags: expected: {flags} vs actual: {seg.flags.short()}")
        return seg

    def pending(self, port: int) -> int:
        with self._cond:
            return len(self._queues[port])

    def drain(self, port: int, quiet: float = 0.05) -> list[Segment]:
        """Everything the kernel sent to ``port`` until ``quiet`` seconds pass with nothing new."""
        out = []
        while True:
            with self._cond:
                if not self._queues[port]:
                    self._cond.wait(quiet)
                if not self._queues[port]:
                    return out
            out.append(self.expect(port))

    def _record(self, direction: str, seg: Segment, rel_seq: int, rel_ack: int, when: float | None = None) -> None:
        at = (time.monotonic() if when is None else when) - self.start  # a received segment: when it was sniffed
        port = seg.sport if direction == "<" else seg.dport
        self.ladder.append(LadderEntry(at, direction, seg, rel_seq & 0xFFFFFFFF, rel_ack & 0xFFFFFFFF,
                                       label=str(port)))

    # -- the kernel ----------------------------------------------------------------------------------

    def syscall(self, line: str) -> dict[str, Any]:
        """Run one dialect system-call line (``listen(3, 8) = 0``) in the kernel's namespace."""
        script = parse(f"0 {line}\n", self.path)
        ev = script.events[0]
        if not isinstance(ev, ast.SyscallEvent):
            raise ScriptError(self.path, None, f"not a system call: {line}")
        reply = self.helper.request("call", timeout=10.0, name=ev.name, args=[encode_expr(a) for a in ev.args],
                                    result=encode_expr(ev.result), errno=ev.errno)
        if "script_error" in reply or "fatal" in reply:
            raise ScriptError(self.path, None, f"{line}: {reply.get('script_error') or reply.get('fatal')}")
        if reply.get("error"):
            raise self.fail(f"runtime error in {ev.name} call: {reply['error']}")
        return reply

    def shell(self, command: str) -> str:
        """Run a shell command in the kernel's namespace; its output (fails the lab on non-zero status)."""
        reply = self.helper.request("cmd", timeout=60.0, cmd=command, cwd="/")
        if reply.get("status") != 0:
            raise self.fail(f"command `{command}` failed: {(reply.get('output') or '').strip()[-200:]}")
        return str(reply.get("output") or "")

    def note(self, text: str) -> None:
        """A line for the lab's report (shown under the ladder)."""
        self.notes.append(text)

    def fail(self, message: str) -> ScriptFailure:
        return ScriptFailure(f"{self.path}: {message}")


def _watcher(cfg: Any) -> Any:
    from rawtcp.lab.kstate import KernelStateWatcher

    try:
        return KernelStateWatcher(cfg.server_ns).start({8080})
    except Exception:  # noqa: BLE001 (states are a nicety of the ladder, never a reason to fail the lab)
        return None


def _record_states(pcap: str, events: list[Any], sc: Scenario) -> None:
    """The kernel's state changes on this lab's connections, in the capture (pcapng comments) and its
    side-car, as a session's are."""
    from rawtcp.capture.sidecar import write_sidecar
    from rawtcp.capture.streams import endpoint_name

    to_wall = time.time() - time.monotonic()  # the tracepoint's clock is the monotonic one
    write_sidecar(pcap, [
        {"time": e.time + to_wall, "who": "kernel", "addr": endpoint_name((e.saddr, e.sport)),
         "peer": endpoint_name((e.daddr, e.dport)), "old": e.old, "new": e.new}
        for e in events if e.saddr == sc.server_ip and e.daddr == sc.client_ip and e.time >= sc.start])


def run_scenario(path: str, body: Callable[[Scenario], None], watch_states: bool = False,
                 pcap: str | None = None, ip_version: str = "ipv4") -> RunResult:
    """Run ``body`` in fresh namespaces, as ``rawtcp run`` runs a script."""
    from rawtcp.lab.topology import fresh_lab, temporary_lab

    cfg = fresh_lab("rtt-run", server_if="tun0", client_if="peer0")
    sc = Scenario(path)
    sc.ip_version = "ipv6" if ip_version == "ipv6" else "ipv4"  # a mapped mode changes only sockets
    if pcap:
        from rawtcp.capture.pcap import PcapWriter

        sc.pcap = PcapWriter(pcap, fix_checksums=True)
    result = RunResult(path, EXIT_PASS)
    started = time.monotonic()
    with temporary_lab(cfg, listener=False) as info:
        prepare_lab(cfg, ip_version)
        sc._open(cfg, info)
        watcher = _watcher(cfg) if watch_states else None
        try:
            sc.start = time.monotonic()
            body(sc)
        except ScriptFailure as exc:
            result.exit_code, result.error = EXIT_FAIL, str(exc)
        finally:
            end = time.monotonic() - sc.start
            sc._close()
            if sc.pcap is not None:
                sc.pcap.close()
            sc.ladder.sort(key=lambda entry: entry.time)
            if watcher is not None:
                with contextlib.suppress(Exception):
                    watcher.sync(0.5)
                    annotate_states(sc.ladder, watcher.events(), sc.server_ip, sc.client_ip, sc.start, end)
                    if pcap:
                        _record_states(pcap, watcher.events(), sc)
                with contextlib.suppress(Exception):
                    watcher.stop()
    result.ladder = sc.ladder
    result.duration = time.monotonic() - started
    result.notes = sc.notes
    return result
