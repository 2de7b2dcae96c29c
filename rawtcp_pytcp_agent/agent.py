# rawtcp's agent for PyTCP. Copyright (C) the rawtcp authors.
# SPDX-License-Identifier: GPL-3.0-or-later (it imports PyTCP, which is GPL-3.0); see __init__.py.
"""PyTCP on a TAP device, driven over rawtcp's agent protocol (docs/agent-protocol.md).

One process: PyTCP's stack (its own threads), a control socket serving the protocol (one thread per
connection: a script run's system calls, a state watcher's ``states`` long-polls), and optionally the
lab's echo/sink/seed listener on PyTCP's sockets. PyTCP's TCP state changes are recorded with
CLOCK_MONOTONIC times by wrapping the one method every change goes through (``_change_state``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno as errno_mod
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import Any

from rawtcp.lab import listener as kernel_listener
from rawtcp.script import syscall_helper
from rawtcp.script.callexpr import is_tag, s32_value
from rawtcp.script.syscall_helper import Helper, Unsupported
from rawtcp.script.syscalls import Addresses, CallResult, CallScriptError, Executor, ScriptFd, buffer_kind, check_argc

STACK = "pytcp"
# PyTCP's FsmState names in RFC 9293's spelling (the ladder's vocabulary).
STATE_NAMES = {
    "CLOSED": "CLOSED", "LISTEN": "LISTEN", "SYN_SENT": "SYN-SENT", "SYN_RCVD": "SYN-RECEIVED",
    "ESTABLISHED": "ESTABLISHED", "FIN_WAIT_1": "FIN-WAIT-1", "FIN_WAIT_2": "FIN-WAIT-2", "CLOSING": "CLOSING",
    "CLOSE_WAIT": "CLOSE-WAIT", "LAST_ACK": "LAST-ACK", "TIME_WAIT": "TIME-WAIT",
}
SEED_MSS = 1024
# setsockopt()s PyTCP has no knob for but whose absence does not change what a lab checks: taken,
# with a note in the reply, instead of refusing the whole script.
_ADVISORY_OPTIONS = {("SOL_SOCKET", "SO_REUSEADDR"), ("SOL_TCP", "TCP_QUICKACK"), ("IPPROTO_TCP", "TCP_QUICKACK"),
                     ("SOL_TCP", "TCP_NODELAY"), ("IPPROTO_TCP", "TCP_NODELAY")}
_ERRNO_RE = re.compile(r"\[Errno (-?\d+)\]")


# ----------------------------------------------------------------------------------------------
# state changes


class StateLog:
    """Every TCP state change PyTCP made, in order; ``since`` indexes let watchers read only new ones."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def add(self, event: dict[str, Any]) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def since(self, index: int, wait: float) -> tuple[list[dict[str, Any]], int]:
        deadline = time.monotonic() + max(0.0, min(wait, 5.0))
        with self.cond:
            while len(self.events) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.events[index:], len(self.events)


def hook_states(log: StateLog) -> None:
    """Record every PyTCP session's state change (the stack has no tracepoint: wrap its one setter)."""
    from pytcp.protocols.tcp.session import TcpSession

    original = TcpSession._change_state

    def _change_state(self: Any, state: Any) -> None:
        old = self._state
        # stamped before the change runs: the segment that caused it is sent after it
        log.add({"time": time.monotonic(), "saddr": str(self._local_ip_address), "sport": int(self._local_port),
                 "daddr": str(self._remote_ip_address), "dport": int(self._remote_port),
                 "old": STATE_NAMES.get(old.name, old.name), "new": STATE_NAMES.get(state.name, state.name),
                 "sock": f"pytcp-{id(self):x}"})
        original(self, state)

    TcpSession._change_state = _change_state  # type: ignore[method-assign]


# ----------------------------------------------------------------------------------------------
# the listeners: rawtcp's own echo/sink/seed code over PyTCP's sockets


