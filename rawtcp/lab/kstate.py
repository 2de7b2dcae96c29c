"""The kernel's own TCP socket states, recorded as they change.

Primary source: the ``sock:inet_sock_set_state`` tracepoint read from private tracefs instances
(``/sys/kernel/tracing/instances/rawtcp-<pid>-<n>``), so concurrent runs never disturb each other
and states lasting microseconds (a CLOSE-WAIT ended by an immediate close) are not missed.
The instances' clock is "mono", so event times compare directly with ``time.monotonic()``.
IPv4 sockets are read with the "fields" option (it adds the socket's address, which ties a
connect()ing socket's port-less SYN-SENT to its later changes); that option cannot print the
16-byte IPv6 addresses (``saddr_v6=<INVALID-SIZE>``), so IPv6 sockets come from a second instance
in the default format (``saddrv6=2001:db8::2``).

Fallback (no tracefs, e.g. in a container): poll sock_diag every few ms — inside the lab's
namespace through a helper process (``python -m rawtcp.lab.kstate poll``). Polling can miss states
shorter than the interval; ``source`` says which one is in use.

Limitation: the tracepoint reports sockets of every namespace and carries no namespace id. Two labs
using the same addresses and ports cannot be told apart; distinct ports (or addresses) per
concurrent run disambiguate. Events are filtered in-kernel on protocol and ports, and on
addresses here.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import ipaddress
import itertools
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rawtcp.core.state_names import rfc_name, rfc_name_of_number, state_from_name
from rawtcp.lab.errors import LabError
from rawtcp.lab.topology import pid_alive
from rawtcp.proc import readline_with_timeout

TRACEFS = Path("/sys/kernel/tracing")
EVENT = "sock/inet_sock_set_state"
INSTANCE_PREFIX = "rawtcp-"
# rawtcp-p<pid namespace>-<pid>-<n>; names without the namespace come from older versions.
_INSTANCE_RE = re.compile(r"^rawtcp-(?:p(\d+)-)?(\d+)-\d+$")


def pid_namespace() -> int:
    """This process's pid namespace (its inode): tracefs is one for the whole kernel, so a container's
    instances are seen from the host too, where their pids mean other processes or none."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0

Endpoint = tuple[str, int]
# States from which a normal close goes through TIME-WAIT (RFC 9293 §3.3.2).
_TO_TIME_WAIT = ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING")


@dataclass(frozen=True)
class KernelStateEvent:
    """One kernel socket state change, seen from that socket (saddr/sport are its own)."""

    time: float  # time.monotonic() seconds
    saddr: str
    sport: int
    daddr: str
    dport: int
    old: str
    new: str
    sock: str = ""  # the kernel socket's (hashed) address when the tracer shows it: one per socket

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# parsing


_TRACE_LINE = re.compile(r"\s(\d+\.\d+):\s+inet_sock_set_state:\s+(.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)(?: \((-?\d+)\))?")


def _le_ipv4(value: int) -> str:
    # The "fields" output prints the u8[4] address as one little-endian integer.
    return socket.inet_ntoa((value & 0xFFFFFFFF).to_bytes(4, "little"))


def _v6_text(text: str) -> str | None:
    """An IPv6 address as the tracepoint printed it (%pI6c), in one canonical spelling (RFC 5952);
    None for an IPv4-mapped one (RFC 4291 §2.5.5.2): an AF_INET6 socket talking IPv4, left out as the
    lab's IPv4 sockets are AF_INET ones."""
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return None if addr.ipv4_mapped is not None else addr.compressed


