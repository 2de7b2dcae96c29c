"""The script's system calls, executed on real descriptors inside the kernel-under-test's namespace.

This module runs in the helper process (``python -m rawtcp.script.syscall_helper``), started with
``ip netns exec`` so that every socket it opens belongs to the kernel under test. The runner sends
each call as JSON (the parsed expressions, tagged); the helper runs it, checks the result and the
errno and whatever the call returns through its arguments as packetdrill's run_system_call.c does, and
answers with the result, the check's verdict and the call's start and end times on CLOCK_MONOTONIC (one
clock for every namespace, so the runner can compare them with its own packet times).

Script file descriptors are not the live ones: like packetdrill, ``socket(...) = 3`` makes script
fd 3 stand for whatever descriptor the kernel returned. One table holds every kind a script can open:
sockets, epoll instances, pipe ends and files.

Addresses: ``...`` in bind()/connect()/sendto()/sendmsg() is the lab's own address (bind) or the peer's
(connect), in the socket's family; a socket whose domain is ``...`` gets packetdrill's domain for the
address mode (AF_INET for ipv4, AF_INET6 for ipv4-mapped-ipv6 and ipv6). An address literal a script
writes (packetdrill's defaults, or what its --local_ip/--remote_ip said) is mapped onto the lab's.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fcntl
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.script import libc
from rawtcp.script.callexpr import (
    CallScriptError,
    bracketed_int,
    encode_expr,
    int_value,
    is_tag,
    s32_value,
    struct_fields,
    type_name,
    unescape,
)
from rawtcp.script.cmsg import TimeBase, ancillary, compare, control_space, parse_control
from rawtcp.script.symbols import CONSTANTS, poll_flags_text
from rawtcp.script.tcpinfo import (
    SO_MEMINFO,
    SO_MEMINFO_SIZE,
    TCP_CC_INFO,
    TCP_CC_INFO_SIZE,
    TCP_INFO_SIZE,
    parse_cc_info,
    parse_meminfo,
    parse_tcp_info,
)

__all__ = ["CONSTANTS", "SUPPORTED", "Addresses", "CallScriptError", "Executor", "Outcome", "encode_expr",
           "errno_name", "int_value", "realtime_priority"]

SUPPORTED = frozenset({
    "socket", "bind", "listen", "accept", "connect", "read", "readv", "recv", "recvfrom", "recvmsg", "write",
    "writev", "send", "sendto", "sendmsg", "fcntl", "ioctl", "close", "shutdown", "getsockopt", "setsockopt",
    "poll", "open", "sendfile", "epoll_create", "epoll_ctl", "epoll_wait", "pipe", "splice", "getsockname",
    "getpeername",
})

IP_MODES = ("ipv4", "ipv4-mapped-ipv6", "ipv6")

# packetdrill's addresses (config.c defaults and run_all.py's per-variant ones): the local (kernel) side
# and the remote (peer) side. A script's --local_ip/--remote_ip add to these (Addresses.script_*).
PACKETDRILL_LOCAL_IPS = ("192.168.0.1", "192.168.0.2", "192.168.0.3", "fd3d:a0b:17d6::1", "fd3d:fa7b:d17d::")
PACKETDRILL_REMOTE_IPS = ("192.0.2.1", "fd3d:fa7b:d17d::1", "2001:db8::1")

DEFAULT_TOLERANCE_USECS = 4000  # packetdrill's --tolerance_usecs default


def errno_name(num: int) -> str:
    return errno_mod.errorcode.get(num, str(num))


def _errno_text(num: int) -> str:
    return f"{num} ({os.strerror(num)})" if num else "0 (Success)"


def _norm_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


# ---------------------------------------------------------------------------------------------
# the executor's view of the world


@dataclass
class Addresses:
    """Where ``...`` points: the kernel's own address (bind) and the peer's (connect), and the mode.

    ``mode`` is packetdrill's --ip_version: ``ipv4``, ``ipv4-mapped-ipv6`` (IPv4 on the wire, AF_INET6
    sockets with ::ffff:a.b.c.d addresses) or ``ipv6`` (local_ip/remote_ip are then IPv6 addresses).
    ``script_local_ips``/``script_remote_ips``: the literals the script uses for either side.
    """

    local_ip: str
    remote_ip: str
    bind_port: int = 8080
    connect_port: int = 8080
    mode: str = "ipv4"
    script_local_ips: tuple[str, ...] = ()
    script_remote_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in IP_MODES:
            raise ValueError(f"unknown address mode {self.mode!r} (one of {', '.join(IP_MODES)})")

    @property
    def socket_domain(self) -> int:
        """The domain ``socket(..., ...)`` gets, as packetdrill's config->socket_domain."""
        return socket.AF_INET if self.mode == "ipv4" else socket.AF_INET6


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


@dataclass
class ScriptFd:
    """One script descriptor: what it is and the live descriptor behind it."""

    kind: str  # socket | epoll | pipe | file
    fd: int
    sock: socket.socket | None = None


@dataclass
class CallResult:
    """A call's result, and what to do once its result and errno have been checked.

    ``after`` runs only when they matched the script (packetdrill checks returned data after
    end_syscall()); it does fd bookkeeping and returns a complaint or None. ``undo`` runs when they did
    not: a descriptor the script will never name is closed.
    """

    ret: int
    after: Callable[[], str | None] | None = None
    undo: Callable[[], None] | None = None