class SocketAdapter:
    """The little of Python's socket API rawtcp.lab.listener.serve() uses, over a PyTCP socket."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def recv(self, n: int) -> bytes:
        return bytes(self.sock.recv(n))

    def sendall(self, data: bytes) -> None:
        self.sock.send(bytes(data))

    def getsockname(self) -> tuple[str, int]:
        return str(self.sock.local_ip_address), int(self.sock.local_port)

    def close(self) -> None:
        self.sock.close()


def run_listener(family: Any, addr: str, port: int, mode: str, log: Any, close_delay: float) -> None:
    from pytcp.lib import socket as psocket

    sock = psocket.socket(family=family, type=psocket.SOCK_STREAM)
    sock.bind((addr, port))
    sock.listen()
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=kernel_listener.serve, args=(SocketAdapter(conn), peer, mode, log, close_delay),
                         daemon=True).start()


# ----------------------------------------------------------------------------------------------
# system calls


def _errno_of(exc: BaseException) -> int:
    """PyTCP raises OSErrors whose errno lives only in the message ("[Errno 98] ...")."""
    if isinstance(exc, OSError) and exc.errno:
        return int(exc.errno)
    match = _ERRNO_RE.search(str(exc))
    return abs(int(match.group(1))) if match else errno_mod.EIO


class _Failed(OSError):
    pass


def _symbol(expr: Any) -> str | None:
    return str(expr["word"]) if is_tag(expr, "word") else None


class PytcpExecutor(Executor):
    """packetdrill's system calls on PyTCP's socket API: what it has (socket, bind, listen, accept,
    connect, read/recv, write/send, close); the rest is unsupported for this stack."""

    CALLS = frozenset({"socket", "bind", "listen", "accept", "connect", "read", "recv", "write", "send", "close",
                       "setsockopt", "getsockname", "getpeername"})

    def call(self, name: str, args: list[Any], expected: Any, want_errno: str | None) -> Any:
        self.check_call(name, args)
        return super().call(name, args, expected, want_errno)

    def check_call(self, name: str, args: list[Any]) -> None:
        """Unsupported if PyTCP's socket API cannot express this call: the one set of rules, applied before
        each call is made and to a whole script before its first packet (the protocol's ``check``).
        Arguments it cannot read are left for the call itself to report."""
        if name not in self.CALLS:
            raise Unsupported(f"{name}() has no counterpart in PyTCP's socket API")
        # a malformed argument is the script's error, which the call itself reports as packetdrill does
        with contextlib.suppress(CallScriptError):
            self._check_arguments(name, args)

    def _check_arguments(self, name: str, args: list[Any]) -> None:
        if name == "socket":
            if self.addrs.mode == "ipv4-mapped-ipv6":
                raise Unsupported("the ipv4-mapped-ipv6 mode (PyTCP's AF_INET6 sockets are IPv6 only)")
            kind = s32_value(args[1], "type") if len(args) > 1 else socket.SOCK_STREAM
            if kind & 0xF != socket.SOCK_STREAM or kind & ~0xF:
                raise Unsupported("socket types other than a plain SOCK_STREAM")
        elif name == "connect" and len(args) > 1 and not (is_tag(args[1], "ell") or is_tag(args[1], "struct")):
            raise Unsupported("connect(AF_UNSPEC) (a disconnect)")
        elif name == "setsockopt" and len(args) > 2:
            level, option = _symbol(args[1]), _symbol(args[2])
            if (level, option) not in _ADVISORY_OPTIONS:
                shown = f"{level or s32_value(args[1], 'level')}, {option or s32_value(args[2], 'option name')}"
                raise Unsupported(f"setsockopt({shown}): PyTCP's socket API has no socket options")
        elif name in ("read", "recv", "write", "send") and len(args) > 1:
            if buffer_kind(args[1]) == "null":
                raise Unsupported(f"{name}() with a NULL buffer")
            if len(args) > 3 and s32_value(args[3], "flags") != 0:
                raise Unsupported(f"{name}() flags (PyTCP's socket API takes none)")

    def _live_number(self) -> int:
        """The lowest free descriptor number from 3, as a kernel would hand out."""
        with self._lock:
            used = {e.fd for e in (*self.fds.values(), *self._shadowed)}
        num = 3
        while num in used:
            num += 1
        return num

    def _pick(self, expr: Any, default_ip: str, default_port: int) -> tuple[str, int]:
        if is_tag(expr, "ell"):
            return default_ip, default_port
        if is_tag(expr, "struct"):
            return self._struct_address(expr, default_ip, default_port)
        raise CallScriptError("a socket address must be ... or {sin_family=..., sin_port=..., sin_addr=...}")

    def _family(self, sock: Any) -> str:
        return "6" if str(sock.family).endswith("6") else "4"

    def _ip_for(self, sock: Any, ip: str) -> str:
        if self._family(sock) == "6" and ":" not in ip:
            raise Unsupported("IPv4-mapped IPv6 addresses (PyTCP's AF_INET6 sockets are IPv6 only)")
        return ip

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (OSError, AssertionError) as exc:
            err = _errno_of(exc) if isinstance(exc, OSError) else errno_mod.EINVAL
            raise _Failed(err, str(exc)) from None

    def _do_socket(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        from pytcp.lib import socket as psocket

        check_argc("socket", args, 3)
        domain = self.addrs.socket_domain if is_tag(args[0], "ell") else s32_value(args[0], "domain")
        family = psocket.AF_INET6 if domain == socket.AF_INET6 else psocket.AF_INET4
        sock = psocket.socket(family=family, type=psocket.SOCK_STREAM)
        live = self._live_number()
        entry = ScriptFd("socket", live, sock)
        return CallResult(self._script_num(expected, live),
                     after=lambda: self._register(self._script_num(expected, live), entry, under_test=True),
                     undo=lambda: None)

    def _psock(self, expr: Any) -> Any:
        return self._sock(expr)

    def _do_bind(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("bind", args, 3)
        sock = self._psock(args[0])
        ip, port = self._pick(args[1], self.addrs.local_ip, self.addrs.bind_port)
        self._guard(sock.bind, (self._ip_for(sock, ip), port))
        return CallResult(0)

    def _do_listen(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("listen", args, 2)
        sock = self._psock(args[0])
        self._guard(sock.listen)  # PyTCP has no backlog: every completed handshake waits for accept()
        return CallResult(0)

    def _do_accept(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("accept", args, 3)
        sock = self._psock(args[0])
        conn, _addr = self._guard(sock.accept)
        live = self._live_number()
        entry = ScriptFd("socket", live, conn)
        return CallResult(self._script_num(expected, live),
                     after=lambda: self._register(self._script_num(expected, live), entry, under_test=True,
                                                  shadow=True),
                     undo=lambda: self._discard(entry))

    def _do_connect(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("connect", args, 3)
        sock = self._psock(args[0])
        ip, port = self._pick(args[1], self.addrs.remote_ip, self.addrs.connect_port)
        self._guard(sock.connect, (self._ip_for(sock, ip), port))
        return CallResult(0)

    def _data_args(self, name: str, args: list[Any], counts: tuple[int, ...]) -> tuple[Any, str, int]:
        check_argc(name, args, *counts)
        sock = self._psock(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        return sock, kind, count

    def _do_read(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        sock, _kind, count = self._data_args("read", args, (3,))
        data = bytes(self._guard(sock.recv, count))
        return CallResult(len(data), after=lambda: self._content(args[1], data))

    def _do_recv(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        sock, _kind, count = self._data_args("recv", args, (3, 4))
        data = bytes(self._guard(sock.recv, count))
        return CallResult(len(data), after=lambda: self._content(args[1], data))

    def _do_write(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        sock, _kind, count = self._data_args("write", args, (3,))
        return CallResult(int(self._guard(sock.send, self._payload(args[1], count))))

    def _do_send(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        sock, _kind, count = self._data_args("send", args, (3, 4))
        return CallResult(int(self._guard(sock.send, self._payload(args[1], count))))

    def _do_close(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("close", args, 1)
        num = int(s32_value(args[0], "a file descriptor"))
        with self._lock:
            entry = self.fds.pop(num, None)
        if entry is None:
            raise _Failed(errno_mod.EBADF, "bad file descriptor")
        self._discard(entry)
        return CallResult(0)

    def _do_setsockopt(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("setsockopt", args, 5)
        self._psock(args[0])
        level, name = _symbol(args[1]), _symbol(args[2])
        # check_call let only the options whose absence cannot change what a script checks through
        extra["note"] = f"setsockopt({level}, {name}) taken but has no effect: PyTCP has no such option"
        return CallResult(0)

    def _do_getsockname(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        sock = self._psock(args[0])
        return self._address_check(args, lambda: (str(sock.local_ip_address), sock.local_port), "getsockname")

    def _do_getpeername(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        sock = self._psock(args[0])
        return self._address_check(args, lambda: (str(sock.remote_ip_address), sock.remote_port), "getpeername")

    def _sockaddr_for(self, sock: Any, ip: str, port: int) -> tuple[Any, ...]:
        return (ip, port)

    def _discard(self, entry: ScriptFd) -> None:
        with contextlib.suppress(Exception):  # a socket PyTCP already tore down (RST) has no session to close
            if entry.sock is not None and entry.sock.tcp_session is not None:
                entry.sock.close()

    def tcp_info(self) -> dict[str, int]:
        raise Unsupported("%{ }% blocks (struct tcp_info): PyTCP keeps no such counters")

    def state_of(self, fd: Any) -> str:
        num = self.sut if fd is None else int(fd)
        with self._lock:
            entry = self.fds.get(num) if num is not None else None
        if entry is None or entry.sock is None:
            raise CallScriptError(f"state: no socket with script fd {num}")
        return STATE_NAMES.get(entry.sock.state.name, entry.sock.state.name)


class AgentHelper(Helper):
    """The Linux helper's request loop, plus what only an agent with a state log answers."""

    def __init__(self, executor: Executor, write: Any, states: StateLog) -> None:
        super().__init__(executor, write)
        self.states = states

    def state(self, fd: Any) -> str:
        assert isinstance(self.executor, PytcpExecutor)
        return self.executor.state_of(fd)

    def listening(self) -> list[dict[str, Any]]:
        return listening_sockets()  # PyTCP's, not the namespace kernel's (which has no address here)

    def check(self, req: dict[str, Any]) -> dict[str, Any]:
        """The protocol's ``check``: the first of a script's calls PyTCP cannot express, before any packet,
        so a script is unsupported whatever the stack did before that call."""
        assert isinstance(self.executor, PytcpExecutor)
        for call in req.get("calls") or []:
            try:
                self.executor.check_call(str(call.get("name")), list(call.get("args") or []))
            except Unsupported as exc:
                return {"unsupported": str(exc), "line": call.get("line")}
        return {"ok": True}

    def extra_op(self, op: Any, req: dict[str, Any]) -> None:
        rid = req.get("id")
        if op == "check":
            self.reply({"id": rid, **self.check(req)})
        elif op == "states":
            events, nxt = self.states.since(int(req.get("since") or 0), float(req.get("wait") or 0.0))
            self.reply({"id": rid, "events": events, "next": nxt})
        else:
            super().extra_op(op, req)


def listening_sockets() -> list[dict[str, Any]]:
    """PyTCP's TCP sockets in LISTEN, from its socket table (``ss`` cannot see them: they are not the kernel's)."""
    from pytcp.lib import stack as pstack

    found = []
    for sock in list(pstack.sockets.values()):
        session = getattr(sock, "tcp_session", None)
        if session is not None and session.state.name == "LISTEN":
            found.append({"addr": str(sock.local_ip_address), "port": int(sock.local_port)})
    return found


# ----------------------------------------------------------------------------------------------
# the control socket


def serve_connection(conn: socket.socket, states: StateLog, defaults: dict[str, Any]) -> None:
    """One client: a hello line (the run's addresses, or ``watch``), ``ready``, then requests."""
    lock = threading.Lock()

    def send(line: str) -> None:
        with lock, contextlib.suppress(OSError):
            conn.sendall(line.encode())

    with conn, conn.makefile("r", encoding="utf-8", errors="replace") as rfile:
        try:
            hello = json.loads(rfile.readline() or "{}")
            hello = hello if isinstance(hello, dict) else {}
            addrs = Addresses(str(hello.get("local_ip") or defaults["local_ip"]),
                              str(hello.get("remote_ip") or defaults["remote_ip"]),
                              int(hello.get("bind_port", 8080)), int(hello.get("connect_port", 8080)),
                              str(hello.get("ip_version", "ipv4")), tuple(hello.get("script_local_ips", ())),
                              tuple(hello.get("script_remote_ips", ())))
        except (ValueError, TypeError) as exc:
            send(json.dumps({"id": 0, "error": f"bad hello: {exc}"}) + "\n")
            return
        helper = AgentHelper(PytcpExecutor(addrs), send, states)
        ops = ["call", "check", "cmd", "config", "state", "states", "listening", "exit"]
        helper.reply(syscall_helper.ready_message(STACK, version=_pytcp_version(), interface=defaults["interface"],
                                                  ops=ops))
        helper.serve(rfile)


def _pytcp_version() -> str:
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        return version("pytcp")
    return "unknown"


def _serve_unix(path: str, states: StateLog, defaults: dict[str, Any]) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # 0600: whoever may connect may make system calls in the lab
    try:
        srv.bind(path)
    finally:
        os.umask(old)
    srv.listen(16)
    threading.Thread(target=_accept_loop, args=(srv, states, defaults), daemon=True).start()
    return srv


def _accept_loop(srv: socket.socket, states: StateLog, defaults: dict[str, Any]) -> None:
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        threading.Thread(target=serve_connection, args=(conn, states, defaults), daemon=True).start()


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rawtcp_pytcp_agent", description="PyTCP for rawtcp's labs")
    parser.add_argument("--interface", required=True, help="the TAP device PyTCP runs on (it must exist)")
    parser.add_argument("--mac", required=True)
    parser.add_argument("--ip4", required=True, help="PyTCP's IPv4 address, ADDR/PREFIX")
    parser.add_argument("--ip6", help="PyTCP's IPv6 address, ADDR/PREFIX")
    parser.add_argument("--neighbour", action="append", default=[], metavar="IP=MAC",
                        help="a static ARP / neighbour entry (the lab's client), so no resolution precedes a SYN")
    parser.add_argument("--control", required=True, help="the unix socket the agent protocol is served on")
    parser.add_argument("--listener", choices=("echo", "sink", "seed"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--close-delay", type=float, default=0.3)
    parser.add_argument("--log", help="one JSON line per finished listener connection")
    args = parser.parse_args(argv)
    devnull = os.open(os.devnull, os.O_WRONLY)
    real_stdout = os.dup(1)
    os.dup2(devnull, 1)  # PyTCP prints its log to stdout; only our "ready" line may reach the parent
    os.close(devnull)
    from pytcp import TcpIpStack, config
    from pytcp.lib import socket as psocket
    from pytcp.lib import stack as pstack
    from pytcp.lib.ip4_address import Ip4Address
    from pytcp.lib.mac_address import MacAddress

    config.LOG_CHANEL = set()
    if args.listener == "seed":
        # PyTCP announces MSS = MTU - 40 and has no TCP_MAXSEG: the seed server's MSS 1024 is an MTU of 1064
        config.TAP_MTU = SEED_MSS + 40
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    states = StateLog()
    hook_states(states)
    tcpip = TcpIpStack(interface=args.interface, mac_address=args.mac, ip4_address=args.ip4,
                       ip6_address=args.ip6)
    if args.ip6 is None:
        config.IP6_SUPPORT = False  # an IPv4-only lab: no IPv6 autoconfiguration chatter on its link
    tcpip.start()
    for item in args.neighbour:
        ip, _, mac = item.partition("=")
        if ":" not in ip:
            pstack.arp_cache.add_entry(Ip4Address(ip), MacAddress(mac))
        else:
            with contextlib.suppress(Exception):
                from pytcp.lib.ip6_address import Ip6Address

                pstack.nd_cache.add_entry(Ip6Address(ip), MacAddress(mac))
    ip4 = args.ip4.split("/")[0]
    defaults = {"local_ip": ip4, "remote_ip": "", "interface": args.interface}
    srv = _serve_unix(args.control, states, defaults)
    if args.listener:
        fh = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        log = kernel_listener.EventLog(fh)
        targets = [(psocket.AF_INET4, ip4)]
        if args.ip6:
            targets.append((psocket.AF_INET6, args.ip6.split("/")[0]))
        for family, addr in targets:
            threading.Thread(target=run_listener, args=(family, addr, args.port, args.listener, log,
                                                       args.close_delay), daemon=True).start()
    os.write(real_stdout, f"ready {args.port}\n".encode())
    os.close(real_stdout)
    try:
        while True:
            time.sleep(3600)
    except _Stop:
        pass
    finally:
        srv.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.control)
        # PyTCP's threads are not daemons: leave at once rather than wait for them
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