def parse_trace_line(line: str) -> KernelStateEvent | None:
    """One trace_pipe line -> event (None for anything else: markers, non-TCP, IPv4-mapped IPv6).

    Understands the default print format (IPv4 and IPv6) and the "fields" option (which adds the
    socket address but cannot print IPv6 addresses: such lines are None).
    """
    match = _TRACE_LINE.search(line)
    if match is None:
        return None
    when = float(match.group(1))
    fields: dict[str, tuple[str, int | None]] = {}
    for key, raw, dec in _FIELD.findall(match.group(2)):
        fields[key] = (raw, int(dec) if dec else None)
    try:
        if fields["saddr"][1] is not None or fields["saddr"][0].startswith("0x"):
            # "fields" format: every value is "0xHEX (DEC)".
            if int(fields["family"][0], 16) != socket.AF_INET or int(fields["protocol"][0], 16) != 6:
                return None
            return KernelStateEvent(
                time=when,
                saddr=_le_ipv4(int(fields["saddr"][0], 16)), sport=int(fields["sport"][0], 16),
                daddr=_le_ipv4(int(fields["daddr"][0], 16)), dport=int(fields["dport"][0], 16),
                old=rfc_name_of_number(int(fields["oldstate"][0], 16)),
                new=rfc_name_of_number(int(fields["newstate"][0], 16)),
                sock=fields.get("skaddr", ("", None))[0],
            )
        if fields["protocol"][0] != "IPPROTO_TCP":
            return None
        if fields["family"][0] == "AF_INET6":
            saddr, daddr = _v6_text(fields["saddrv6"][0]), _v6_text(fields["daddrv6"][0])
            if saddr is None or daddr is None:
                return None
            return KernelStateEvent(
                time=when, saddr=saddr, sport=int(fields["sport"][0]), daddr=daddr, dport=int(fields["dport"][0]),
                old=rfc_name(fields["oldstate"][0]),
                new=rfc_name(fields["newstate"][0]),
            )
        if fields["family"][0] != "AF_INET":
            return None
        return KernelStateEvent(
            time=when,
            saddr=fields["saddr"][0], sport=int(fields["sport"][0]),
            daddr=fields["daddr"][0], dport=int(fields["dport"][0]),
            old=rfc_name(fields["oldstate"][0]),
            new=rfc_name(fields["newstate"][0]),
        )
    except (KeyError, ValueError):
        return None


def _split_endpoint(text: str) -> Endpoint | None:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host.startswith("::ffff:"):
        host = host[7:]
    host = host.split("%", 1)[0]  # "198.18.0.2%veth-s" when bound to a device
    if host == "*":
        host = "0.0.0.0"
    elif ":" in host:
        with contextlib.suppress(ValueError):
            host = ipaddress.IPv6Address(host).compressed
    if port == "*":
        port = "0"
    if not port.isdigit():
        return None
    return host, int(port)


def parse_ss_line(line: str) -> tuple[str, Endpoint, Endpoint] | None:
    """One `ss -tanH` line -> (RFC state, local, peer)."""
    parts = line.split()
    if len(parts) < 5:
        return None
    known = state_from_name(parts[0])
    state = known.value if known is not None else None
    local, peer = _split_endpoint(parts[3]), _split_endpoint(parts[4])
    if state is None or local is None or peer is None:
        return None
    return state, local, peer


# ----------------------------------------------------------------------------------------------
# sock_diag (netlink) — the fallback and the one-shot query


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_ALL_STATES = 0xFFFF_FFFF


@dataclass(frozen=True)
class DiagSocket:
    state: str
    local: Endpoint
    remote: Endpoint
    cookie: int


def sock_diag_dump(families: Iterable[int] = (socket.AF_INET, socket.AF_INET6)) -> list[DiagSocket]:
    """Every TCP socket of the current namespace, IPv4 and IPv6 (inet_diag, `ss` without the process)."""
    out: list[DiagSocket] = []
    for family in families:
        out.extend(_sock_diag_dump(family))
    return out


def _sock_diag_dump(family: int) -> list[DiagSocket]:
    seq = 1
    # struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid.
    req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, _ALL_STATES) + bytes(48)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0)
    out: list[DiagSocket] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.send(msg + req)
        while True:
            data = nl.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    return out
                if kind == _NLMSG_DONE:
                    return out
                if kind == _NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return out
                if kind == SOCK_DIAG_BY_FAMILY and (sock := _parse_diag_msg(data, off + 16)) is not None:
                    out.append(sock)
                off += (length + 3) & ~3