class _CallFailed(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.errno = err


_RESULT_FD = frozenset({"socket", "accept", "open", "epoll_create"})  # packetdrill's CHECK_FD calls


def check_argc(name: str, args: list[Any], *counts: int) -> None:
    """packetdrill's argument-count complaint, word for word (also for other stacks' executors)."""
    if len(args) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise CallScriptError(f"{name}: Expected {want} args but got {len(args)}")


def _need_ellipsis(expr: Any, what: str) -> None:
    if not is_tag(expr, "ell"):
        raise CallScriptError(f"Bad type for {what}; actual: {type_name(expr)} expected: ELLIPSIS")


def _is_null(expr: Any) -> bool:
    """A NULL buffer: ``NULL`` or ``0`` (packetdrill's buffer_arg())."""
    return (is_tag(expr, "int") and expr["int"] == 0) or (is_tag(expr, "word") and expr["word"] == "NULL")


def buffer_kind(expr: Any) -> str:
    """``...`` (a zeroed buffer), NULL, or (a rawtcp extension) a string with the data to send/expect."""
    if is_tag(expr, "ell"):
        return "buf"
    if _is_null(expr):
        return "null"
    if is_tag(expr, "str"):
        return "str"
    raise CallScriptError("Expected ... or NULL for buffer")


class Executor:
    """Runs one script's system calls; keeps the script-fd table and the socket under test."""

    def __init__(self, addrs: Addresses) -> None:
        self.addrs = addrs
        self.fds: dict[int, ScriptFd] = {}
        self._shadowed: list[ScriptFd] = []  # descriptors whose script number a later accept() took
        self.sut: int | None = None  # packetdrill's socket under test: the last socket()/accept()
        self.live_start: float | None = None  # CLOCK_MONOTONIC of script time 0 (for scm_timestamping)
        self.tolerance_usecs = DEFAULT_TOLERANCE_USECS
        self._lock = threading.Lock()
        self._locals = {_norm_ip(ip) for ip in (*PACKETDRILL_LOCAL_IPS, *addrs.script_local_ips)}
        self._remotes = {_norm_ip(ip) for ip in (*PACKETDRILL_REMOTE_IPS, *addrs.script_remote_ips)}

    @property
    def socks(self) -> dict[int, socket.socket]:
        """The script's sockets by script fd."""
        with self._lock:
            return {n: e.sock for n, e in self.fds.items() if e.sock is not None}

    # -- descriptors -----------------------------------------------------------------------------

    def _entry(self, expr: Any, what: str = "a file descriptor") -> ScriptFd:
        num = int_value(expr, what)
        with self._lock:
            entry = self.fds.get(num)
        if entry is None:  # the script names a descriptor it never opened (or closed): the kernel's EBADF
            raise _CallFailed(errno_mod.EBADF)
        return entry

    def _live(self, expr: Any, what: str = "a file descriptor") -> int:
        return self._entry(expr, what).fd

    def _sock(self, expr: Any) -> socket.socket:
        entry = self._entry(expr)
        if entry.sock is None:
            raise _CallFailed(errno_mod.ENOTSOCK)
        return entry.sock

    def _script_fd_of(self, live: int) -> int | None:
        with self._lock:
            for num, entry in self.fds.items():
                if entry.fd == live:
                    return num
        return None

    def _script_num(self, expected: Any, live: int) -> int:
        """The script fd a new descriptor gets: the expected result (``= 3``), or the live one for ``...``.

        Also the result reported for the call: a script expecting an error (``= -1``) sees the live
        descriptor, so the result check fails as it should."""
        if is_tag(expected, "ell"):
            return live
        num = int_value(expected, "the expected result")
        return num if num >= 0 else live

    def _register(self, num: int, entry: ScriptFd, *, under_test: bool = False, shadow: bool = False) -> str | None:
        """Give ``entry`` script fd ``num``. A number in use is the script's error, except for accept()
        (``shadow``): packetdrill's run_syscall_accept() just points the number at the new connection,
        and the old one stays open, unnamed, until the end."""
        with self._lock:
            if num < 0:
                return f"invalid fd {num} in script"
            if num in self.fds:
                if not shadow:
                    return f"duplicate fd {num} in script"
                self._shadowed.append(self.fds[num])
            self.fds[num] = entry
        if under_test:
            self.sut = num
        return None

    def _discard(self, entry: ScriptFd) -> None:
        with contextlib.suppress(OSError):
            if entry.sock is not None:
                entry.sock.close()
            else:
                os.close(entry.fd)

    # -- addresses -------------------------------------------------------------------------------

    def map_ip(self, ip: str) -> str:
        """The lab address a literal in the script stands for (unchanged when it is neither side's)."""
        norm = _norm_ip(ip)
        if norm in self._locals:
            return self.addrs.local_ip
        if norm in self._remotes:
            return self.addrs.remote_ip
        # ::ffff:a.b.c.d spells an IPv4 literal as a mapped address: same end, mapped lab address
        with contextlib.suppress(ValueError):
            v4 = getattr(ipaddress.ip_address(ip), "ipv4_mapped", None)  # IPv6 addresses only
            if v4 is not None and (inner := self.map_ip(str(v4))) != str(v4) and ":" not in inner:
                return f"::ffff:{inner}"
        return ip

    def _sockaddr_for(self, sock: socket.socket, ip: str, port: int) -> tuple[Any, ...]:
        """``ip``:``port`` in the form ``sock``'s family takes (IPv4 becomes ::ffff:a.b.c.d for AF_INET6)."""
        if sock.family == socket.AF_INET6:
            if ":" not in ip:
                ip = f"::ffff:{ip}"
            return (ip, port, 0, 0)
        return (ip, port)

    def _sockaddr(self, sock: socket.socket, expr: Any, default_ip: str, default_port: int) -> tuple[Any, ...]:
        if is_tag(expr, "ell"):
            return self._sockaddr_for(sock, default_ip, default_port)
        if is_tag(expr, "struct"):
            ip, port = self._struct_address(expr, default_ip, default_port)
            return self._sockaddr_for(sock, ip, port)
        raise CallScriptError("a socket address must be ... or {sin_family=..., sin_port=..., sin_addr=...}")

    def _struct_address(self, expr: Any, default_ip: str, default_port: int) -> tuple[str, int]:
        fields = struct_fields(expr)
        port = default_port
        for name in ("sin_port", "sin6_port"):
            if name in fields:
                port = int_value(fields[name]["value"], name)
        ip = default_ip
        for name in ("sin_addr", "sin6_addr"):
            if name in fields:
                addr = fields[name]["value"]
                if (is_tag(addr, "call") and addr["call"] in ("inet_addr", "inet6_addr") and addr["args"]
                        and is_tag(addr["args"][0], "str")):
                    ip = self.map_ip(addr["args"][0]["str"])
                elif not is_tag(addr, "ell"):
                    raise CallScriptError(f'{name} must be inet_addr("a.b.c.d"), inet6_addr("...") or ...')
        return ip, port

    def _sockaddr_bytes(self, sock: socket.socket, addr: tuple[Any, ...]) -> bytes:
        """A struct sockaddr for the ctypes calls."""
        if sock.family == socket.AF_INET6:
            return struct.pack("=HHI16sI", socket.AF_INET6, socket.htons(addr[1]), 0,
                               socket.inet_pton(socket.AF_INET6, addr[0]), 0)
        return struct.pack("=HH4s8x", socket.AF_INET, socket.htons(addr[1]), socket.inet_aton(addr[0]))

    def _connect_addr(self, sock: socket.socket) -> tuple[Any, ...]:
        return self._sockaddr_for(sock, self.addrs.remote_ip, self.addrs.connect_port)

    # -- dispatch ------------------------------------------------------------------------------

    def call(self, name: str, args: list[Any], expected: Any, want_errno: str | None) -> Outcome:
        if name not in SUPPORTED:
            raise CallScriptError(f"system call '{name}' is not supported")
        method = getattr(self, f"_do_{name}")
        extra: dict[str, Any] = {}
        start = time.monotonic()
        if self.live_start is None:  # the runner did not say when the script started: its first call did
            self.live_start = start
        try:
            done: CallResult = method(args, expected, extra)
            ret, err = done.ret, 0
        except _CallFailed as exc:
            done, ret, err = CallResult(-1), -1, exc.errno
        except OSError as exc:
            done, ret, err = CallResult(-1), -1, exc.errno or errno_mod.EIO
        except (ValueError, OverflowError) as exc:  # Python refused an argument before any system call
            raise CallScriptError(f"{name}: bad argument: {exc}") from None
        end = time.monotonic()
        error = self._check_result(name, expected, want_errno, ret, err)
        if error is None:
            if done.after is not None:
                error = done.after()
        elif done.undo is not None:
            done.undo()
        return Outcome(ret, err, error, start, end, extra)

    @staticmethod
    def _check_result(name: str, expected: Any, want_errno: str | None, ret: int, err: int) -> str | None:
        """packetdrill's end_syscall(): the result, then the errno."""
        if is_tag(expected, "ell"):
            return None
        want = s32_value(expected, "the expected result")
        if name in _RESULT_FD and want >= 0:
            if ret < 0:
                return f"Expected non-negative result but got {ret} with errno {_errno_text(err)}"
        elif want != ret:
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

    # -- sockets --------------------------------------------------------------------------------

    def _do_socket(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("socket", args, 3)
        domain = self.addrs.socket_domain if is_tag(args[0], "ell") else s32_value(args[0], "domain")
        sock = socket.socket(domain, s32_value(args[1], "type"), s32_value(args[2], "protocol"))
        extra["live_fd"] = sock.fileno()
        entry = ScriptFd("socket", sock.fileno(), sock)
        return CallResult(self._script_num(expected, sock.fileno()),
                     after=lambda: self._register(self._script_num(expected, entry.fd), entry, under_test=True),
                     undo=lambda: self._discard(entry))

    def _do_bind(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("bind", args, 3)
        sock = self._sock(args[0])
        sock.bind(self._sockaddr(sock, args[1], self.addrs.local_ip, self.addrs.bind_port))
        return CallResult(0)

    def _do_listen(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("listen", args, 2)
        self._sock(args[0]).listen(s32_value(args[1], "backlog"))
        return CallResult(0)

    def _do_accept(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("accept", args, 3)
        sock = self._sock(args[0])
        fd, _addr = sock._accept()  # type: ignore[attr-defined]  # the raw accept(2), no wrapper
        conn = socket.socket(sock.family, sock.type & ~socket.SOCK_NONBLOCK, sock.proto, fileno=fd)
        entry = ScriptFd("socket", fd, conn)
        return CallResult(self._script_num(expected, fd),
                     after=lambda: self._register(self._script_num(expected, fd), entry, under_test=True,
                                                  shadow=True),
                     undo=lambda: self._discard(entry))

    def _do_connect(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("connect", args, 3)
        sock = self._sock(args[0])
        if not is_tag(args[1], "ell") and not is_tag(args[1], "struct"):
            # connect(fd, AF_UNSPEC, ...): packetdrill passes a sockaddr of just that family (a disconnect)
            family = s32_value(args[1], "sa_family")
            unspec = struct.pack("=H", family) + bytes(libc.SOCKADDR_STORAGE - 2)
            return CallResult(libc.connect_raw(sock.fileno(), unspec))
        err = sock.connect_ex(self._sockaddr(sock, args[1], self.addrs.remote_ip, self.addrs.connect_port))
        if err:
            raise _CallFailed(err)
        return CallResult(0)

    def _do_shutdown(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("shutdown", args, 2)
        self._sock(args[0]).shutdown(s32_value(args[1], "how"))
        return CallResult(0)

    def _do_close(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("close", args, 1)
        num = int_value(args[0], "a file descriptor")
        with self._lock:
            entry = self.fds.pop(num, None)
        if entry is None:
            raise _CallFailed(errno_mod.EBADF)
        live = entry.sock.detach() if entry.sock is not None else entry.fd
        os.close(live)  # the close(2) result itself, not socket.close()'s swallowed one
        return CallResult(0)

    def _address_check(self, args: list[Any], get: Callable[[], Any], what: str) -> CallResult:
        """getsockname()/getpeername() (not packetdrill calls): ``...`` or a {sin_port=..., sin_addr=...}
        struct to compare with, literals mapped onto the lab's addresses."""
        check_argc(what, args, 2, 3)
        sock = self._sock(args[0])
        got = get()

        def check() -> str | None:
            if not is_tag(args[1], "struct"):
                return None
            want = self._sockaddr_for(sock, *self._struct_address(args[1], str(got[0]), int(got[1])))
            if _norm_ip(str(want[0])) != _norm_ip(str(got[0])) or want[1] != got[1]:
                return f"Bad {what} address: expected: {want[0]}:{want[1]} actual: {got[0]}:{got[1]}"
            return None

        return CallResult(0, after=check)

    def _do_getsockname(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        return self._address_check(args, lambda: self._sock(args[0]).getsockname(), "getsockname")

    def _do_getpeername(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        return self._address_check(args, lambda: self._sock(args[0]).getpeername(), "getpeername")

    # -- data -------------------------------------------------------------------------------------

    @staticmethod
    def _content(expr: Any, data: bytes) -> str | None:
        if not is_tag(expr, "str"):
            return None
        want = unescape(expr["str"])
        got = data[: len(want)] if expr.get("trunc") else data
        if got != want:
            return f"Expected data {want!r} but got {data[:64]!r}"
        return None

    @staticmethod
    def _payload(expr: Any, count: int) -> bytes:
        if is_tag(expr, "str"):
            return (unescape(expr["str"]) + b"\0" * count)[:count]
        return bytes(count)

    def _do_read(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("read", args, 3)
        live = self._live(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        if kind == "null":
            return CallResult(libc.null_read(live, count))
        data = os.read(live, count)
        return CallResult(len(data), after=lambda: self._content(args[1], data))

    def _do_recv(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("recv", args, 3, 4)
        sock = self._sock(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        flags = s32_value(args[3], "flags") if len(args) > 3 else 0
        if kind == "null":
            return CallResult(libc.null_recv(sock.fileno(), count, flags))
        data = sock.recv(count, flags)
        return CallResult(len(data), after=lambda: self._content(args[1], data))

    def _do_recvfrom(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("recvfrom", args, 6)
        sock = self._sock(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        flags = s32_value(args[3], "flags")
        _need_ellipsis(args[4], "recvfrom's address")
        _need_ellipsis(args[5], "recvfrom's address length")
        if kind == "null":
            return CallResult(libc.null_recvfrom(sock.fileno(), count, flags))
        data, _addr = sock.recvfrom(count, flags)
        return CallResult(len(data), after=lambda: self._content(args[1], data))

    def _do_write(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("write", args, 3)
        live = self._live(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        if kind == "null":
            return CallResult(libc.null_write(live, count))
        return CallResult(os.write(live, self._payload(args[1], count)))

    def _do_send(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("send", args, 3, 4)
        sock = self._sock(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        flags = s32_value(args[3], "flags") if len(args) > 3 else 0
        if kind == "null":
            return CallResult(libc.null_send(sock.fileno(), count, flags))
        return CallResult(sock.send(self._payload(args[1], count), flags))

    def _do_sendto(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("sendto", args, 6)
        sock = self._sock(args[0])
        kind, count = buffer_kind(args[1]), s32_value(args[2], "count")
        flags = s32_value(args[3], "flags")
        _need_ellipsis(args[5], "sendto's address length")
        data = None if kind == "null" else self._payload(args[1], count)
        if is_tag(args[4], "ell") or is_tag(args[4], "struct"):
            addr = self._sockaddr(sock, args[4], self.addrs.remote_ip, self.addrs.connect_port)
            if data is not None:
                return CallResult(sock.sendto(data, flags, addr))
            raw = self._sockaddr_bytes(sock, addr)
        else:  # sendto(..., AF_UNSPEC, ...): a sockaddr of just that family
            raw = struct.pack("=H", s32_value(args[4], "sa_family")) + bytes(libc.SOCKADDR_STORAGE - 2)
        return CallResult(libc.sendto_raw(sock.fileno(), data, count, flags, raw))

    def _iov_lengths(self, expr: Any) -> list[int]:
        if not is_tag(expr, "list"):
            raise CallScriptError("an iovec array must be [{..., N}, ...] or [{iov_base=..., iov_len=N}, ...]")
        lengths = []
        for item in expr["list"]:
            if not is_tag(item, "struct"):
                raise CallScriptError("an iovec must be {..., N} or {iov_base=..., iov_len=N}")
            fields = struct_fields(item)
            if "iov_len" in fields:
                lengths.append(s32_value(fields["iov_len"]["value"], "iov_len"))
            elif len(item["struct"]) == 2 and not is_tag(item["struct"][1], "assign"):
                lengths.append(s32_value(item["struct"][1], "iov_len"))
            else:
                raise CallScriptError("an iovec needs its length: {..., N} or {iov_base=..., iov_len=N}")
        return lengths

    def _iov_args(self, name: str, args: list[Any]) -> list[int]:
        check_argc(name, args, 2, 3)
        lengths = self._iov_lengths(args[1])
        if len(args) == 3:
            count = s32_value(args[2], "iov_count")
            if count != len(lengths):
                raise CallScriptError(f"iov_count {count} does not match {len(lengths)}-element iovec array")
        return lengths

    def _do_readv(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        lengths = self._iov_args("readv", args)
        return CallResult(os.readv(self._live(args[0]), [bytearray(n) for n in lengths]))

    def _do_writev(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        lengths = self._iov_args("writev", args)
        return CallResult(os.writev(self._live(args[0]), [bytes(n) for n in lengths]))

    def _msghdr(self, expr: Any) -> tuple[bool, list[int], int, Any]:
        """(has msg_name, iovec lengths, msg_flags, msg_control expression) of a
        ``{msg_name(...)=..., msg_iov(N)=[...], msg_flags=F[, msg_control=[...]]}``."""
        if not is_tag(expr, "struct"):
            raise CallScriptError("a msghdr must be {msg_name(...)=..., msg_iov(N)=[...], msg_flags=...}")
        fields = struct_fields(expr)
        unknown = set(fields) - {"msg_name", "msg_iov", "msg_flags", "msg_control"}
        if unknown or "msg_iov" not in fields:
            raise CallScriptError("a msghdr must be {msg_name(...)=..., msg_iov(N)=[...], msg_flags=...[, "
                                  "msg_control=[...]]}")
        iov = fields["msg_iov"]
        lengths = self._iov_lengths(iov["value"])
        if iov.get("targs"):
            iovlen = s32_value(iov["targs"][0], "msg_iovlen")
            if iovlen != len(lengths):
                raise CallScriptError(f"msg_iovlen {iovlen} does not match {len(lengths)}-element iovec array")
        flags = s32_value(fields["msg_flags"]["value"], "msg_flags") if "msg_flags" in fields else 0
        control = fields["msg_control"]["value"] if "msg_control" in fields else None
        return "msg_name" in fields, lengths, flags, control

    def _do_sendmsg(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("sendmsg", args, 3)
        sock = self._sock(args[0])
        has_name, lengths, msg_flags, control = self._msghdr(args[1])
        cmsgs = parse_control(control)
        flags = s32_value(args[2], "flags")
        if msg_flags != 0:
            raise CallScriptError("sendmsg ignores msg_flags field in msghdr")
        buffers = [bytes(n) for n in lengths]
        if has_name:  # packetdrill fills msg_name with the connect address
            return CallResult(sock.sendmsg(buffers, ancillary(cmsgs), flags, self._connect_addr(sock)))
        return CallResult(sock.sendmsg(buffers, ancillary(cmsgs), flags))

    def _timebase(self) -> TimeBase | None:
        if self.live_start is None:
            return None
        realtime_start = self.live_start + (time.time() - time.monotonic())
        return TimeBase(round(realtime_start * 1_000_000), self.tolerance_usecs)

    def _do_recvmsg(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("recvmsg", args, 3)
        sock = self._sock(args[0])
        _has_name, lengths, want_flags, control = self._msghdr(args[1])
        cmsgs = parse_control(control)
        flags = s32_value(args[2], "flags")
        buffers = [bytearray(n) for n in lengths]
        # Offer exactly the expected messages' space, as packetdrill does: one more sets MSG_CTRUNC.
        nbytes, anc, got_flags, _addr = sock.recvmsg_into(buffers, control_space(cmsgs), flags)
        extra["msg_flags"] = got_flags

        def check() -> str | None:
            if got_flags != want_flags & 0xFFFFFFFF:
                return f"Expected msg_flags 0x{want_flags & 0xFFFFFFFF:08X} but got 0x{got_flags:08X}"
            return compare(cmsgs, anc, self._timebase())

        return CallResult(nbytes, after=check)

    # -- control ------------------------------------------------------------------------------------

    def _do_fcntl(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        if len(args) not in (2, 3):
            raise CallScriptError(f"fcntl expected 2-3 args but got {len(args)}")
        live = self._live(args[0])
        cmd = s32_value(args[1], "command")
        arg = s32_value(args[2], "argument") if len(args) > 2 else 0
        return CallResult(fcntl.fcntl(live, cmd, arg))

    def _do_ioctl(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        if len(args) not in (2, 3):
            raise CallScriptError(f"ioctl expected 2-3 args but got {len(args)}")
        live = self._live(args[0])
        request = s32_value(args[1], "request") & 0xFFFFFFFF
        if len(args) == 2:
            return CallResult(fcntl.ioctl(live, request, 0))
        want = None if is_tag(args[2], "ell") else s32_value(args[2], "ioctl value")
        buf = bytearray(4)
        ret = fcntl.ioctl(live, request, buf, True)
        value = struct.unpack("=i", buf)[0]
        extra["value"] = value

        def check() -> str | None:
            if want is not None and want != value:
                return f"Bad ioctl optval: expected: {want} actual: {value}"
            return None

        return CallResult(ret, after=check)

    def _setsockopt_value(self, sock: socket.socket, expr: Any) -> bytes:
        """The bytes setsockopt() passes for the script's optval."""
        if is_tag(expr, "str"):
            return unescape(expr["str"]) + b"\0"  # a C string: its NUL is there if optlen reaches it
        if is_tag(expr, "list"):
            return struct.pack("=i", s32_value(bracketed_int(expr, "option value"), "option value"))
        if is_tag(expr, "call") and expr["call"] == "inet6_addr" and expr["args"] and is_tag(expr["args"][0], "str"):
            return socket.inet_pton(socket.AF_INET6, self.map_ip(expr["args"][0]["str"]))
        if is_tag(expr, "struct"):
            fields = struct_fields(expr)
            if set(fields) == {"onoff", "linger"} or set(fields) == {"l_onoff", "l_linger"}:
                values = [s32_value(item["value"], name) for name, item in fields.items()]
                return struct.pack("=ii", *values)
            if "tcpm_key" in fields or "tcpm_addr" in fields:
                return self._md5sig(sock, fields)
            values = [s32_value(i["value"] if is_tag(i, "assign") else i, "struct member") for i in expr["struct"]]
            return struct.pack(f"={len(values)}i", *values)
        if is_tag(expr, "int") or is_tag(expr, "word") or is_tag(expr, "or"):
            return struct.pack("=i", s32_value(expr, "option value"))  # plain integer: what [n] means
        raise CallScriptError(f"unsupported setsockopt value type: {type_name(expr)}")

    def _md5sig(self, sock: socket.socket, fields: dict[str, Any]) -> bytes:
        """struct tcp_md5sig: {tcpm_addr=..., tcpm_flags=F, tcpm_prefixlen=P, tcpm_keylen=N, tcpm_ifindex=I,
        tcpm_key="..."}; tcpm_addr ``...`` (or absent) is the peer, a sockaddr struct is mapped."""
        addr_expr = fields["tcpm_addr"]["value"] if "tcpm_addr" in fields else {"ell": True}
        addr = self._sockaddr(sock, addr_expr, self.addrs.remote_ip, 0)
        raw = self._sockaddr_bytes(sock, addr).ljust(libc.SOCKADDR_STORAGE, b"\0")
        key = unescape(fields["tcpm_key"]["value"]["str"]) if "tcpm_key" in fields else b""

        def num(name: str, default: int) -> int:
            return int_value(fields[name]["value"], name) if name in fields else default

        keylen = num("tcpm_keylen", len(key))
        return raw + struct.pack("=BBHi80s", num("tcpm_flags", 0), num("tcpm_prefixlen", 0), keylen,
                                 num("tcpm_ifindex", 0), key[:80])

    def _do_setsockopt(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("setsockopt", args, 5)
        sock = self._sock(args[0])
        level, name = s32_value(args[1], "level"), s32_value(args[2], "option name")
        optlen = s32_value(args[4], "optlen") if not is_tag(args[4], "ell") else None
        value = self._setsockopt_value(sock, args[3])
        if optlen is not None:
            if optlen < 0:  # the kernel's answer to a negative optlen
                raise _CallFailed(errno_mod.EINVAL)
            value = value[:optlen].ljust(optlen, b"\0")
        elif is_tag(args[3], "str"):
            value = value[:-1]
        sock.setsockopt(level, name, value)
        return CallResult(0)

    def _do_getsockopt(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("getsockopt", args, 5)
        sock = self._sock(args[0])
        level, name = s32_value(args[1], "level"), s32_value(args[2], "option name")
        want = args[3]
        if is_tag(args[4], "list"):
            optlen = bracketed_int(args[4], "optlen")
        elif is_tag(args[4], "ell"):
            optlen = len(unescape(want["str"])) if is_tag(want, "str") else 4
        else:
            optlen = s32_value(args[4], "optlen")
        got = sock.getsockopt(level, name, max(optlen, 0))
        if len(got) >= 4:
            extra["value"] = struct.unpack_from("=i", got)[0]

        def check() -> str | None:
            if is_tag(args[4], "list") and len(got) != optlen:
                return f"Bad getsockopt optlen: expected: {optlen} actual: {len(got)}"
            if is_tag(want, "str"):
                expect = unescape(want["str"])
                if optlen != len(expect):
                    return (f"Bad getsockopt optval: expected optlen ({optlen} bytes) does not match length of "
                            f"expected optval string '{_printable(expect)}' ({len(expect)} bytes)")
                if got[:optlen] != expect:
                    return f"Bad getsockopt optval: expected: '{_printable(expect)}' actual: '{_printable(got)}'"
                return None
            if is_tag(want, "ell"):
                return None
            if is_tag(want, "list") or is_tag(want, "int") or is_tag(want, "word") or is_tag(want, "or"):
                if optlen != 4:
                    return f"Unsupported getsockopt optlen: {optlen}"
                value = s32_value(bracketed_int(want, "option value") if is_tag(want, "list") else want,
                                  "option value")
                actual = struct.unpack("=i", got[:4].ljust(4, b"\0"))[0]
                if actual != value:
                    return f"Bad getsockopt optval: expected: {value} actual: {actual}"
                return None
            raise CallScriptError(f"unsupported getsockopt value type: {type_name(want)}")

        return CallResult(0, after=check)

    # -- readiness --------------------------------------------------------------------------------

    def _do_poll(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("poll", args, 3)
        if not is_tag(args[0], "list"):
            raise CallScriptError("poll() needs [{fd=N, events=...[, revents=...]}, ...]")
        items = []
        for item in args[0]["list"]:
            fields = struct_fields(item) if is_tag(item, "struct") else {}
            if "fd" not in fields or "events" not in fields:
                raise CallScriptError("a pollfd must be {fd=N, events=...[, revents=...]}")
            live = self._live(fields["fd"]["value"])
            events = s32_value(fields["events"]["value"], "events")
            revents = s32_value(fields["revents"]["value"], "revents") if "revents" in fields else 0
            items.append((live, events, revents))
        nfds, timeout = s32_value(args[1], "nfds"), s32_value(args[2], "timeout")
        if nfds != len(items):
            raise CallScriptError(f"nfds {nfds} does not match {len(items)}-element pollfd array")
        poller = select.poll()
        for live, events, _ in items:
            poller.register(live, events)
        ready = dict(poller.poll(timeout))

        def check() -> str | None:
            for index, (live, _, revents) in enumerate(items):
                got = ready.get(live, 0)
                if got != revents:
                    return (f"Expected revents of {poll_flags_text(revents)} but got {poll_flags_text(got)} "
                            f"for pollfd {index}")
            return None

        return CallResult(len(ready), after=check)

    def _do_epoll_create(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("epoll_create", args, 1)
        live = libc.epoll_create(s32_value(args[0], "size"))
        entry = ScriptFd("epoll", live)
        return CallResult(self._script_num(expected, live),
                     after=lambda: self._register(self._script_num(expected, live), entry),
                     undo=lambda: self._discard(entry))

    def _epoll_event(self, expr: Any, script_fd: int | None) -> tuple[int, str, int]:
        """(events, data kind, data) of ``{events=..., fd=N|ptr=P|u32=U|u64=V}``; an ``fd`` is live."""
        fields = struct_fields(expr) if is_tag(expr, "struct") else {}
        kinds = [k for k in ("fd", "ptr", "u32", "u64") if k in fields]
        if "events" not in fields or len(kinds) != 1 or len(fields) != 2:
            raise CallScriptError("epoll_event specified incorrectly: {events=..., fd=N} (or ptr=, u32=, u64=)")
        events = int_value(fields["events"]["value"], "events") & 0xFFFFFFFF
        kind = kinds[0]
        value = int_value(fields[kind]["value"], kind)
        if kind == "fd":
            if script_fd is not None and value != script_fd:
                raise CallScriptError("wrong fd specified in epoll_event")
            value = self._live({"int": value})
        return events, kind, value

    def _do_epoll_ctl(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("epoll_ctl", args, 4)
        epfd = self._live(args[0])
        op = s32_value(args[1], "op")
        script_fd = int_value(args[2], "a file descriptor")
        live = self._live(args[2])
        events, _kind, data = self._epoll_event(args[3], script_fd)
        return CallResult(libc.epoll_ctl(epfd, op, live, events, data))

    def _do_epoll_wait(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("epoll_wait", args, 4)
        epfd = self._live(args[0])
        want_events, kind, want_data = self._epoll_event(args[1], None)
        maxevents, timeout = s32_value(args[2], "maxevents"), s32_value(args[3], "timeout")
        result, events = libc.epoll_wait(epfd, maxevents, timeout)
        got_events, got_data = events[0] if result > 0 else (0, 0)

        def check() -> str | None:
            if got_events != want_events:
                return (f"epoll_event->events does not match script: expected: 0x{want_events:x} "
                        f"actual: 0x{got_events:x}")
            got, want = got_data, want_data
            if kind == "fd":  # data.fd: the low 32 bits; shown as the script's numbers
                got = struct.unpack("=i", struct.pack("=I", got_data & 0xFFFFFFFF))[0]
                if got != want:
                    return (f"epoll_event->data does not match script: expected: {self._script_fd_of(want)} "
                            f"actual: {self._script_fd_of(got) if got else got}")
                return None
            if kind == "u32":
                got, want = got_data & 0xFFFFFFFF, want_data & 0xFFFFFFFF
            if got != want:
                shown = (hex(want), hex(got)) if kind == "ptr" else (want, got)
                return f"epoll_event->data does not match script: expected: {shown[0]} actual: {shown[1]}"
            return None

        return CallResult(result, after=check)

    # -- pipes and files ------------------------------------------------------------------------------

    def _do_pipe(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("pipe", args, 1)
        if not is_tag(args[0], "list"):
            raise CallScriptError("pipe() needs [read_fd, write_fd]")
        if len(args[0]["list"]) != 2:
            raise CallScriptError(f"{len(args[0]['list'])} pipe file descriptors instead of 2")
        nums = [int_value(item, "a pipe file descriptor") for item in args[0]["list"]]
        read_end, write_end = os.pipe()
        entries = [ScriptFd("pipe", read_end), ScriptFd("pipe", write_end)]

        def register() -> str | None:
            with self._lock:
                for num in nums:
                    if num in self.fds:
                        for entry in entries:
                            self._discard(entry)
                        return f"duplicate fd {num} in script"
                self.fds.update(zip(nums, entries, strict=True))
            return None

        def undo() -> None:
            for entry in entries:
                self._discard(entry)

        return CallResult(0, after=register, undo=undo)

    def _do_splice(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("splice", args, 6)
        fd_in, fd_out = self._live(args[0]), self._live(args[2])
        off_in, off_out = int_value(args[1], "off_in"), int_value(args[3], "off_out")
        count, flags = s32_value(args[4], "len"), s32_value(args[5], "flags")
        # NULL (0) is "the file position"; another value is taken as the offset itself
        return CallResult(os.splice(fd_in, fd_out, count, off_in or None, off_out or None, flags))

    def _do_open(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("open", args, 2)
        if not is_tag(args[0], "str"):
            raise CallScriptError(f"Bad type for open's path; actual: {type_name(args[0])} expected: STRING")
        path = unescape(args[0]["str"])
        live = os.open(path, s32_value(args[1], "flags"), 0o644)
        entry = ScriptFd("file", live)
        return CallResult(self._script_num(expected, live),
                     after=lambda: self._register(self._script_num(expected, live), entry),
                     undo=lambda: self._discard(entry))

    def _do_sendfile(self, args: list[Any], expected: Any, extra: dict[str, Any]) -> CallResult:
        check_argc("sendfile", args, 4)
        out_fd, in_fd = self._live(args[0]), self._live(args[1])
        offset = bracketed_int(args[2], "offset")
        return CallResult(os.sendfile(out_fd, in_fd, offset, s32_value(args[3], "count")))

    # -- the rest ---------------------------------------------------------------------------------

    def tcp_info(self) -> dict[str, int]:
        """What a %{ }% block sees of the socket under test: struct tcp_info, then the congestion
        control's TCP_CC_INFO and SO_MEMINFO names, as packetdrill's code.c collects them."""
        with self._lock:
            entry = self.fds.get(self.sut) if self.sut is not None else None
        if entry is None or entry.sock is None:
            raise CallScriptError("%{ }% needs a socket under test (no socket() or accept() yet)")
        sock = entry.sock
        try:
            info = parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE))
        except OSError as exc:
            raise CallScriptError(f"can't find getsockopt to get TCP info: {exc.strerror}") from None
        with contextlib.suppress(OSError):
            info.update(parse_cc_info(sock.getsockopt(socket.IPPROTO_TCP, TCP_CC_INFO, TCP_CC_INFO_SIZE)))
        with contextlib.suppress(OSError):
            info.update(parse_meminfo(sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, SO_MEMINFO_SIZE)))
        return info

    def close_all(self) -> None:
        with self._lock:
            entries, self.fds = [*self.fds.values(), *self._shadowed], {}
            self._shadowed = []
        for entry in entries:
            self._discard(entry)


def _printable(data: bytes) -> str:
    """packetdrill's to_printable_string(): printable ASCII as is, other bytes as \\xHH."""
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in data)


def realtime_priority() -> None:
    """SCHED_RR at the lowest real-time priority, as packetdrill's set_scheduling_priority() does, so a
    busy machine does not delay a system call or a packet by milliseconds. Skipped on one CPU (a
    real-time thread must never make the machine unresponsive) and when not permitted."""
    if (os.cpu_count() or 1) <= 1:
        return
    with contextlib.suppress(OSError, AttributeError):
        policy = os.SCHED_RR
        os.sched_setscheduler(0, policy, os.sched_param(os.sched_get_priority_min(policy)))
