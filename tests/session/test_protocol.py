"""The messages between a command and its session keeper: each record survives its JSON round trip, and
a malformed one fails with one line naming the message and the field.

Pure tests (no root): the specs come from the CLI's own builders with an explicit --iface, and the
keeper at the far end of a control socket is a thread answering canned lines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from rawtcp.commands.engine import active_spec, passive_spec
from rawtcp.errors import BAD_INPUT, FAILED, REFUSED
from rawtcp.session import client, registry
from rawtcp.session.connection import ConnectionSpec
from rawtcp.session.errors import ProtocolError, SessionError
from rawtcp.session.protocol import (
    CloseRequest,
    DataReply,
    DoneReply,
    ErrorReply,
    HistoryReply,
    HistoryRequest,
    KeeperSpec,
    KernelPeer,
    Progress,
    RecvRequest,
    SendRequest,
    Status,
    StatusRequest,
    bad_request,
    decode_reply,
    decode_request,
    encode_request,
    reply_to_json,
)
from rawtcp.session.registry import SessionInfo


@pytest.fixture(autouse=True)
def private_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("RAWTCP_RUNTIME_DIR", str(tmp_path / "run"))


def _over_the_wire(obj: dict) -> dict:
    return json.loads(json.dumps(obj))


def _status(kind: str = "status") -> Status:
    return Status(type=kind, name="c1", pid=1234, state="ESTABLISHED", local="198.18.0.1:40000",  # type: ignore[typeddict-item]
                  remote="198.18.0.2:8080", snd_una=1001, snd_nxt=1001, rcv_nxt=5001, rel_snd_una=1,
                  rel_snd_nxt=1, rel_rcv_nxt=1, iss=1000, irs=5000, peer_window=64240, peer_mss=1460,
                  send_mss=1460, rcv_wnd=65535, readable=0, unsent=0, in_flight=0, peer_closed=False,
                  retransmits=0, profile="linux", sack=True, timestamps=True, snd_wscale=7, rcv_wscale=7,
                  nagle=True, delayed_ack=True, rto=0.2, srtt=0.0001, cwnd=14600, kernel_state="ESTABLISHED",
                  kernel_state_source="tracepoint", stack="linux", netns="rawtcp-client")


def _malformed(exc: pytest.ExceptionInfo[ProtocolError], *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message.startswith("malformed"), message
    for word in words:
        assert word in message, message


# --- round trips ---------------------------------------------------------------------------------
def test_the_cli_specs_round_trip():
    active = active_spec("198.18.0.2", 8080, iface="eth0", name="c7", bare=True, sack=True, keepalive=30.0,
                         isn=12345, pcap=None)
    passive = passive_spec(9000, iface="eth0", local_ip="2001:db8::2", timeout=5.0, wscale=3)
    for spec in (active, passive):
        assert KeeperSpec.from_json(spec.to_json()) == spec
    assert passive.connection.passive and passive.connection.remote_ip is None and passive.open_timeout == 5.0


def test_a_spec_with_a_kernel_peer_round_trips():
    spec = KeeperSpec("c1", ConnectionSpec("198.18.0.2", 8080, profile="bare", rto_min=1.0), netns="rawtcp-client",
                      kernel=KernelPeer("198.18.0.2", 8080), idle=5.0)
    back = KeeperSpec.from_json(spec.to_json())
    assert back == spec and isinstance(back.kernel, KernelPeer)


def test_every_connection_field_is_on_the_wire():
    """The keeper reads what the command decided, defaults included, not its own defaults."""
    spec = ConnectionSpec("198.18.0.2", 8080)
    assert ConnectionSpec.from_json(_over_the_wire(spec.to_json())) == spec
    assert set(spec.to_json()) >= {"profile", "max_retries", "msl2", "passive", "rto_min"}


@pytest.mark.parametrize("request_", [
    StatusRequest(), HistoryRequest(), SendRequest(b"\x00hello\xff", wait=60.0, progress=True),
    SendRequest(b"x"), RecvRequest(), RecvRequest(100, 10.0, progress=True), CloseRequest(),
    CloseRequest("shutdown", wait=30.0), CloseRequest("close", abort=True, wait=5.0),
], ids=repr)
def test_requests_round_trip(request_):
    line = encode_request(request_)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_request(line) == request_


def test_requests_keep_their_wire_shape():
    """What scripts and older commands write to the control socket still reads the same."""
    assert decode_request(b'{"op": "status"}') == StatusRequest()
    assert decode_request(b'{"op": "recv", "bytes": 5, "wait": null, "progress": false}') == RecvRequest(5)
    assert decode_request(b'{"op": "send", "data": "aGk=", "wait": 60}') == SendRequest(b"hi", 60.0)
    assert decode_request(b'{"op": "close", "abort": true, "wait": 5}') == CloseRequest("close", True, 5.0)
    assert json.loads(encode_request(RecvRequest(5))) == {"op": "recv", "bytes": 5, "wait": None, "progress": False}


@pytest.mark.parametrize("reply", [
    DoneReply("send", "ESTABLISHED", bytes=5), DoneReply("close", "TIME-WAIT", time_wait=2.0),
    DoneReply("shutdown", "FIN-WAIT-2"), DataReply(b"hello\x00", "ESTABLISHED"),
    DataReply(b"", "CLOSE-WAIT", peer_closed=True), DataReply(b"ab", "ESTABLISHED", quiet=10.0),
    ErrorReply("cannot send in state CLOSED"), ErrorReply("connection refused", REFUSED),
    HistoryReply([{"type": "state", "t": 0.0, "who": "rawtcp", "old": "CLOSED", "new": "SYN-SENT", "cause": ""}]),
], ids=repr)
def test_replies_round_trip(reply):
    assert decode_reply(_over_the_wire(reply_to_json(reply))) == reply


@pytest.mark.parametrize("kind", ["status", "ready"])
def test_status_and_ready_round_trip_as_dicts(kind):
    status = _status(kind)
    back = decode_reply(_over_the_wire(reply_to_json(status)))
    assert back == status and isinstance(back, dict)


def test_replies_keep_their_wire_shape():
    assert reply_to_json(DataReply(b"hi", "ESTABLISHED")) == {
        "type": "data", "data": "aGk=", "bytes": 2, "peer_closed": False, "state": "ESTABLISHED", "quiet": None}
    assert reply_to_json(DoneReply("send", "ESTABLISHED", bytes=2)) == {
        "type": "done", "op": "send", "state": "ESTABLISHED", "bytes": 2}
    # an error from an older keeper carries no code: a plain failure
    assert decode_reply({"type": "error", "message": "bad"}) == ErrorReply("bad", FAILED)


def test_streamed_records_pass_through():
    for rec in ({"type": "segment", "dir": "out"}, {"type": "event", "event": "x"}, {"type": "message"}):
        assert decode_reply(rec) is None


def test_progress_round_trips():
    progress = Progress("send", 1000, 4096, 0.25)
    assert Progress.from_json(_over_the_wire(progress.to_json())) == progress
    assert progress.to_json()["type"] == "progress"


def test_session_file_round_trips(tmp_path):
    info = SessionInfo("c1", 4321, "rawtcp-client", "198.18.0.1:40000", "198.18.0.2:8080", "client",
                       iface="veth-c", started=1.5e9, pcap=str(tmp_path / "c1.pcap"))
    assert SessionInfo.from_json(info.to_json()) == info
    # A file from before the fields were typed still reads (only name and pid were ever required).
    assert SessionInfo.from_json('{"name": "c2", "pid": 7}') == SessionInfo("c2", 7)


# --- malformed messages ------------------------------------------------------------------------------
@pytest.mark.parametrize(("line", "words"), [
    (b"{not json", ("request", "not JSON")),
    (b"[1, 2]", ("request", "JSON object", "list")),
    (b'{"op": "dance"}', ("unknown op", "'dance'")),
    (b'{"wait": 1}', ("unknown op", "None")),
    (b'{"op": "send"}', ("send request", "missing field 'data'")),
    (b'{"op": "send", "data": "!!!"}', ("send request", "'data'", "base64")),
    (b'{"op": "send", "data": 5}', ("send request", "'data'", "base64")),
    (b'{"op": "recv", "bytes": "ten"}', ("recv request", "'bytes'", "a string")),
    (b'{"op": "recv", "bytes": true}', ("recv request", "'bytes'", "a boolean")),
    (b'{"op": "recv", "bytes": 0}', ("recv request", "bytes must be 1 or more")),
    (b'{"op": "close", "wait": -1}', ("close request", "wait must be")),
    (b'{"op": "close", "abort": "yes"}', ("close request", "'abort'")),
    (b'{"op": "status", "verbose": true}', ("status request", "unknown field 'verbose'")),
])
def test_malformed_requests_fail_in_one_line(line, words):
    with pytest.raises(ProtocolError) as exc:
        decode_request(line)
    _malformed(exc, *words)
    assert bad_request(exc.value).code == BAD_INPUT  # the keeper answers: the command's fault


def _spec_json(**changes) -> str:
    obj = json.loads(active_spec("198.18.0.2", 8080, iface="eth0", name="c1").to_json())
    for key, value in changes.items():
        if key.startswith("connection."):
            obj["connection"][key.split(".", 1)[1]] = value
        elif value is None:
            del obj[key]
        else:
            obj[key] = value
    return json.dumps(obj)


@pytest.mark.parametrize(("text", "words"), [
    ("", ("keeper spec", "not JSON")),
    ('"c1"', ("keeper spec", "JSON object")),
    (_spec_json(name=None), ("keeper spec", "missing field 'name'")),
    (_spec_json(name="no spaces"), ("keeper spec", "bad session name")),
    (_spec_json(idle="long"), ("keeper spec", "'idle'", "a string")),
    (_spec_json(connection=None), ("keeper spec", "missing field 'connection'")),
    (_spec_json(connection=[1]), ("keeper spec (connection)", "JSON object")),
    (_spec_json(kernel={"ip": "198.18.0.2"}), ("keeper spec (kernel)", "missing field 'port'")),
    (_spec_json(**{"connection.profile": "bsd"}), ("keeper spec (connection)", "unknown profile 'bsd'")),
    (_spec_json(**{"connection.remote_port": "8080"}), ("keeper spec (connection)", "'remote_port'")),
    (_spec_json(**{"connection.extra": {}}), ("keeper spec (connection)", "unknown field 'extra'")),
])
def test_malformed_specs_fail_in_one_line(text, words):
    with pytest.raises(ProtocolError) as exc:
        KeeperSpec.from_json(text)
    _malformed(exc, *words)


@pytest.mark.parametrize(("obj", "words"), [
    ({"type": "done", "op": "send"}, ("done reply", "missing field 'state'")),
    ({"type": "done", "op": "dance", "state": "CLOSED"}, ("done reply", "'op'")),
    ({"type": "data", "state": "ESTABLISHED", "data": "%%"}, ("data reply", "base64")),
    ({"type": "error"}, ("error reply", "missing field 'message'")),
    ({"type": "history", "records": {}}, ("history reply", "'records'")),
    ({"type": "status", "state": "ESTABLISHED"}, ("status reply", "missing field")),
    ("done", ("reply", "JSON object")),
])
def test_malformed_replies_fail_in_one_line(obj, words):
    with pytest.raises(ProtocolError) as exc:
        decode_reply(obj)
    _malformed(exc, *words)


def test_a_malformed_session_file_is_not_a_session():
    registry.write_info(SessionInfo("good", os.getpid()))
    (registry.runtime_dir() / "bad.json").write_text('{"name": "bad", "pid": "many"}')
    (registry.runtime_dir() / "torn.json").write_text('{"name": "torn", "pi')
    assert [s.name for s in registry.all_sessions()] == ["good"]
    with pytest.raises(ProtocolError) as exc:
        SessionInfo.from_json('{"name": "bad", "pid": "many"}')
    _malformed(exc, "session file", "'pid'")


def test_the_keeper_reports_a_malformed_spec_in_one_line(tmp_path):
    """The starting command reads one error record from the keeper's stdout: no traceback anywhere."""
    env = {**os.environ, "RAWTCP_RUNTIME_DIR": str(tmp_path / "run")}
    env.pop("RAWTCP_DEBUG", None)
    run = subprocess.run([sys.executable, "-m", "rawtcp.session.keeper", '{"name": "c1"}'],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == FAILED and run.stderr == ""
    (line,) = run.stdout.splitlines()
    assert decode_reply(json.loads(line)) == ErrorReply("malformed keeper spec: missing field 'connection'", FAILED)


# --- the client against a keeper that answers canned lines ----------------------------------------
@dataclass
class CannedKeeper:
    answers: list[bytes] = field(default_factory=list)  # the lines each request is answered with
    asked: list[bytes] = field(default_factory=list)  # the request lines it received


@pytest.fixture
def canned_keeper() -> Iterator[CannedKeeper]:
    """A live session "k1" (this process) whose control socket answers every request with canned lines."""
    keeper = CannedKeeper()
    registry.write_info(SessionInfo("k1", os.getpid()))
    control = registry.bind_control_socket("k1")

    def serve() -> None:
        while True:
            try:
                conn, _ = control.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as stream:
                keeper.asked.append(stream.readline())
                conn.sendall(b"".join(keeper.answers))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield keeper
    control.shutdown(socket.SHUT_RDWR)  # wakes the accept
    control.close()
    thread.join(timeout=5)


def test_the_client_reads_a_typed_reply(canned_keeper):
    canned_keeper.answers = [b'{"type": "progress", "op": "recv", "done": 1, "total": 2, "elapsed": 0.1}\n',
                        json.dumps(reply_to_json(DataReply(b"hi", "ESTABLISHED"))).encode() + b"\n"]
    seen: list[dict] = []
    assert client.recv_data("k1", 2, 5.0, seen.append, progress=True) == DataReply(b"hi", "ESTABLISHED")
    assert seen == [{"type": "progress", "op": "recv", "done": 1, "total": 2, "elapsed": 0.1}]
    assert decode_request(canned_keeper.asked[0]) == RecvRequest(2, 5.0, progress=True)


def test_the_client_raises_the_keepers_error_with_its_code(canned_keeper):
    canned_keeper.answers = [b'{"type": "error", "message": "cannot send in state CLOSED", "code": 4}\n']
    with pytest.raises(SessionError) as exc:
        client.send_data("k1", b"x", lambda rec: None, 1.0)
    assert str(exc.value) == "cannot send in state CLOSED" and exc.value.exit_code == 4


@pytest.mark.parametrize(("line", "words"), [
    (b"not json\n", ("session 'k1'", "not JSON")),
    (b'{"type": "done", "op": "close"}\n', ("malformed done reply", "'state'")),
    (b'{"type": "data", "data": "", "state": "ESTABLISHED"}\n', ("session 'k1' answered a close request", "DataReply")),
])
def test_the_client_reports_a_malformed_reply_in_one_line(canned_keeper, line, words):
    canned_keeper.answers = [line]
    with pytest.raises(ProtocolError) as exc:
        client.close("k1", lambda rec: None, wait=1.0)
    assert "\n" not in str(exc.value)
    for word in words:
        assert word in str(exc.value)
