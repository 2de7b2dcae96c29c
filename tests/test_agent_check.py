"""The protocol's ``check``: the PyTCP agent says, before a script's first packet, which of its calls
PyTCP's socket API cannot express (one set of rules with the calls themselves). No PyTCP stack is
started: the rules read only the calls' arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rawtcp.script.syscalls import Addresses

agent = pytest.importorskip("rawtcp_pytcp_agent.agent")

SOCKET = {"name": "socket", "args": [{"ell": True}, {"word": "SOCK_STREAM"}, {"word": "IPPROTO_TCP"}], "line": 1}
REUSE = {"name": "setsockopt", "line": 2,
         "args": [{"int": 3}, {"word": "SOL_SOCKET"}, {"word": "SO_REUSEADDR"}, {"list": [{"int": 1}]}, {"int": 4}]}
LISTEN = {"name": "listen", "args": [{"int": 3}, {"int": 1}], "line": 3}


def _check(calls: list[dict[str, Any]], mode: str = "ipv4") -> dict[str, Any]:
    lines: list[str] = []
    helper = agent.AgentHelper(agent.PytcpExecutor(Addresses("198.18.0.2", "198.18.0.1", 8080, 8080, mode)),
                               lines.append, agent.StateLog())
    helper.handle({"id": 9, "op": "check", "calls": calls})
    reply = json.loads(lines[0])
    assert reply.pop("id") == 9
    return reply


def test_what_pytcp_can_do_is_ok() -> None:
    assert _check([SOCKET, REUSE, LISTEN]) == {"ok": True}


@pytest.mark.parametrize(("call", "words"), [
    ({"name": "fcntl", "args": [{"int": 3}, {"word": "F_SETFL"}, {"word": "O_NONBLOCK"}]},
     "fcntl() has no counterpart"),
    ({"name": "setsockopt", "args": [{"int": 3}, {"word": "SOL_TCP"}, {"word": "TCP_MAXSEG"}, {"list": [{"int": 1}]},
                                     {"int": 4}]}, "setsockopt(SOL_TCP, TCP_MAXSEG)"),
    ({"name": "send", "args": [{"int": 4}, {"ell": True}, {"int": 10}, {"word": "MSG_MORE"}]}, "send() flags"),
    ({"name": "write", "args": [{"int": 4}, {"word": "NULL"}, {"int": 10}]}, "NULL buffer"),
    ({"name": "socket", "args": [{"ell": True}, {"word": "SOCK_DGRAM"}, {"int": 0}]}, "plain SOCK_STREAM"),
    ({"name": "connect", "args": [{"int": 3}, {"struct": []}, {"int": 16}]}, None),
])
def test_the_first_call_pytcp_cannot_express_is_named_with_its_line(call: dict[str, Any], words: str | None) -> None:
    reply = _check([SOCKET, REUSE, {**call, "line": 7}, LISTEN])
    if words is None:
        assert reply == {"ok": True}
        return
    assert reply["line"] == 7 and words in reply["unsupported"]


def test_the_mapped_mode_is_unsupported_at_the_first_socket() -> None:
    reply = _check([SOCKET], mode="ipv4-mapped-ipv6")
    assert reply["line"] == 1 and "ipv4-mapped-ipv6" in reply["unsupported"]


def test_a_malformed_argument_is_left_for_the_call_to_report() -> None:
    bad = {"name": "send", "args": [{"int": 4}, {"ell": True}, {"int": 10}, {"str": "x"}], "line": 5}
    assert _check([bad]) == {"ok": True}
