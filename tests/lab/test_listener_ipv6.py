"""The kernel listener on both families at once, in this namespace on loopback (no root)."""

from __future__ import annotations

import socket
import time

import pytest

from rawtcp.lab.topology import read_listener_log, spawn_listener, stop_listener


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


def _wait_log(path, count, timeout=5.0):
    # The listener writes its line after closing; the test cannot be notified of a file append.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        records = read_listener_log(path)
        if len(records) >= count:
            return records
        time.sleep(0.01)
    return read_listener_log(path)


@pytest.fixture
def dual_listener(tmp_path):
    log = tmp_path / "listener.jsonl"
    proc = spawn_listener(None, "echo", "127.0.0.1", 0, log=log, close_delay=0.05, addr6="::1")
    yield proc
    stop_listener(proc)


def _echo(family: int, addr: str, port: int, data: bytes) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((addr, port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        assert got == data
        return s.getsockname()[1]


def test_one_listener_answers_ipv4_and_ipv6_on_the_same_port(dual_listener):
    port4 = _echo(socket.AF_INET, "127.0.0.1", dual_listener.port, b"four" * 100)
    port6 = _echo(socket.AF_INET6, "::1", dual_listener.port, b"six" * 1000)
    records = sorted(_wait_log(dual_listener.log, 2), key=lambda r: r["received"])
    assert [(r["peer"], r["received"], r["sent"]) for r in records] == [
        (f"127.0.0.1:{port4}", 400, 400), (f"[::1]:{port6}", 3000, 3000)]
    # IPv6 in brackets, and the IPv4 connection on a plain AF_INET socket (not an IPv4-mapped one).
    assert records[1]["local"] == f"[::1]:{dual_listener.port}"
    assert records[0]["local"] == f"127.0.0.1:{dual_listener.port}"

