"""The CLI's side of a session: start a keeper and follow it to ESTABLISHED, or send it a request.

Records stream back as JSON lines; the caller decides how to print them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from rawtcp.session import registry
from rawtcp.session.errors import SessionError

Record = dict[str, Any]
FINAL = {"done", "data", "status", "error", "history", "ready"}


def _error(rec: Record) -> SessionError:
    exc = SessionError(rec.get("message", "failed"))
    exc.exit_code = int(rec.get("code", 1))
    return exc


def start_keeper(spec: dict[str, Any], on_record: Callable[[Record], None]) -> Record:
    """Spawn the keeper (``sys.executable -m rawtcp.session.keeper`` so any venv works), print what it
    reports until the connection is ESTABLISHED, and return its 'ready' record. Interrupting the
    command terminates the keeper, which cleans up behind itself."""
    registry.check_name(spec["name"])
    if registry.name_taken(spec["name"]):
        raise SessionError(f"a session named {spec['name']!r} is already live (rawtcp close {spec['name']})")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawtcp.session.keeper", json.dumps(spec)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None,
        start_new_session=True,  # the keeper outlives this command and its terminal
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "ready":
                return rec
            if rec.get("type") == "error":
                proc.wait(timeout=30)
                raise _error(rec)
            on_record(rec)
        code = proc.wait(timeout=30)
        raise SessionError(f"the session keeper exited ({code}) before the connection was established")
    except (KeyboardInterrupt, SystemExit):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        raise
    finally:
        proc.stdout.close()


def request(name: str, req: dict[str, Any], on_record: Callable[[Record], None]) -> Record:
    """Send one request to the named session's keeper; stream its records; return the final one."""
    info = registry.find(name)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(info.socket_path))
    except OSError as exc:
        sock.close()
        raise SessionError(f"session {name!r} does not answer ({exc.strerror})") from None
    with sock, sock.makefile("rb") as stream:
        sock.sendall(json.dumps(req).encode() + b"\n")
        for line in stream:
            rec = json.loads(line)
            if rec.get("type") in FINAL:
                if rec["type"] == "error":
                    raise _error(rec)
                return rec
            on_record(rec)
    raise SessionError(f"session {name!r} ended before answering")


def send_data(name: str, data: bytes, on_record: Callable[[Record], None], wait: float | None, *,
              progress: bool = False) -> Record:
    """Send ``data``; the keeper gives up after ``wait`` seconds without ACK progress. ``progress``: have
    it report {"type": "progress", "done", "total", "elapsed"} records a few times a second too."""
    return request(name, {"op": "send", "data": base64.b64encode(data).decode(), "wait": wait,
                          "progress": progress}, on_record)


def recv_data(name: str, nbytes: int | None, wait: float | None, on_record: Callable[[Record], None], *,
              progress: bool = False) -> tuple[bytes, Record]:
    """What has arrived, or ``nbytes`` of it (giving up after ``wait`` seconds without new data);
    ``progress`` as for `send_data` (with ``nbytes`` only)."""
    rec = request(name, {"op": "recv", "bytes": nbytes, "wait": wait, "progress": progress}, on_record)
    return base64.b64decode(rec.get("data", "")), rec