def _parse_diag_msg(data: bytes, off: int) -> DiagSocket | None:
    # struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (ports big-endian,
    # then 16 bytes per address: an IPv4 one in the first four).
    family, state = struct.unpack_from("=BB", data, off)
    sport, dport = struct.unpack_from("!HH", data, off + 4)
    if family == socket.AF_INET6:
        src, dst = (_diag_v6(data[off + a:off + a + 16]) for a in (8, 24))
        if src is None or dst is None:
            return None
    else:
        src = socket.inet_ntoa(data[off + 8:off + 12])
        dst = socket.inet_ntoa(data[off + 24:off + 28])
    (cookie,) = struct.unpack_from("=Q", data, off + 44)
    return DiagSocket(rfc_name_of_number(state), (src, sport), (dst, dport), cookie)


def _diag_v6(packed: bytes) -> str | None:
    # None for IPv4-mapped: an AF_INET6 socket talking IPv4, left out as the tracepoint reader does.
    addr = ipaddress.IPv6Address(packed)
    return None if addr.ipv4_mapped is not None else addr.compressed


class DiagTracker:
    """Turns successive sock_diag snapshots into state-change events."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.known: dict[tuple[Endpoint, Endpoint], str] = {}

    def update(self, sockets: Iterable[DiagSocket], now: float) -> list[KernelStateEvent]:
        seen: dict[tuple[Endpoint, Endpoint], str] = {}
        for s in sockets:
            if self.ports and s.local[1] not in self.ports and s.remote[1] not in self.ports:
                continue
            seen[(s.local, s.remote)] = s.state
        events = []
        for key, state in seen.items():
            old = self.known.get(key, "CLOSED")
            if old != state:
                events.append(KernelStateEvent(now, key[0][0], key[0][1], key[1][0], key[1][1], old, state))
        for key, old in self.known.items():
            if key not in seen:
                events.append(KernelStateEvent(now, key[0][0], key[0][1], key[1][0], key[1][1], old, "CLOSED"))
        self.known = seen
        return events


# ----------------------------------------------------------------------------------------------
# tracefs


def ensure_tracefs() -> Path:
    """Mount tracefs at /sys/kernel/tracing if needed; raises OSError if that is impossible."""
    if (TRACEFS / "instances").is_dir():
        return TRACEFS
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0 or not (TRACEFS / "instances").is_dir():
        raise OSError(errno.ENODEV, f"tracefs unavailable: {proc.stderr.strip() or 'mount failed'}")
    return TRACEFS


def _write(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _remove_instance(inst: Path) -> bool:
    with contextlib.suppress(OSError):
        _write(inst / "events" / EVENT / "enable", "0")
    with contextlib.suppress(OSError):
        _write(inst / "tracing_on", "0")
    for _ in range(100):  # EBUSY while a reader still holds trace_pipe
        try:
            inst.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return False
            time.sleep(0.01)
    return False


def reap_trace_instances() -> list[str]:
    """Remove rawtcp trace instances of this pid namespace whose process is dead; returns their names.

    Another pid namespace's instances (a container's, or the host's seen from one) are left alone: their
    pids cannot be checked from here."""
    try:
        root = ensure_tracefs() / "instances"
        names = sorted(p.name for p in root.iterdir())
    except OSError:
        return []
    removed = []
    for name in names:
        match = _INSTANCE_RE.match(name)
        if match is None or (match.group(1) is not None and int(match.group(1)) != pid_namespace()):
            continue
        if not pid_alive(int(match.group(2))) and _remove_instance(root / name):
            removed.append(name)
    return removed


def port_filter(ports: Iterable[int], family: int = socket.AF_INET) -> str:
    """The in-kernel event filter: TCP of one family (AF_INET 2, AF_INET6 10), and one of the ports on
    either side."""
    parts = sorted({int(p) for p in ports})
    base = f"family == {int(family)} && protocol == 6"
    if not parts:
        return base
    either = " || ".join(f"sport == {p} || dport == {p}" for p in parts)
    return f"{base} && ({either})"


_instance_counter = itertools.count()


@dataclass
class _TraceInstance:
    """One private tracefs instance and its open trace_pipe, with this watcher's sync-marker counts."""

    path: Path
    family: int
    fd: int | None = None
    written: int = 0
    seen: int = 0


