"""The kernel listener in this namespace on 127.0.0.1 (no root): modes, log lines, clean exit."""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import subprocess
import sys

import pytest
from listener_helpers import local_listener, recv_all, wait_log

from rawtcp.lab.listener import SEED_ANSWER


@pytest.fixture
def listener(tmp_path, request):
    with local_listener(tmp_path, request.param) as proc:
        yield proc


@pytest.mark.parametrize("listener", ["echo"], indirect=True)
def test_echo_returns_the_bytes_and_logs_them(listener):
    data = bytes(range(256)) * 1000
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        port = s.getsockname()[1]
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == data
    (rec,) = wait_log(listener.log, 1)
    assert rec["mode"] == "echo" and rec["received"] == rec["sent"] == len(data)
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    assert rec["peer"] == f"127.0.0.1:{port}" and rec["local"] == f"127.0.0.1:{listener.port}"


@pytest.mark.parametrize("listener", ["sink"], indirect=True)
def test_sink_discards_and_counts(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"x" * 12345)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
    (rec,) = wait_log(listener.log, 1)
    assert (rec["mode"], rec["received"], rec["sent"]) == ("sink", 12345, 0)


@pytest.mark.parametrize("listener", ["seed"], indirect=True)
def test_seed_answers_twenty_bytes_with_ten(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"A" * 20)
        got = b""
        while len(got) < len(SEED_ANSWER):
            got += s.recv(64)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
    assert got == SEED_ANSWER and len(SEED_ANSWER) == 10
    (rec,) = wait_log(listener.log, 1)
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


@pytest.mark.parametrize("listener", ["echo"], indirect=True)
def test_many_connections_at_once_are_each_echoed_and_logged(listener):
    # One event loop serves them all: 200 connections open at the same time, each with its own bytes.
    socks = [socket.create_connection(("127.0.0.1", listener.port), timeout=10) for _ in range(200)]
    try:
        for i, s in enumerate(socks):
            s.sendall(b"%d." % i * 10)
        for i, s in enumerate(socks):
            s.shutdown(socket.SHUT_WR)
            assert recv_all(s) == b"%d." % i * 10
    finally:
        for s in socks:
            s.close()
    records = wait_log(listener.log, 200)
    assert len(records) == 200 and all(r["error"] is None and r["received"] == r["sent"] for r in records)


@pytest.mark.parametrize("listener", ["echo"], indirect=True)
def test_echo_waits_for_a_peer_that_does_not_read(listener):
    # 8 MiB sent before anything is read back: the echo must hold what the peer's window refuses, then
    # finish once the peer reads (a blocking sendall did this in a thread; the event loop buffers it).
    data = bytes(range(256)) * (8 << 12)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=20) as s:
        s.setblocking(False)
        sent, got = 0, bytearray()
        while sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:  # only now read: both directions' buffers are full first
                select.select([s], [], [], 5.0)
                with contextlib.suppress(BlockingIOError):
                    got += s.recv(1 << 20)
        s.setblocking(True)
        s.shutdown(socket.SHUT_WR)
        got += recv_all(s)
    assert bytes(got) == data
    (rec,) = wait_log(listener.log, 1)
    assert rec["received"] == rec["sent"] == len(data) and rec["error"] is None


@pytest.mark.parametrize("mode", ["echo", "seed"])
def test_blocking_serve_logs_what_the_event_loop_logs(tmp_path, mode):
    # serve() is the thread-per-connection form, kept for another stack's sockets (the PyTCP agent).
    import json

    from rawtcp.lab.listener import EventLog, serve

    log_path = tmp_path / "log.jsonl"
    with socket.create_server(("127.0.0.1", 0)) as srv:
        b = socket.create_connection(srv.getsockname(), timeout=10)
        a, _ = srv.accept()
    with open(log_path, "a", encoding="utf-8") as fh:
        b.sendall(b"B" * 25)
        b.shutdown(socket.SHUT_WR)
        serve(a, ("198.18.0.1", 40000), mode, EventLog(fh), close_delay=0.0)
    back = recv_all(b)
    b.close()
    (rec,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert rec["peer"] == "198.18.0.1:40000" and rec["received"] == 25 and rec["error"] is None
    assert back == (b"B" * 25 if mode == "echo" else SEED_ANSWER) and rec["sent"] == len(back)
