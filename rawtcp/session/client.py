"""The CLI's side of a session: start a keeper and follow it to ESTABLISHED, or send it a request.

Records stream back as JSON lines; the caller decides how to print them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

from rawtcp.session import registry
from rawtcp.session.errors import ProtocolError, SessionError
from rawtcp.session.protocol import (
    CloseRequest,
    DataReply,
    DoneReply,
    ErrorReply,
    HistoryReply,
    HistoryRequest,
    KeeperSpec,
    Record,
    RecvRequest,
    Reply,
    Request,
    SendRequest,
    Status,
    StatusRequest,
    decode_reply,
    encode_request,
)

R = TypeVar("R")


def _reply(line: bytes, who: str) -> Reply | Record:
    """One JSON line from a keeper: its final reply, or a streamed record to pass on."""
    try:
        obj = json.loads(line)
        return decode_reply(obj) or obj
    except ValueError:
        raise ProtocolError(f"{who} sent a line that is not JSON: {line[:80]!r}") from None


def start_keeper(spec: KeeperSpec, on_record: Callable[[Record], None]) -> Status:
    """Spawn the keeper (``sys.executable -m rawtcp.session.keeper`` so any venv works), print what it
    reports until the connection is ESTABLISHED, and return its 'ready' record. Interrupting the
    command terminates the keeper, which cleans up behind itself."""
    if registry.name_taken(spec.name):
        raise SessionError(f"a session named {spec.name!r} is already live (rawtcp close {spec.name})")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawtcp.session.keeper", spec.to_json()],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None,
        start_new_session=True,  # the keeper outlives this command and its terminal
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # not a record (a stray print before the keeper's output is ours)
            rec = decode_reply(obj) or obj
            if isinstance(rec, ErrorReply):
                proc.wait(timeout=30)
                raise rec.exception()
            if isinstance(rec, dict) and rec.get("type") == "ready":
                return rec  # type: ignore[return-value]  # decode_reply checked its fields
            on_record(rec)  # type: ignore[arg-type]  # a streamed record
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


def request(name: str, req: Request, on_record: Callable[[Record], None]) -> Reply:
    """Send one request to the named session's keeper; stream its records; return the final reply
    (an ErrorReply is raised as SessionError with its exit code)."""
    info = registry.find(name)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(info.socket_path))
    except OSError as exc:
        sock.close()
        raise SessionError(f"session {name!r} does not answer ({exc.strerror})") from None
    who = f"session {name!r}"
    with sock, sock.makefile("rb") as stream:
        sock.sendall(encode_request(req))
        for line in stream:
            rec = _reply(line, who)
            if isinstance(rec, ErrorReply):
                raise rec.exception()
            if isinstance(rec, HistoryReply | DoneReply | DataReply):
                return rec
            if rec.get("type") in ("status", "ready"):
                return rec  # type: ignore[return-value]  # decode_reply checked its fields
            on_record(rec)
    raise SessionError(f"{who} ended before answering")


def _expect(reply: Reply, kind: type[R], name: str, req: Request) -> R:
    if not isinstance(reply, kind):
        got = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise ProtocolError(f"session {name!r} answered a {req.to_json()['op']} request with {got!r}")
    return reply


def status(name: str, on_record: Callable[[Record], None] = lambda rec: None) -> Status:
    """The session's state, sequence numbers, windows and the peer's own socket state."""
    reply = request(name, StatusRequest(), on_record)
    if not isinstance(reply, dict):
        raise ProtocolError(f"session {name!r} answered a status request with {type(reply).__name__}")
    return reply


def history(name: str, on_record: Callable[[Record], None] = lambda rec: None) -> list[Record]:
    """Every record so far, including what the keeper did while no command ran."""
    req = HistoryRequest()
    return _expect(request(name, req, on_record), HistoryReply, name, req).records


def send_data(name: str, data: bytes, on_record: Callable[[Record], None], wait: float | None, *,
              progress: bool = False) -> DoneReply:
    """Send ``data``; the keeper gives up after ``wait`` seconds without ACK progress. ``progress``: have
    it report Progress records a few times a second too."""
    req = SendRequest(data, wait, progress)
    return _expect(request(name, req, on_record), DoneReply, name, req)


def recv_data(name: str, nbytes: int | None, wait: float | None, on_record: Callable[[Record], None], *,
              progress: bool = False) -> DataReply:
    """What has arrived, or ``nbytes`` of it (giving up after ``wait`` seconds without new data);
    ``progress`` as for `send_data` (with ``nbytes`` only)."""
    req = RecvRequest(nbytes, wait, progress)
    return _expect(request(name, req, on_record), DataReply, name, req)


def close(name: str, on_record: Callable[[Record], None], *, shutdown: bool = False, abort: bool = False,
          wait: float | None = None) -> DoneReply:
    """The four-way close (``shutdown``: our FIN only; ``abort``: RST), done once it has finished."""
    req = CloseRequest("shutdown" if shutdown else "close", abort, wait)
    return _expect(request(name, req, on_record), DoneReply, name, req)
