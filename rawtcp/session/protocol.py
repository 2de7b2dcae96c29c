"""What crosses between a command and its session keeper, as typed records.

Three messages, each a JSON object, each written and read here and nowhere else:

- the keeper's :class:`KeeperSpec`, its one argument (``python -m rawtcp.session.keeper SPEC_JSON``);
- a request, one JSON line on the keeper's control socket: :class:`StatusRequest`,
  :class:`HistoryRequest`, :class:`SendRequest`, :class:`RecvRequest` or :class:`CloseRequest`;
- the keeper's answer: JSON lines of records (segments, state changes, events, :class:`Progress`: the
  ``--json`` output, passed through as dicts) ending in one final reply: a :class:`Status`
  (``status``, and ``ready`` when a connection opens), :class:`HistoryReply`, :class:`DoneReply`,
  :class:`DataReply` or :class:`ErrorReply`.

A malformed message raises ProtocolError with one line naming the message and the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict

from rawtcp.errors import BAD_INPUT, FAILED
from rawtcp.session.connection import ConnectionSpec
from rawtcp.session.errors import ProtocolError, SessionError
from rawtcp.session.jsonrecord import build, fields_from_json, parse_object, require_object
from rawtcp.session.registry import NAME_RE

Record = dict[str, Any]  # a streamed record: segment, state change, event, progress (records.py's shapes)


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"malformed {what}: field 'data' must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"malformed {what}: field 'data' is not base64") from None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _check_wait(wait: float | None) -> None:
    if wait is not None and not wait >= 0:  # also NaN
        raise ValueError(f"wait must be 0 or more seconds, not {wait}")


# --- the keeper's spec ----------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelPeer:
    """The lab stack on the other end, whose own socket state the keeper watches."""

    ip: str
    port: int

    def to_json(self) -> dict[str, Any]:
        return {"ip": self.ip, "port": self.port}

    @classmethod
    def from_json(cls, obj: object, what: str = "kernel peer") -> KernelPeer:
        return build(cls, fields_from_json(cls, obj, what), what)


@dataclass(frozen=True)
class KeeperSpec:
    """Everything a keeper needs: the session's name and namespace, the connection, its time limits."""

    WHAT: ClassVar[str] = "keeper spec"

    name: str
    connection: ConnectionSpec
    netns: str | None = None  # entered before anything else; None: the keeper's own
    kernel: KernelPeer | None = None  # the peer lives in a lab namespace: watch its socket's state too
    idle: float = 600.0  # close (FIN) after this many seconds without a command
    open_timeout: float = 3600.0  # a passive open gives up waiting for a SYN after this long

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"bad session name {self.name!r}")
        for label, seconds in (("idle", self.idle), ("open_timeout", self.open_timeout)):
            if not seconds >= 0:
                raise ValueError(f"{label} must be 0 or more seconds, not {seconds}")

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "netns": self.netns,
                           "kernel": None if self.kernel is None else self.kernel.to_json(),
                           "idle": self.idle, "open_timeout": self.open_timeout,
                           "connection": self.connection.to_json()})

    @classmethod
    def from_json(cls, text: str | bytes) -> KeeperSpec:
        obj = parse_object(text, cls.WHAT)
        kwargs = fields_from_json(cls, obj, cls.WHAT, convert={
            "connection": lambda v: ConnectionSpec.from_json(v, f"{cls.WHAT} (connection)"),
            "kernel": lambda v: None if v is None else KernelPeer.from_json(v, f"{cls.WHAT} (kernel)"),
        })
        return build(cls, kwargs, cls.WHAT)


# --- requests -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatusRequest:
    op: ClassVar[str] = "status"

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op}


@dataclass(frozen=True)
class HistoryRequest:
    """Every record so far, including what the keeper did while no command ran."""

    op: ClassVar[str] = "history"

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op}


@dataclass(frozen=True)
class SendRequest:
    """Queue ``data``; done once all of it is acknowledged, failed after ``wait`` s without ACK progress."""

    op: ClassVar[str] = "send"

    data: bytes
    wait: float | None = None
    progress: bool = False  # Progress records a few times a second (a terminal's status line)

    def __post_init__(self) -> None:
        _check_wait(self.wait)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "data": _b64encode(self.data), "wait": self.wait, "progress": self.progress}


@dataclass(frozen=True)
class RecvRequest:
    """What has arrived, or ``nbytes`` of it (giving up after ``wait`` s without new data)."""

    op: ClassVar[str] = "recv"

    nbytes: int | None = None  # "bytes" on the wire
    wait: float | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        _check_wait(self.wait)
        if self.nbytes is not None and self.nbytes < 1:
            raise ValueError(f"bytes must be 1 or more, not {self.nbytes}")

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "bytes": self.nbytes, "wait": self.wait, "progress": self.progress}


@dataclass(frozen=True)
class CloseRequest:
    """``close`` (the four-way close), ``shutdown`` (our FIN only), or either with ``abort`` (RST)."""

    op: Literal["close", "shutdown"] = "close"
    abort: bool = False
    wait: float | None = None

    def __post_init__(self) -> None:
        _check_wait(self.wait)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "abort": self.abort, "wait": self.wait}


Request = StatusRequest | HistoryRequest | SendRequest | RecvRequest | CloseRequest
_REQUEST_KINDS: dict[str, type[Request]] = {"status": StatusRequest, "history": HistoryRequest,
                                            "send": SendRequest, "recv": RecvRequest,
                                            "close": CloseRequest, "shutdown": CloseRequest}


def encode_request(request: Request) -> bytes:
    """One request line for the control socket."""
    return json.dumps(request.to_json()).encode() + b"\n"