class KernelStateWatcher:
    """Records kernel TCP state changes for some ports; see the module docstring.

    `netns` only matters for the sock_diag fallback (the tracepoint sees every namespace).
    `source`: "auto" (tracefs, else sock_diag), "tracefs" or "sock_diag".
    """

    stack = "linux"  # whose states these are (rawtcp.lab.stack.STACKS): the kernel's

    def __init__(self, netns: str | None = None, source: str = "auto", *, poll_interval: float = 0.002) -> None:
        if source not in ("auto", "tracefs", "sock_diag"):
            raise ValueError(f"unknown source {source!r}")
        self.netns = netns
        self.requested = source
        self.poll_interval = poll_interval
        self.source: str | None = None
        self._instances: list[_TraceInstance] = []
        self._events: list[KernelStateEvent] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._proc: subprocess.Popen[bytes] | None = None
        self._rounds = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, ports: Iterable[int] = ()) -> KernelStateWatcher:
        """Begin recording changes on sockets using any of `ports` (all TCP sockets if empty)."""
        if self._thread is not None:
            raise LabError("kernel state watcher already started")
        ports = {int(p) for p in ports}
        self._stop.clear()
        self._wake_r, self._wake_w = os.pipe()
        if self.requested in ("auto", "tracefs"):
            try:
                self._start_tracefs(ports)
            except OSError as exc:
                if self.requested == "tracefs":
                    self._close_wake()
                    raise LabError(f"cannot watch kernel states with tracefs: {exc.strerror or exc}") from None
        if self.source is None:
            self._start_sock_diag(ports)
        return self

    @property
    def instance(self) -> Path | None:
        """The (first, IPv4) trace instance in use, if any."""
        return self._instances[0].path if self._instances else None

    def _start_tracefs(self, ports: set[int]) -> None:
        root = ensure_tracefs()
        atexit.register(self._atexit)
        try:
            # IPv4 with the "fields" option (socket addresses), IPv6 in the default format (see above).
            for family, fields in ((socket.AF_INET, True), (socket.AF_INET6, False)):
                name = f"{INSTANCE_PREFIX}p{pid_namespace()}-{os.getpid()}-{next(_instance_counter)}"
                inst = _TraceInstance(root / "instances" / name, family)
                inst.path.mkdir()
                self._instances.append(inst)
                _write(inst.path / "trace_clock", "mono")  # comparable with time.monotonic()
                with contextlib.suppress(OSError):
                    _write(inst.path / "buffer_percent", "0")  # wake the reader on every event, not at half-full
                if fields:
                    with contextlib.suppress(OSError):
                        _write(inst.path / "options" / "fields", "1")  # adds the socket address (kernel >= 6.x)
                with contextlib.suppress(OSError):
                    _write(inst.path / "buffer_size_kb", "512")
                _write(inst.path / "events" / EVENT / "filter", port_filter(ports, family))
                inst.fd = os.open(inst.path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
                _write(inst.path / "events" / EVENT / "enable", "1")
        except BaseException:
            self._cleanup_tracefs()
            raise
        self.source = "tracefs"
        self._thread = threading.Thread(target=self._read_tracefs, name="kstate-tracefs", daemon=True)
        self._thread.start()

    def _start_sock_diag(self, ports: set[int]) -> None:
        self.source = "sock_diag"
        if self.netns is None:
            target = self._poll_local
            args: tuple[Any, ...] = (ports,)
        else:
            from rawtcp.lab.process import child_env  # the same PYTHONPATH care as the listener

            cmd = ["ip", "netns", "exec", self.netns, sys.executable, "-m", "rawtcp.lab.kstate", "poll",
                   "--interval", str(self.poll_interval)]
            if ports:
                cmd += ["--ports", ",".join(str(p) for p in sorted(ports))]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=child_env())
            assert self._proc.stdout is not None
            line = readline_with_timeout(self._proc.stdout.fileno(), 15.0)
            if line.strip() != b"ready":
                err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
                self._kill_proc()
                self._close_wake()
                self.source = None
                raise LabError(f"cannot watch kernel states in {self.netns}: {err.splitlines()[-1:] or line}")
            target = self._read_poller
            args = ()
        self._thread = threading.Thread(target=target, args=args, name="kstate-diag", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop recording; the trace instance is disabled and removed (recorded events stay)."""
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._kill_proc()
        self._cleanup_tracefs()
        self._close_wake()
        with self._cond:
            self._cond.notify_all()

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _close_wake(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    def _cleanup_tracefs(self) -> None:
        instances, self._instances = self._instances, []
        for inst in instances:
            if inst.fd is not None:
                with contextlib.suppress(OSError):
                    _write(inst.path / "events" / EVENT / "enable", "0")
                os.close(inst.fd)
                inst.fd = None
            _remove_instance(inst.path)
        if instances:
            atexit.unregister(self._atexit)

    def _kill_proc(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=2)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> KernelStateWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- readers (background threads) -----------------------------------------------------------

    def _add(self, events: list[KernelStateEvent], markers: int = 0,
             instance: _TraceInstance | None = None) -> None:
        with self._cond:
            # Two instances (IPv4, IPv6) are read in turn: keep the record in time order.
            out_of_order = bool(events and self._events and events[0].time < self._events[-1].time)
            self._events.extend(events)
            if out_of_order:
                self._events.sort(key=lambda e: e.time)
            if instance is not None:
                instance.seen += markers
            self._cond.notify_all()

    def _read_tracefs(self) -> None:
        instances = [inst for inst in self._instances if inst.fd is not None]
        poller = select.poll()
        for inst in instances:
            poller.register(inst.fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        pending = {inst.fd: b"" for inst in instances}
        while not self._stop.is_set():
            poller.poll(50)  # a timeout too: some kernels defer the wakeup of trace_pipe readers
            for inst in instances:
                fd = inst.fd
                assert fd is not None
                while True:
                    try:
                        chunk = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        break
                    except OSError:
                        return
                    if not chunk:
                        break
                    pending[fd] += chunk
                if b"\n" not in pending[fd]:
                    continue
                *lines, pending[fd] = pending[fd].split(b"\n")
                events, markers = [], 0
                for raw in lines:
                    line = raw.decode(errors="replace")
                    # Our sync markers; the "fields" option prints them as "UNKNOWN TYPE" (no text).
                    if "tracing_mark_write:" in line or "UNKNOWN TYPE" in line:
                        markers += 1
                        continue
                    event = parse_trace_line(line)
                    if event is not None:
                        events.append(self._time_wait(event))
                self._add(events, markers, inst)

    def _time_wait(self, event: KernelStateEvent) -> KernelStateEvent:
        """Report TIME-WAIT where the tracepoint says CLOSED.

        Linux hands a connection entering TIME-WAIT to a separate timewait socket and closes the
        full one: the tracepoint shows FIN-WAIT-2 (or CLOSING, FIN-WAIT-1) -> CLOSED. The timewait
        socket is already in the table by then, so one sock_diag look-up in `netns` tells them apart.
        """
        if event.new != "CLOSED" or event.old not in _TO_TIME_WAIT or self.netns is None:
            return event
        try:
            now = kernel_socket_state(self.netns, (event.saddr, event.sport), (event.daddr, event.dport))
        except LabError:
            return event
        return dataclasses.replace(event, new="TIME-WAIT") if now == "TIME-WAIT" else event

    def _poll_local(self, ports: set[int]) -> None:
        tracker = DiagTracker(ports)
        while not self._stop.is_set():
            try:
                events = tracker.update(sock_diag_dump(), time.monotonic())
            except OSError:
                events = []
            with self._cond:
                self._rounds += 1
            self._add(events)
            self._stop.wait(self.poll_interval)

    def _read_poller(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            if self._stop.is_set():
                break
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if obj.get("round"):
                with self._cond:
                    self._rounds += 1
                    self._cond.notify_all()
                continue
            self._add([KernelStateEvent(**obj)])

    # -- queries ----------------------------------------------------------------------------------

    def sync(self, timeout: float = 1.0) -> bool:
        """Wait until every state change that happened before this call has been recorded."""
        deadline = time.monotonic() + timeout
        if self.source == "tracefs" and self._instances:
            # A marker written now is read after every event recorded before it (each pipe is in
            # time order), and only this watcher writes to its private instances: count them.
            with self._cond:
                for inst in self._instances:
                    try:
                        _write(inst.path / "trace_marker", "rawtcp-sync")
                    except OSError:
                        return False
                    inst.written += 1
                while any(inst.seen < inst.written for inst in self._instances):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            return True
        with self._cond:
            target = self._rounds + 2  # a whole poll round that began after this call
            while self._rounds < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True

    def events(self) -> list[KernelStateEvent]:
        with self._cond:
            return list(self._events)

    def events_for(self, local: Endpoint, remote: Endpoint) -> list[KernelStateEvent]:
        """Changes of the kernel socket whose own address is `local` and whose peer is `remote`."""
        with self._cond:
            all_events = list(self._events)
        matched = [e for e in all_events if (e.saddr, e.sport) == tuple(local) and (e.daddr, e.dport) == tuple(remote)]
        if not matched:
            return []
        # A connect()ing socket reports SYN-SENT before it has a port (sport 0): tie it by socket.
        socks = {e.sock for e in matched if e.sock}
        first = matched[0].time
        extra = [
            e for e in all_events
            if e.sport == 0 and e.new == "SYN-SENT" and (e.daddr, e.dport) == tuple(remote)
            and e.time <= first and ((e.sock and e.sock in socks) or (not e.sock and e.saddr == local[0]))
        ]
        if extra and not socks:
            extra = extra[-1:]
        return sorted(extra + matched, key=lambda e: e.time)

    def current(self, local: Endpoint, remote: Endpoint) -> str | None:
        """The socket's latest recorded state (None if no change has been seen)."""
        events = self.events_for(local, remote)
        return events[-1].new if events else None

    def wait_for(self, local: Endpoint, remote: Endpoint, state: str, timeout: float,
                 since: float | None = None) -> bool:
        """Wait until the socket has entered `state` (at or after `since`); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                # events_for takes the same (re-entrant) lock.
                with_state = [e for e in self.events_for(local, remote) if e.new == state]
                if any(since is None or e.time >= since for e in with_state):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))


# ----------------------------------------------------------------------------------------------
# one-shot query


def kernel_socket_state(netns: str | None, local: Endpoint, remote: Endpoint) -> str | None:
    """The state `ss` reports now for the kernel socket local<->remote in `netns` (None: no socket)."""
    cmd = ["ss"] + (["-N", netns] if netns else []) + ["-tanH"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError:
        raise LabError("ss not found: install iproute2 (apt-get install iproute2)") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise LabError(f"ss in {netns or 'this namespace'} failed: {lines[0] if lines else proc.returncode}")
    for line in proc.stdout.splitlines():
        parsed = parse_ss_line(line)
        if parsed and parsed[1] == tuple(local) and parsed[2] == tuple(remote):
            return parsed[0]
    return None


# ----------------------------------------------------------------------------------------------
# `python -m rawtcp.lab.kstate poll`: the sock_diag poller run inside a namespace


def _poll_main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rawtcp.lab.kstate")
    parser.add_argument("command", choices=["poll"])
    parser.add_argument("--ports", default="", help="comma-separated ports (default: all)")
    parser.add_argument("--interval", type=float, default=0.002)
    args = parser.parse_args(argv)
    ports = {int(p) for p in args.ports.split(",") if p.strip()}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        # Our reader went away (stdin closed): stop, never outlive it.
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(1):
                pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    tracker = DiagTracker(ports)
    out = sys.stdout
    try:
        out.write("ready\n")
        out.flush()
        while not stop.is_set():
            for event in tracker.update(sock_diag_dump(), time.monotonic()):
                out.write(json.dumps(event.to_dict()) + "\n")
            out.write('{"round": 1}\n')
            out.flush()
            stop.wait(args.interval)
    except (BrokenPipeError, OSError):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(_poll_main(sys.argv[1:]))
