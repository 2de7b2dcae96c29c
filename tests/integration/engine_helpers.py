"""Helpers for the integration tests: a private lab, the CLI as a user runs it, leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rawtcp.lab.topology import LabConfig, LabInfo, fresh_lab, impair, netns_exists, temporary_lab
from rawtcp.proc import pids_matching

# An IPv4-only lab: ``make_lab(**IPV4_ONLY)`` (labs are dual-stack by default).
IPV4_ONLY: dict[str, Any] = {"client_ip6": None, "server_ip6": None}


class Lab(NamedTuple):
    cfg: LabConfig
    info: LabInfo


@contextmanager
def private_lab(prefix: str, listener: str | None = "echo", *, impaired: dict[str, Any] | None = None,
                **overrides: Any) -> Iterator[Lab]:
    """A lab no other test uses; ``listener`` None: no listener; ``impaired``: ``impair()``'s settings."""
    cfg = fresh_lab(prefix, listener=listener or "echo", **overrides)
    with temporary_lab(cfg, listener=listener is not None) as info:
        if impaired:
            impair(cfg, **impaired)
        yield Lab(cfg, info)
    # whatever a test started inside must not keep the namespaces alive
    assert not netns_exists(cfg.client_ns) and not netns_exists(cfg.server_ns)


def lab_prefix(module: str) -> str:
    """``rtt-engine-cli`` for test_engine_cli: a leftover namespace names the module that left it."""
    return "rtt-" + module.rpartition(".")[2].removeprefix("test_").replace("_", "-")


