"""The kernel listener in this namespace on 127.0.0.1 (no root): modes, log lines, clean exit."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time

import pytest

from rawtcp.lab.listener import SEED_ANSWER
from rawtcp.lab.topology import read_listener_log, spawn_listener, stop_listener


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
def listener(tmp_path, request):
    log = tmp_path / "listener.jsonl"
    proc = spawn_listener(None, request.param, "127.0.0.1", 0, log=log, close_delay=0.05)
    yield proc
    stop_listener(proc)


def _recv_all(sock):
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


@pytest.mark.parametrize("listener", ["echo"], indirect=True)
def test_echo_returns_the_bytes_and_logs_them(listener):
    data = bytes(range(256)) * 1000
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        port = s.getsockname()[1]
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert _recv_all(s) == data
    (rec,) = _wait_log(listener.log, 1)
    assert rec["mode"] == "echo" and rec["received"] == rec["sent"] == len(data)
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    assert rec["peer"] == f"127.0.0.1:{port}" and rec["local"] == f"127.0.0.1:{listener.port}"


@pytest.mark.parametrize("listener", ["sink"], indirect=True)
def test_sink_discards_and_counts(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"x" * 12345)
        s.shutdown(socket.SHUT_WR)
        assert _recv_all(s) == b""
    (rec,) = _wait_log(listener.log, 1)
    assert (rec["mode"], rec["received"], rec["sent"]) == ("sink", 12345, 0)


@pytest.mark.parametrize("listener", ["seed"], indirect=True)
def test_seed_answers_twenty_bytes_with_ten(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"A" * 20)
        got = b""
        while len(got) < len(SEED_ANSWER):
            got += s.recv(64)
        s.shutdown(socket.SHUT_WR)
        assert _recv_all(s) == b""
    assert got == SEED_ANSWER and len(SEED_ANSWER) == 10
    (rec,) = _wait_log(listener.log, 1)
    assert (rec["mode"], rec["received"], rec["sent"]) == ("seed", 20, 10)


@pytest.mark.parametrize("listener", ["echo"], indirect=True)
def test_new_handshakes_complete_while_old_connections_are_open(listener):
    # Ten idle connections held open must not stop the eleventh from being served.
    held = [socket.create_connection(("127.0.0.1", listener.port), timeout=10) for _ in range(10)]
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
    finally:
        for h in held:
            h.close()


@pytest.mark.parametrize("listener", ["echo"], indirect=True)
def test_sigterm_exits_cleanly(listener):
    listener.popen.terminate()
    assert listener.popen.wait(timeout=5) == 0


def test_bad_mode_is_refused():
    proc = subprocess.run([sys.executable, "-m", "rawtcp.lab.listener", "--mode", "bogus"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
