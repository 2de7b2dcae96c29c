"""Shared helpers of the executor tests (no tests here): run one script line against an Executor on loopback."""

from __future__ import annotations

import socket

import pytest

from rawtcp.script import parse
from rawtcp.script.syscalls import Addresses, Executor, Outcome, encode_expr


def call(ex: Executor, line: str) -> Outcome:
    """Run the system call written on ``line`` (script syntax, without the time)."""
    ev = parse(f"0 {line}\n").events[0]
    return ex.call(ev.name, [encode_expr(a) for a in ev.args], encode_expr(ev.result), ev.errno)


def ok(ex: Executor, line: str) -> Outcome:
    """``call``, asserting the call matched the script."""
    out = call(ex, line)
    assert out.error is None, f"{line}: {out.error}"
    return out


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def loopback(mode: str = "ipv4") -> Executor:
    """An executor whose lab is loopback: bind to an ephemeral port, connect wherever a test says.
    IPv6 tests skip where ::1 does not exist (a container started with IPv6 off)."""
    if mode == "ipv6" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    ip = "::1" if mode == "ipv6" else "127.0.0.1"
    return Executor(Addresses(ip, ip, bind_port=0, connect_port=0, mode=mode))


def connected_pair(ex: Executor, listen_fd: int = 3, conn_fd: int = 4) -> socket.socket:
    """A listener at script fd ``listen_fd``, a peer connected to it, accepted as ``conn_fd``; the peer."""
    ok(ex, f"socket(..., SOCK_STREAM, IPPROTO_TCP) = {listen_fd}")
    ok(ex, f"setsockopt({listen_fd}, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
    ok(ex, f"bind({listen_fd}, ..., ...) = 0")
    ok(ex, f"listen({listen_fd}, 1) = 0")
    addr = ex.socks[listen_fd].getsockname()
    peer = socket.create_connection(addr[:2])
    ok(ex, f"accept({listen_fd}, ..., ...) = {conn_fd}")
    return peer