def rawtcp(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0,
           check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the CLI exactly as a user would (a separate process per command)."""
    proc = subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"rawtcp {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def segments(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "segment"]


def ns_exec(netns: str, *cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, timeout=timeout)


def nft_tables(netns: str) -> str:
    return ns_exec(netns, "nft", "list", "tables").stdout


def keeper_pids(runtime_dir: str | None = None) -> list[int]:
    """Session keepers alive on this machine (only those using ``runtime_dir`` when given, so that
    other runs — a user's sessions, a container's tests — do not count)."""
    pids = pids_matching("rawtcp.session.keeper")
    if runtime_dir is None:
        return pids
    mine = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if f"RAWTCP_RUNTIME_DIR={runtime_dir}".encode() in fh.read().split(b"\0"):
                    mine.append(pid)
        except OSError:
            continue
    return mine


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll a condition the test cannot be notified of (a process exiting, a file appearing)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def rst_entries(netns: str | None) -> str:
    """The `inet rawtcp` table in ``netns`` (None: the root namespace), or "" when there is none."""
    cmd = ["nft", "list", "table", "inet", "rawtcp"]
    proc = ns_exec(netns, *cmd) if netns else subprocess.run(cmd, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


# -- sessions against a lab ----------------------------------------------------------------------------


def listener_log(info: LabInfo) -> list[dict[str, Any]]:
    """What the lab's kernel listener logged: one record per connection it closed."""
    from rawtcp.lab.topology import read_listener_log

    assert info.listener_log is not None
    return read_listener_log(info.listener_log)


def state_changes(records: list[dict[str, Any]], who: str) -> list[str]:
    """The new states ``who`` ("rawtcp" or "kernel") went through, in order."""
    return [r["new"] for r in records if r.get("type") == "state" and r.get("who") == who]


def assert_nothing_left(cfg: LabConfig, env: dict[str, str]) -> None:
    """No keeper of this runtime directory, no RST-suppression table in the lab, no session file."""
    run_dir = env["RAWTCP_RUNTIME_DIR"]
    assert wait_until(lambda: not keeper_pids(run_dir), 10), f"keeper processes left: {keeper_pids(run_dir)}"
    assert "rawtcp" not in nft_tables(cfg.client_ns)
    assert "rawtcp" not in nft_tables(cfg.server_ns)
    assert not os.listdir(run_dir + "/sessions"), "session files left"


@dataclass
class SeedRun:
    """Each command's records in a seed exchange: "opened" (connect) and "status" while the session is
    open, "closed" (close) and the listener's "log" after."""

    opened: list[dict[str, Any]]
    status: dict[str, Any]
    closed: list[dict[str, Any]] = field(default_factory=list)
    log: dict[str, Any] = field(default_factory=dict)


@contextmanager
def seed_exchange(lab: Any, env: dict[str, str], host: str, name: str, *connect_args: str) -> Iterator[SeedRun]:
    """SEED.md's exchange against the lab's seed listener as separate commands, checked where both
    families agree: connect with ISN 1000, send 20 bytes, recv its 10, status (the block runs here, the
    session open), then close, the listener's log, and nothing left behind."""
    cfg, info = lab
    opened = json_lines(rawtcp("connect", host, "8080", "--name", name, "--isn", "1000", "--netns", cfg.client_ns,
                               *connect_args, "--json", env=env, check=True).stdout)
    handshake = segments(opened)
    assert [(s["dir"], s["flags"]) for s in handshake] == [("out", "S"), ("in", "S."), ("out", ".")]
    syn, synack, ack = handshake
    assert syn["seq"] == 1000
    assert synack["ack"] == 1001 and "mss 1024" in synack["options"]  # the seed server's TCP_MAXSEG
    assert (ack["seq"], ack["ack"]) == (1001, synack["seq"] + 1)

    sent = rawtcp("send", name, "hello, kernel! (20B)", "--json", env=env, check=True)
    data_segs = segments(json_lines(sent.stdout))
    assert data_segs[0]["flags"] == "P." and data_segs[0]["len"] == 20 and data_segs[0]["rel_seq"] == 1

    got = rawtcp("recv", name, "--bytes", "10", "--out", "-", env=env, check=True)
    assert got.stdout == "0123456789"  # the seed listener's answer

    status = json_lines(rawtcp("status", name, "--json", env=env, check=True).stdout)[0]
    assert status["state"] == "ESTABLISHED" and status["kernel_state"] == "ESTABLISHED"
    assert status["rel_snd_nxt"] == 21 and status["rel_rcv_nxt"] == 11 and status["peer_mss"] == 1024

    run = SeedRun(opened, status)
    yield run

    run.closed = json_lines(rawtcp("close", name, "--json", env=env, check=True).stdout)
    assert state_changes(run.closed, "rawtcp")[:3] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert {"CLOSE-WAIT", "LAST-ACK"} <= set(state_changes(run.closed, "kernel"))
    assert [(s["dir"], s["flags"]) for s in segments(run.closed)] == [("out", "F."), ("in", "."), ("in", "F."),
                                                                      ("out", ".")]
    # What the kernel listener itself saw: exactly our 20 bytes, and it sent its 10.
    assert wait_until(lambda: listener_log(info), 5)
    (run.log,) = listener_log(info)
    assert run.log["received"] == 20 and run.log["sent"] == 10
    assert_nothing_left(cfg, env)


# A kernel client: connects to argv[1]:argv[2], sends argv[3], prints what comes back, closes.
KERNEL_CLIENT = ("import socket, sys\n"
                 "c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)\n"
                 "c.sendall(sys.argv[3].encode())\n"
                 "print(c.recv(100).decode(), flush=True)\n"
                 "c.close()\n")


@contextmanager
def rawtcp_listen(cfg: LabConfig, env: dict[str, str], port: int, name: str,
                  *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``rawtcp listen`` in the server's namespace, given once it listens (its socket, filter and RST
    entry exist): the process and the lines it printed until then; killed if a test leaves it running."""
    proc = subprocess.Popen([sys.executable, "-m", "rawtcp", "listen", str(port), "--name", name, "--netns",
                             cfg.server_ns, "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        head = []
        assert proc.stdout is not None
        for line in proc.stdout:
            head.append(line)
            if '"new": "LISTEN"' in line:
                break
        yield proc, "".join(head)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def passive_open_with_a_kernel_client(lab: Any, env: dict[str, str], host: str, port: int, name: str,
                                      *listen_args: str) -> list[dict[str, Any]]:
    """A kernel client connects to ``rawtcp listen`` and sends "ping"; rawtcp reads it and answers
    "pong", which the client prints. Returns the listen command's records."""
    cfg, _info = lab
    with rawtcp_listen(cfg, env, port, name, *listen_args) as (listener, head):
        client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", KERNEL_CLIENT,
                                   host, str(port), "ping"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            out, err = listener.communicate(timeout=30)
            assert listener.returncode == 0, err
            got = rawtcp("recv", name, "--bytes", "4", "--out", "-", env=env, check=True)
            assert got.stdout == "ping"
            rawtcp("send", name, "pong", env=env, check=True)
            answer, client_err = client.communicate(timeout=30)
            assert client.returncode == 0 and answer.strip() == "pong", client_err
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    return json_lines(head + out)
