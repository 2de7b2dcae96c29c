"""The kernel listener on both families at once, in this namespace on loopback (no root)."""

from __future__ import annotations

import socket

import pytest
from listener_helpers import local_listener, recv_all, wait_log


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


@pytest.fixture
def dual_listener(tmp_path):
    with local_listener(tmp_path, "echo", addr6="::1") as proc:
        yield proc


def _echo(family: int, addr: str, port: int, data: bytes) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((addr, port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == data
        return s.getsockname()[1]


def test_one_listener_answers_ipv4_and_ipv6_on_the_same_port(dual_listener):
    port4 = _echo(socket.AF_INET, "127.0.0.1", dual_listener.port, b"four" * 100)
    port6 = _echo(socket.AF_INET6, "::1", dual_listener.port, b"six" * 1000)
    records = sorted(wait_log(dual_listener.log, 2), key=lambda r: r["received"])
    assert [(r["peer"], r["received"], r["sent"]) for r in records] == [
        (f"127.0.0.1:{port4}", 400, 400), (f"[::1]:{port6}", 3000, 3000)]
    # IPv6 in brackets, and the IPv4 connection on a plain AF_INET socket (not an IPv4-mapped one).
    assert records[1]["local"] == f"[::1]:{dual_listener.port}"
    assert records[0]["local"] == f"127.0.0.1:{dual_listener.port}"

