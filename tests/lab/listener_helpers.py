"""The kernel listener on this namespace's loopback (no root): started for a test, its log read back."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rawtcp.lab.topology import ListenerProcess, read_listener_log, spawn_listener, stop_listener


@contextmanager
def local_listener(tmp_path: Path, mode: str, addr6: str | None = None) -> Iterator[ListenerProcess]:
    """A listener in ``mode`` on 127.0.0.1 (and ``addr6`` too, when given), on a free port."""
    proc = spawn_listener(None, mode, "127.0.0.1", 0, log=tmp_path / "listener.jsonl", close_delay=0.05,
                          addr6=addr6)
    try:
        yield proc
    finally:
        stop_listener(proc)


def wait_log(path: Path | None, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    # The listener writes its line after closing; the test cannot be notified of a file append.
    assert path is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        records = read_listener_log(path)
        if len(records) >= count:
            return records
        time.sleep(0.01)
    return read_listener_log(path)


def recv_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out
