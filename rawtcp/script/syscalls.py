"""The script's system calls, executed on real sockets inside the kernel-under-test's namespace.

This module runs in the helper process (``python -m rawtcp.script.syscall_helper``), started with
``ip netns exec`` so that every socket it opens belongs to the kernel under test. The runner sends
each call as JSON (the parsed expressions, tagged); the helper runs it, checks the result and the
errno as packetdrill's run_system_call.c does, and answers with the result, the check's verdict and
the call's start and end times on CLOCK_MONOTONIC (one clock for every namespace, so the runner
can compare them with its own packet times).

Script file descriptors are not the live ones: like packetdrill, ``socket(...) = 3`` makes script
fd 3 stand for whatever descriptor the kernel returned.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fcntl
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rawtcp.script import ast
from rawtcp.script.tcpinfo import TCP_INFO_SIZE, parse_tcp_info

SUPPORTED = frozenset({
    "socket", "setsockopt", "getsockopt", "bind", "listen", "accept", "connect", "read", "write",
    "send", "recv", "readv", "writev", "shutdown", "close", "fcntl", "ioctl", "poll",
})

# packetdrill's default addresses (config.c): the local (kernel) side and the remote (peer) side.
# Explicit addresses in a script are mapped onto the lab's.
PACKETDRILL_LOCAL_IPS = ("192.168.0.1", "192.168.0.2")
PACKETDRILL_REMOTE_IPS = ("192.0.2.1",)

_EXTRA_CONSTANTS = {
    "SOL_TCP": socket.IPPROTO_TCP, "SOL_IP": socket.IPPROTO_IP, "SOL_IPV6": 41,
    "SIOCINQ": 0x541B, "SIOCOUTQ": 0x5411, "FIONREAD": 0x541B, "FIONBIO": 0x5421,
    "TCP_FASTOPEN_CONNECT": 30, "TCP_ZEROCOPY_RECEIVE": 35, "TCP_INQ": 36, "TCP_TX_DELAY": 37,
    "TCP_REPAIR": 19, "TCP_THIN_LINEAR_TIMEOUTS": 16, "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28,
    "SO_ZEROCOPY": 60, "SO_MAX_PACING_RATE": 47, "SO_TIMESTAMPING": 37,
    "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000,
    "POLLRDHUP": 0x2000,
    "O_RDWR": os.O_RDWR, "O_RDONLY": os.O_RDONLY, "O_WRONLY": os.O_WRONLY, "O_NONBLOCK": os.O_NONBLOCK,
    "F_GETFL": fcntl.F_GETFL, "F_SETFL": fcntl.F_SETFL, "F_GETFD": fcntl.F_GETFD, "F_SETFD": fcntl.F_SETFD,
    "FD_CLOEXEC": fcntl.FD_CLOEXEC,
    "SHUT_RD": socket.SHUT_RD, "SHUT_WR": socket.SHUT_WR, "SHUT_RDWR": socket.SHUT_RDWR,
    "NULL": 0,
}


def _constants() -> dict[str, int]:
    table: dict[str, int] = {}
    for module in (socket, select, errno_mod):
        for name in dir(module):
            if name.isupper() and not name.startswith("_"):
                value = getattr(module, name)
                if isinstance(value, int) and not isinstance(value, bool):
                    table.setdefault(name, int(value))
    table.update(_EXTRA_CONSTANTS)
    return table


CONSTANTS = _constants()


# ---------------------------------------------------------------------------------------------
# expressions on the wire between runner and helper


def encode_expr(expr: ast.Expr) -> Any:
    """A parsed expression as plain JSON (tagged dicts)."""
    if isinstance(expr, ast.Int):
        return {"int": expr.value}
    if isinstance(expr, ast.Str):
        return {"str": expr.value, "trunc": expr.truncated}
    if isinstance(expr, ast.EllipsisExpr):
        return {"ell": True}
    if isinstance(expr, ast.Word):
        return {"word": expr.name}
    if isinstance(expr, ast.Call):
        return {"call": expr.name, "args": [encode_expr(a) for a in expr.args]}
    if isinstance(expr, ast.Binary):
        return {"or": [encode_expr(expr.lhs), encode_expr(expr.rhs)]}
    if isinstance(expr, ast.Assign):
        return {"assign": expr.name, "value": encode_expr(expr.value)}
    if isinstance(expr, ast.ListExpr):
        return {"list": [encode_expr(i) for i in expr.items]}
    if isinstance(expr, ast.Struct):
        return {"struct": [encode_expr(i) for i in expr.items]}
    raise TypeError(f"unknown expression {expr!r}")


class CallScriptError(Exception):
    """The script asks for something this runner cannot do (unknown symbol, bad argument shape)."""


def _is(expr: Any, tag: str) -> bool:
    return isinstance(expr, dict) and tag in expr


def int_value(expr: Any, what: str = "value") -> int:
    if _is(expr, "int"):
        return int(expr["int"])
    if _is(expr, "word"):
        name = expr["word"]
        if name not in CONSTANTS:
            raise CallScriptError(f"unknown symbol '{name}' for {what}")
        return CONSTANTS[name]
    if _is(expr, "or"):
        lhs, rhs = expr["or"]
        return int_value(lhs, what) | int_value(rhs, what)
    if _is(expr, "call") and expr["call"] in ("htons", "htonl", "ntohs", "ntohl") and len(expr["args"]) == 1:
        return int_value(expr["args"][0], what)
    if _is(expr, "list") and len(expr["list"]) == 1:
        return int_value(expr["list"][0], what)
    raise CallScriptError(f"expected an integer for {what}")


def errno_name(num: int) -> str:
    return errno_mod.errorcode.get(num, str(num))


def _errno_text(num: int) -> str:
    return f"{num} ({os.strerror(num)})" if num else "0 (Success)"


# ---------------------------------------------------------------------------------------------
# the executor


@dataclass
class Addresses:
    """Where ``...`` points: the kernel's own address (bind) and the peer's (connect)."""

    local_ip: str
    remote_ip: str
    bind_port: int = 8080
    connect_port: int = 8080


@dataclass
class Outcome:
    ret: int
    err: int = 0
    error: str | None = None  # the packetdrill-style complaint, None when the call matched the script
    start: float = 0.0
    end: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ret": self.ret, "errno": self.err, "error": self.error, "start": self.start, "end": self.end,
                **self.extra}


class Executor:
    """Runs one script's system calls; keeps the script-fd to socket map and the socket under test."""

    def __init__(self, addrs: Addresses) -> None:
        self.addrs = addrs
        self.socks: dict[int, socket.socket] = {}
        self.sut: int | None = None  # packetdrill's socket under test: the last socket()/accept()
        self._lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------------------

    def _sock(self, expr: Any) -> socket.socket:
        fd = int_value(expr, "a file descriptor")
        with self._lock:
            sock = self.socks.get(fd)
        if sock is None:
            raise _CallFailed(errno_mod.EBADF)
        return sock

    def _sockaddr(self, expr: Any, default_ip: str, default_port: int) -> tuple[str, int]:
        if _is(expr, "ell"):
            return default_ip, default_port
        if _is(expr, "struct"):
            fields = {i["assign"]: i["value"] for i in expr["struct"] if _is(i, "assign")}
            port = int_value(fields["sin_port"], "sin_port") if "sin_port" in fields else default_port
            ip = default_ip
            addr = fields.get("sin_addr")
            if _is(addr, "call") and addr["call"] == "inet_addr" and addr["args"] and _is(addr["args"][0], "str"):
                ip = self.map_ip(addr["args"][0]["str"])
            return ip, port
        raise CallScriptError("a socket address must be ... or {sin_family=..., sin_port=..., sin_addr=...}")

    def map_ip(self, ip: str) -> str:
        if ip in PACKETDRILL_LOCAL_IPS:
            return self.addrs.local_ip
        if ip in PACKETDRILL_REMOTE_IPS:
            return self.addrs.remote_ip
        return ip

    def _buffer(self, expr: Any, length: int) -> bytes:
        if _is(expr, "str"):
            data = expr["str"].encode("latin-1", "replace")
            return (data + b"\0" * length)[:length]
        return b"\0" * length

    def _register(self, expected: Any, sock: socket.socket) -> int:
        fd = int(expected["int"]) if _is(expected, "int") and expected["int"] >= 0 else sock.fileno()
        with self._lock:
            old = self.socks.pop(fd, None)
            self.socks[fd] = sock
        if old is not None and old is not sock:
            old.close()
        self.sut = fd
        return fd

    # -- dispatch ------------------------------------------------------------------------------

    def call(self, name: str, args: list[Any], expected: Any, want_errno: str | None) -> Outcome:
        if name not in SUPPORTED:
            raise CallScriptError(f"system call '{name}' is not supported")
        method = getattr(self, f"_do_{name}")
        start = time.monotonic()
        extra: dict[str, Any] = {}
        check_error: str | None = None
        try:
            ret, check_error = method(args, expected, extra)
            err = 0
        except _CallFailed as exc:
            ret, err = -1, exc.errno
        except OSError as exc:
            ret, err = -1, exc.errno or errno_mod.EIO
        end = time.monotonic()
        error = self._check_result(expected, want_errno, ret, err) or check_error
        return Outcome(ret, err, error, start, end, extra)

    @staticmethod
    def _check_result(expected: Any, want_errno: str | None, ret: int, err: int) -> str | None:
        if _is(expected, "ell"):
            return None
        want = int_value(expected, "the expected result")
        if want != ret:
            text = f"Expected result {want} but got {ret}"
            if ret < 0:
                text += f" with errno {_errno_text(err)}"
            return text
        if want_errno is not None:
            code = CONSTANTS.get(want_errno)
            if code is None:
                raise CallScriptError(f"unknown errno '{want_errno}'")
            if code != err:
                return f"Expected errno {_errno_text(code)} but got {_errno_text(err)}"
        return None

    # -- the calls (each returns (result, extra complaint)) -----------------------------------------

    def _do_socket(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        if len(args) != 3:
            raise CallScriptError("socket() takes 3 arguments")
        domain = socket.AF_INET if _is(args[0], "ell") else int_value(args[0], "domain")
        sock = socket.socket(domain, int_value(args[1], "type"), int_value(args[2], "protocol"))
        fd = self._register(expected, sock)
        extra["live_fd"] = sock.fileno()
        return fd, None

    def _do_bind(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        sock.bind(self._sockaddr(args[1], self.addrs.local_ip, self.addrs.bind_port))
        return 0, None

    def _do_listen(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        self._sock(args[0]).listen(int_value(args[1], "backlog"))
        return 0, None

    def _do_accept(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        fd, _addr = sock._accept()  # type: ignore[attr-defined]  # the raw accept(2), no wrapper
        conn = socket.socket(sock.family, sock.type & ~socket.SOCK_NONBLOCK, sock.proto, fileno=fd)
        return self._register(expected, conn), None

    def _do_connect(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        err = sock.connect_ex(self._sockaddr(args[1], self.addrs.remote_ip, self.addrs.connect_port))
        if err:
            raise _CallFailed(err)
        return 0, None

    def _do_read(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        data = os.read(sock.fileno(), int_value(args[2], "count"))
        return len(data), self._content(args[1], data)

    def _do_recv(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        flags = int_value(args[3], "flags") if len(args) > 3 else 0
        data = sock.recv(int_value(args[2], "count"), flags)
        return len(data), self._content(args[1], data)

    @staticmethod
    def _content(expr: Any, data: bytes) -> str | None:
        if not _is(expr, "str"):
            return None
        want = expr["str"].encode("latin-1", "replace")
        got = data[: len(want)] if expr.get("trunc") else data
        if got != want:
            return f"Expected data {want!r} but got {data[:64]!r}"
        return None

    def _do_write(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        count = int_value(args[2], "count")
        return os.write(sock.fileno(), self._buffer(args[1], count)), None

    def _do_send(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        count = int_value(args[2], "count")
        flags = int_value(args[3], "flags") if len(args) > 3 else 0
        return sock.send(self._buffer(args[1], count), flags), None

    def _iov_lengths(self, expr: Any) -> list[int]:
        if _is(expr, "ell"):
            return []
        if not _is(expr, "list"):
            raise CallScriptError("an iovec array must be [{iov_base=..., iov_len=N}, ...]")
        lengths = []
        for item in expr["list"]:
            fields = {i["assign"]: i["value"] for i in item.get("struct", []) if _is(i, "assign")}
            if "iov_len" in fields:
                lengths.append(int_value(fields["iov_len"], "iov_len"))
            elif _is(item, "struct") and len(item["struct"]) == 2:
                lengths.append(int_value(item["struct"][1], "iov_len"))
            else:
                raise CallScriptError("an iovec needs iov_len")
        return lengths

    def _do_readv(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        bufs = [bytearray(n) for n in self._iov_lengths(args[1])]
        return os.readv(sock.fileno(), bufs), None

    def _do_writev(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        return os.writev(sock.fileno(), [b"\0" * n for n in self._iov_lengths(args[1])]), None

    def _do_shutdown(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        self._sock(args[0]).shutdown(int_value(args[1], "how"))
        return 0, None

    def _do_close(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        fd = int_value(args[0], "a file descriptor")
        with self._lock:
            sock = self.socks.pop(fd, None)
        if sock is None:
            raise _CallFailed(errno_mod.EBADF)
        os.close(sock.detach())  # the close(2) result itself, not socket.close()'s swallowed one
        return 0, None

    def _do_fcntl(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        cmd = int_value(args[1], "command")
        arg = int_value(args[2], "argument") if len(args) > 2 else 0
        return fcntl.fcntl(sock.fileno(), cmd, arg), None

    def _do_ioctl(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        request = int_value(args[1], "request")
        res = fcntl.ioctl(sock.fileno(), request, struct.pack("i", 0))
        value = struct.unpack("i", res)[0]
        extra["value"] = value
        if len(args) > 2 and not _is(args[2], "ell"):
            want = int_value(args[2], "ioctl value")
            if want != value:
                name = args[1]["word"] if _is(args[1], "word") else str(request)
                return 0, f"Bad ioctl {name} value: expected: {want} actual: {value}"
        return 0, None

    def _optval(self, expr: Any) -> tuple[str, Any]:
        """('int', n) | ('bytes', b) | ('any', None) for an option value argument."""
        if _is(expr, "ell"):
            return "any", None
        if _is(expr, "str"):
            return "bytes", expr["str"].encode()
        if _is(expr, "struct"):
            values = [int_value(i["value"] if _is(i, "assign") else i, "struct member") for i in expr["struct"]]
            return "bytes", struct.pack(f"{len(values)}i", *values)
        return "int", int_value(expr, "option value")

    def _do_setsockopt(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        level, name = int_value(args[1], "level"), int_value(args[2], "option name")
        kind, value = self._optval(args[3])
        if kind == "any":
            raise CallScriptError("setsockopt needs a value")
        sock.setsockopt(level, name, value)
        return 0, None

    def _do_getsockopt(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        sock = self._sock(args[0])
        level, name = int_value(args[1], "level"), int_value(args[2], "option name")
        kind, want = self._optval(args[3])
        if kind == "bytes":
            got = sock.getsockopt(level, name, max(len(want), 64))
            if got.rstrip(b"\0") != want.rstrip(b"\0"):
                return 0, f"Bad getsockopt optval: expected: {want!r} actual: {got!r}"
            return 0, None
        value = sock.getsockopt(level, name)
        extra["value"] = value
        if kind == "int" and value != want:
            return 0, f"Bad getsockopt optval: expected: {want} actual: {value}"
        return 0, None

    def _do_poll(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> tuple[int, str | None]:
        if not _is(args[0], "list"):
            raise CallScriptError("poll() needs [{fd=N, events=..., revents=...}, ...]")
        poller = select.poll()
        wanted: dict[int, tuple[int, int | None]] = {}
        for item in args[0]["list"]:
            fields = {i["assign"]: i["value"] for i in item.get("struct", []) if _is(i, "assign")}
            script_fd = int_value(fields.get("fd", {"int": -1}), "fd")
            sock = self._sock({"int": script_fd})
            events = int_value(fields["events"], "events") if "events" in fields else 0
            revents = int_value(fields["revents"], "revents") if "revents" in fields else None
            poller.register(sock.fileno(), events)
            wanted[sock.fileno()] = (script_fd, revents)
        timeout = int_value(args[2], "timeout") if len(args) > 2 else 0
        ready = dict(poller.poll(timeout))
        for live_fd, (script_fd, revents) in wanted.items():
            got = ready.get(live_fd, 0)
            if revents is not None and got != revents:
                return len(ready), f"poll revents for fd {script_fd}: expected: {revents:#x} actual: {got:#x}"
        return len(ready), None

    # -- the rest ---------------------------------------------------------------------------------

    def tcp_info(self) -> dict[str, int]:
        if self.sut is None or self.sut not in self.socks:
            raise CallScriptError("%{ }% needs a socket under test (no socket() or accept() yet)")
        buf = self.socks[self.sut].getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
        return parse_tcp_info(buf)

    def close_all(self) -> None:
        with self._lock:
            socks, self.socks = list(self.socks.values()), {}
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()


def realtime_priority() -> None:
    """SCHED_RR at the lowest real-time priority, as packetdrill's set_scheduling_priority() does, so a
    busy machine does not delay a system call or a packet by milliseconds. Skipped on one CPU (a
    real-time thread must never make the machine unresponsive) and when not permitted."""
    if (os.cpu_count() or 1) <= 1:
        return
    with contextlib.suppress(OSError, AttributeError):
        policy = os.SCHED_RR
        os.sched_setscheduler(0, policy, os.sched_param(os.sched_get_priority_min(policy)))


class _CallFailed(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.errno = err
