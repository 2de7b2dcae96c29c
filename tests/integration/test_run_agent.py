"""`rawtcp run SCRIPT --agent ADDRESS`: a script's system calls made by an agent that rawtcp did not
start, in the lab that is up. Here the agent is the Linux syscall helper serving TCP from the host
(`--serve 127.0.0.1:0 --netns SERVER_NS`: reached from the host, its calls made in the lab's server
namespace), and PyTCP's own agent on its unix socket. An unreachable agent is one line, exit 2, and
leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytcp_helpers import NEEDS_PYTCP, PASSIVE_OPEN

pytestmark = [
    pytest.mark.integration,
]

TOKEN = "test-token-for-this-module"
PORT = "9090"  # the lab's own listener, away from the script's port (8080)
CLIENT_NS, SERVER_NS = f"rtt-agent-{os.getpid()}-c", f"rtt-agent-{os.getpid()}-s"
LAB = ["--client-ns", CLIENT_NS, "--server-ns", SERVER_NS, "--port", PORT]

OPEN_AND_READ = PASSIVE_OPEN + """\
+0  < P. 1:6(5) ack 1 win 65535
+0  read(4, ..., 5) = 5
"""


def rawtcp(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agent") / "open.pkt"
    path.write_text(OPEN_AND_READ)
    return path


@pytest.fixture(scope="module")
def linux_lab() -> Iterator[None]:
    up = rawtcp("lab", "up", *LAB)
    assert up.returncode == 0, up.stderr
    try:
        yield
    finally:
        rawtcp("lab", "down", *LAB[:4])


@pytest.fixture(scope="module")
def served_helper(linux_lab: None) -> Iterator[str]:
    """The Linux agent serving TCP on the host's loopback, making its calls in the lab's server namespace."""
    env = dict(os.environ, RAWTCP_HELPER_TOKEN=TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "rawtcp.script.syscall_helper", "--serve", "127.0.0.1:0",
                             "--netns", SERVER_NS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        word, _, port = proc.stdout.readline().partition(" ")
        assert word == "ready", proc.stderr.read() if proc.stderr else ""
        yield f"127.0.0.1:{int(port)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _nft(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True,
                          text=True).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_script_runs_through_a_served_agent(served_helper: str, script: Path) -> None:
    env = dict(os.environ, RAWTCP_HELPER_TOKEN=TOKEN)
    proc = rawtcp("run", str(script), "--agent", served_helper, "--netns", CLIENT_NS, "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["result"] == "pass" and result["stack"] == "linux"
    flags = [(e["dir"], e["flags"]) for e in result["ladder"]]
    assert flags[:3] == [("<", "S"), (">", "S."), ("<", ".")]
    # the calls were the server namespace's kernel's: the SYN-ACK came from the lab's server
    assert result["kernel_isn"] is not None


def test_a_served_agent_refuses_a_run_without_its_token(served_helper: str, script: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAWTCP_HELPER_TOKEN"}
    proc = rawtcp("run", str(script), "--agent", served_helper, "--netns", CLIENT_NS, env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "bad or missing token" in proc.stderr


def test_an_unreachable_agent_is_one_line_and_leaves_nothing(linux_lab: None, script: Path) -> None:
    before_ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    before_nft = _nft(CLIENT_NS)
    address = f"127.0.0.1:{_free_port()}"
    proc = rawtcp("run", str(script), "--agent", address, "--netns", CLIENT_NS)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"rawtcp: error: cannot reach the agent at {address}: Connection refused\n"
    assert "Traceback" not in proc.stdout
    # no namespace made, no RST-suppression entry left in the client's namespace
    after_ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert sorted(n.split()[0] for n in after_ns.splitlines() if CLIENT_NS[:-2] in n) == \
        sorted(n.split()[0] for n in before_ns.splitlines() if CLIENT_NS[:-2] in n)
    assert _nft(CLIENT_NS) == before_nft


@pytest.mark.parametrize(("argv", "words"), [
    (["--agent", "nowhere", "--netns", CLIENT_NS], "neither a socket path nor HOST:PORT"),
    (["--netns", CLIENT_NS], "--netns names the lab an --agent run uses"),
    (["--agent", "127.0.0.1:9", "--netns", "rtt-no-such-c"], "no lab with client namespace rtt-no-such-c"),
])
def test_agent_options_refuse_bad_input(linux_lab: None, script: Path, argv: list[str], words: str) -> None:
    proc = rawtcp("run", str(script), *argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and words in proc.stderr


@NEEDS_PYTCP
def test_a_script_runs_through_pytcps_agent_on_its_unix_socket(script: Path) -> None:
    client, server = f"rtt-agent-{os.getpid()}-pc", f"rtt-agent-{os.getpid()}-ps"
    lab = ["--client-ns", client, "--server-ns", server]
    up = rawtcp("lab", "up", "--stack", "pytcp", "--port", PORT, *lab)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(rawtcp("lab", "status", *lab, "--json").stdout)
        proc = rawtcp("run", str(script), "--agent", status["agent_socket"], "--netns", client, "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(proc.stdout)
        assert result["result"] == "pass" and result["stack"] == "pytcp"
    finally:
        rawtcp("lab", "down", *lab)
