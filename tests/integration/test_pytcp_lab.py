"""A PyTCP lab made by `rawtcp lab up --stack pytcp`, driven from the command line as a user drives it:
`lab status` asks the agent whether PyTCP listens (ss cannot see PyTCP's sockets), connect/send/close
label the peer's state `pytcp:` (and say `stack` in JSON), and the lab is dual-stack (PyTCP 2.7 has
IPv6 sockets: the same session over 2001:db8::2). Skipped only when the optional extra (rawtcp[pytcp])
or /dev/net/tun is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytcp_helpers import NEEDS_PYTCP

pytestmark = [
    pytest.mark.integration,
    NEEDS_PYTCP,
]

CLIENT_NS, SERVER_NS = f"rtt-pylab-{os.getpid()}-c", f"rtt-pylab-{os.getpid()}-s"
LAB = ["--client-ns", CLIENT_NS, "--server-ns", SERVER_NS]


def rawtcp(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def pytcp_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A PyTCP lab with its echo listener; yields the environment for session commands."""
    env = dict(os.environ, RAWTCP_RUNTIME_DIR=str(tmp_path_factory.mktemp("run")))
    up = rawtcp("lab", "up", "--stack", "pytcp", "--listener", "echo", *LAB, env=env, timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        yield env
    finally:
        rawtcp("lab", "down", *LAB, env=env)


def _status() -> dict[str, Any]:
    proc = rawtcp("lab", "status", *LAB, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _session(env: dict[str, str], address: str, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """connect, send 5 bytes, status, close: every JSON record, and the status."""
    records: list[dict[str, Any]] = []
    for argv in (["connect", address, "8080", "--netns", CLIENT_NS, "--name", name, "--msl2", "0.2"],
                 ["send", name, "hello"], ["status", name], ["close", name]):
        proc = rawtcp(*argv, "--json", env=env)
        assert proc.returncode == 0, (argv, proc.stderr)
        records += [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    status = next(r for r in records if r.get("type") == "status")
    return records, status


def test_lab_status_asks_the_agent_whether_pytcp_listens(pytcp_lab: dict[str, str]) -> None:
    st = _status()
    assert st["stack"] == "pytcp" and st["up"]
    listener = st["listener"]
    assert listener["listening"] is True and listener["listening_checked_by"] == "agent:pytcp"
    # the namespace's kernel has no listener of its own there: ss would have said no
    ss = subprocess.run(["ss", "-N", SERVER_NS, "-tlnH"], capture_output=True, text=True)
    assert ":8080" not in ss.stdout
    text = rawtcp("lab", "status", *LAB).stdout
    assert '"listening": true' in text and '"agent:pytcp"' in text


def test_a_session_labels_the_peer_state_with_pytcp(pytcp_lab: dict[str, str]) -> None:
    records, status = _session(pytcp_lab, "198.18.0.2", "p4")
    peer = [r for r in records if r.get("type") == "segment" and r.get("kernel_state")]
    assert peer and {r["stack"] for r in peer} == {"pytcp"}
    changes = [r for r in records if r.get("type") == "state" and r.get("who") != "rawtcp"]
    assert {r["who"] for r in changes} == {"pytcp"} and "ESTABLISHED" in [r["new"] for r in changes]
    assert status["stack"] == "pytcp" and status["kernel_state"] == "ESTABLISHED"
    # and in text: the column is PyTCP's, never "kernel:"
    env = pytcp_lab
    proc = rawtcp("connect", "198.18.0.2", "8080", "--netns", CLIENT_NS, "--name", "p4t", "--msl2", "0.2", env=env)
    assert proc.returncode == 0 and "pytcp: ESTABLISHED" in proc.stdout and "kernel:" not in proc.stdout
    assert "pytcp LISTEN → SYN-RECEIVED" in proc.stdout
    status_text = rawtcp("status", "p4t", env=env).stdout
    assert "pytcp: ESTABLISHED (via agent:pytcp)" in status_text
    assert rawtcp("close", "p4t", env=env).returncode == 0


def test_the_pytcp_lab_is_dual_stack(pytcp_lab: dict[str, str]) -> None:
    st = _status()
    assert st["config"]["server_ip6"] == "2001:db8::2"
    records, status = _session(pytcp_lab, "2001:db8::2", "p6")
    assert status["remote"] == "[2001:db8::2]:8080" and status["stack"] == "pytcp"
    echoed = [r for r in records if r.get("type") == "segment" and r["dir"] == "in" and r["len"] == 5]
    assert echoed and echoed[0]["src"] == "[2001:db8::2]:8080"


def test_lab_status_says_no_once_the_agent_is_gone(pytcp_lab: dict[str, str]) -> None:
    """Last in the module: the agent (the stack itself) is stopped; the status says so, not 'listening'."""
    pid = int(_status()["listener"]["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    listener = _status()["listener"]
    assert listener["alive"] is False and listener["listening"] is False


def test_lab_status_of_a_linux_lab_still_asks_ss(tmp_path) -> None:
    client, server = f"rtt-pylab-{os.getpid()}-lc", f"rtt-pylab-{os.getpid()}-ls"
    lab = ["--client-ns", client, "--server-ns", server]
    assert rawtcp("lab", "up", *lab).returncode == 0
    try:
        st = json.loads(rawtcp("lab", "status", *lab, "--json").stdout)
        assert st["stack"] == "linux" and st["agent_socket"] is None
        assert st["listener"]["listening"] is True and st["listener"]["listening_checked_by"] == "ss"
    finally:
        rawtcp("lab", "down", *lab)
