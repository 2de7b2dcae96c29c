"""The agent protocol's boundary: rawtcp (MIT) never imports PyTCP (GPL-3), only its agent does; the
Linux helper's replies carry the protocol's version and the stack's state."""

from __future__ import annotations

import ast
import json
import socket
from pathlib import Path

import pytest

from rawtcp.script.syscall_helper import PROTOCOL, Helper, ready_message
from rawtcp.script.syscalls import Addresses, Executor

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def test_no_rawtcp_module_imports_pytcp():
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "rawtcp").rglob("*.py"))
                 if {"pytcp", "rawtcp_pytcp_agent"} & _imports(p)]
    assert offenders == []


def test_the_agent_is_where_pytcp_is_imported_and_carries_the_gpl():
    agent = ROOT / "rawtcp_pytcp_agent"
    assert any("pytcp" in _imports(p) or "from pytcp" in p.read_text() for p in agent.glob("*.py"))
    for path in agent.glob("*.py"):
        head = path.read_text()[:600]
        assert "GPL-3.0" in head or "GNU General Public License" in head, path.name


def test_ready_line_names_protocol_and_stack():
    msg = ready_message()
    assert msg == {"id": 0, "ready": True, "protocol": "rawtcp-agent/1", "stack": "linux"}
    assert PROTOCOL in (ROOT / "docs" / "agent-protocol.md").read_text()


def _helper() -> tuple[Helper, list[dict]]:
    out: list[dict] = []
    return Helper(Executor(Addresses("127.0.0.1", "127.0.0.2")), lambda line: out.append(json.loads(line))), out


def test_state_op_reports_the_kernels_view_of_the_socket_under_test():
    helper, out = _helper()
    helper.handle({"id": 1, "op": "call", "name": "socket", "args": [{"ell": True}, {"word": "SOCK_STREAM"},
                                                                     {"word": "IPPROTO_TCP"}],
                   "result": {"int": 3}, "errno": None})
    helper.handle({"id": 2, "op": "state"})
    helper.handle({"id": 3, "op": "state", "fd": 9})
    helper.executor.close_all()
    assert out[0]["ret"] == 3 and out[0]["error"] is None
    assert out[1]["state"] == "CLOSED"  # a fresh socket: tcpi_state TCP_CLOSE
    assert "script_error" in out[2]


def test_unknown_op_is_a_script_error_not_a_crash():
    helper, out = _helper()
    helper.handle({"id": 7, "op": "frobnicate"})
    assert out == [{"id": 7, "script_error": "unknown helper request 'frobnicate'"}]


def test_agent_connection_refuses_a_peer_that_is_not_an_agent(tmp_path):
    from rawtcp.lab.agent import AgentConnection
    from rawtcp.lab.errors import LabError

    path = str(tmp_path / "a.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    import threading

    def answer() -> None:
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b'{"id": 0, "ready": true, "protocol": "something-else/9"}\n')
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(LabError, match="not rawtcp-agent/1"):
        AgentConnection(path, {"protocol": PROTOCOL}, timeout=5)
    srv.close()


def test_agent_address_must_be_a_path_or_host_port():
    from rawtcp.lab.agent import AgentConnection
    from rawtcp.lab.errors import LabError

    with pytest.raises(LabError, match="neither a socket path nor HOST:PORT"):
        AgentConnection("nowhere", {}, timeout=1)