def decode_request(line: str | bytes) -> Request:
    """The request on one control-socket line."""
    what = "request"
    obj = parse_object(line, what)
    op = obj.get("op")
    kind = _REQUEST_KINDS.get(op) if isinstance(op, str) else None
    if kind is None:
        raise ProtocolError(f"malformed {what}: unknown op {op!r} (one of {', '.join(_REQUEST_KINDS)})")
    what = f"{op} request"
    if kind is CloseRequest:
        return build(kind, fields_from_json(kind, obj, what), what)
    convert = {"data": lambda v: _b64decode(v, what)} if kind is SendRequest else None
    rename = {"bytes": "nbytes"} if kind is RecvRequest else None
    return build(kind, fields_from_json(kind, obj, what, convert=convert, rename=rename, ignore=("op",)), what)


# --- replies --------------------------------------------------------------------------------------
class Status(TypedDict):
    """``rawtcp status --json`` and ``Connection.status()``: a dict on purpose, printed as it comes.

    ``type`` is "status", or "ready" for the record that ends a successful open."""

    type: Literal["status", "ready"]
    name: str
    pid: int
    state: str
    local: str
    remote: str
    snd_una: int
    snd_nxt: int
    rcv_nxt: int
    rel_snd_una: int
    rel_snd_nxt: int
    rel_rcv_nxt: int
    iss: int
    irs: int | None
    peer_window: int
    peer_mss: int | None
    send_mss: int
    rcv_wnd: int
    readable: int
    unsent: int
    in_flight: int
    peer_closed: bool
    retransmits: int
    profile: str
    sack: bool
    timestamps: bool
    snd_wscale: int | None
    rcv_wscale: int | None
    nagle: bool
    delayed_ack: bool
    rto: float
    srtt: float | None
    cwnd: int
    kernel_state: str | None
    kernel_state_source: str | None
    stack: str | None
    netns: str | None


def _status_from_json(obj: dict[str, Any]) -> Status:
    """A status or ready record: every field present (their values are the keeper's to report)."""
    what = f"{obj.get('type')} reply"
    missing = sorted(Status.__required_keys__ - obj.keys())
    if missing:
        raise ProtocolError(f"malformed {what}: missing field {missing[0]!r}")
    return Status(**obj)  # type: ignore[typeddict-item]  # checked just above


@dataclass(frozen=True)
class HistoryReply:
    TYPE: ClassVar[str] = "history"

    records: list[Record]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "records": self.records}


@dataclass(frozen=True)
class DoneReply:
    """A send acknowledged, or a close/shutdown finished (``time_wait``: the 2MSL the keeper holds)."""

    TYPE: ClassVar[str] = "done"

    op: Literal["send", "close", "shutdown"]
    state: str
    bytes: int | None = None  # send: how many bytes were acknowledged
    time_wait: float | None = None  # close reached TIME-WAIT: its length, seconds

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE, "op": self.op, "state": self.state}
        if self.bytes is not None:
            out["bytes"] = self.bytes
        if self.time_wait is not None:
            out["time_wait"] = self.time_wait
        return out


@dataclass(frozen=True)
class DataReply:
    """What a recv read from the keeper's buffer."""

    TYPE: ClassVar[str] = "data"

    data: bytes
    state: str
    peer_closed: bool = False  # the peer's FIN came and nothing is left to read
    quiet: float | None = None  # short because nothing new came for this many seconds

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": _b64encode(self.data), "bytes": len(self.data),
                "peer_closed": self.peer_closed, "state": self.state, "quiet": self.quiet}


@dataclass(frozen=True)
class ErrorReply:
    """A request (or the open) failed: one line and the exit code it means."""

    TYPE: ClassVar[str] = "error"

    message: str
    code: int = FAILED

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "message": self.message, "code": self.code}

    def exception(self) -> SessionError:
        return SessionError(self.message, self.code)


@dataclass(frozen=True)
class Progress:
    """How far a long send or recv is, for the command's status line (streamed, not final)."""

    TYPE: ClassVar[str] = "progress"

    op: Literal["send", "recv"]
    done: int
    total: int
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "op": self.op, "done": self.done, "total": self.total, "elapsed": self.elapsed}

    @classmethod
    def from_json(cls, obj: object) -> Progress:
        what = "progress record"
        return build(cls, fields_from_json(cls, obj, what, ignore=("type",)), what)


Reply = Status | HistoryReply | DoneReply | DataReply | ErrorReply
FINAL = ("status", "ready", "history", "done", "data", "error")  # the record types that end an answer


def reply_to_json(reply: Reply) -> dict[str, Any]:
    return dict(reply) if isinstance(reply, dict) else reply.to_json()


def decode_reply(obj: object) -> Reply | None:
    """The final reply a keeper's JSON line carries, or None for a streamed record (passed on as is)."""
    data = require_object(obj, "reply")
    kind = data.get("type")
    if kind not in FINAL:
        return None
    what = f"{kind} reply"
    if kind in ("status", "ready"):
        return _status_from_json(data)
    if kind == "history":
        return build(HistoryReply, fields_from_json(HistoryReply, data, what, ignore=("type",)), what)
    if kind == "done":
        return build(DoneReply, fields_from_json(DoneReply, data, what, ignore=("type",)), what)
    if kind == "data":
        kwargs = fields_from_json(DataReply, data, what, ignore=("type", "bytes"),
                                  convert={"data": lambda v: _b64decode(v, what)})
        return build(DataReply, kwargs, what)
    # An error without a code is a plain failure (exit 1).
    return build(ErrorReply, fields_from_json(ErrorReply, data, what, ignore=("type",)), what)


def bad_request(exc: ProtocolError) -> ErrorReply:
    """The keeper's answer to a request it cannot read: the command's fault, not the connection's."""
    return ErrorReply(str(exc), BAD_INPUT)
