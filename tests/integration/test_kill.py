"""Killed mid-flight: SIGINT and SIGTERM to `connect` (mid-handshake), a session keeper
(mid-transfer and in TIME-WAIT), `run` and `demo` leave no nftables entry or table, no namespace or
veth the command made and no keeper process; after SIGKILL (of a keeper, of `demo`) the next command
that touches the wire or the lab finds what the dead process left by its pid, removes it and says so,
firewall entries before namespaces.

Needs root. Private labs (rtt-kill-*) and a private RAWTCP_RUNTIME_DIR per test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from engine_helpers import json_lines, keeper_pids, namespaces, nft_tables, ns_exec, rawtcp, rst_entries, wait_until

# A process has ended when it is gone or a zombie: a daemonized keeper's parent is PID 1, and a container's
# PID 1 (pytest itself on a fresh machine) never reaps orphans, so /proc/PID stays while the zombie does.
from rawtcp.proc import pid_alive

pytestmark = pytest.mark.integration

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


class Running:
    """A CLI command running in the background; its stdout lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "rawtcp", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        rx = re.compile(pattern)
        found = wait_until(lambda: any(rx.search(x) for x in self.lines) or self.proc.poll() is not None, timeout)
        hit = [x for x in self.lines if rx.search(x)]
        assert found and hit, f"no line matching {pattern!r} (exit {self.proc.poll()}):\n{''.join(self.lines)}"
        return hit[0]

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        return code, "".join(self.lines), self.proc.stderr.read()






def _assert_clean(env: dict[str, str], client_ns: str | None = None) -> None:
    run_dir = env["RAWTCP_RUNTIME_DIR"]
    assert wait_until(lambda: not keeper_pids(run_dir), 15), f"keepers left: {keeper_pids(run_dir)}"
    sessions = Path(run_dir) / "sessions"
    assert not sessions.exists() or not list(sessions.iterdir()), list(sessions.iterdir())
    if client_ns is not None:
        assert "rawtcp" not in nft_tables(client_ns), rst_entries(client_ns)


def _one_line_interrupted(code: int, err: str) -> None:
    assert code == 130, err
    # One line (click ends a terminal's "^C" line with a newline first: blank lines do not count).
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rawtcp: interrupted"), err
    assert "Traceback" not in err


def _keeper_pid(env: dict[str, str], name: str) -> int:
    rows = json_lines(rawtcp("sessions", "--json", env=env, check=True).stdout)
    return next(r["pid"] for r in rows if r["name"] == name)


# --- SIGINT / SIGTERM ------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNALS)
def test_connect_interrupted_mid_handshake(echo_lab, env, sig):
    cfg, _ = echo_lab
    # The server silently drops this port: our SYN is retransmitted until we give up (not before
    # the signal: 10 retries from a 1 s RTO take minutes).
    ns_exec(cfg.server_ns, "nft", "add table inet rtt_drop { chain in { type filter hook input priority 0; "
            "tcp dport 7777 drop; }; }")
    cmd = Running(["connect", cfg.server_ip, "7777", "--name", "hs", "--netns", cfg.client_ns, "--retries", "10",
                   "--json"], env)
    cmd.wait_for(r'"event": "retransmission"')  # stuck retransmitting the SYN
    assert "pid=" in rst_entries(cfg.client_ns)  # its RST-suppression entry exists now
    cmd.proc.send_signal(sig)
    code, _out, err = cmd.finish()
    _one_line_interrupted(code, err)
    _assert_clean(env, cfg.client_ns)


@pytest.mark.parametrize("sig", SIGNALS)
def test_keeper_signalled_mid_transfer(echo_lab, env, tmp_path, sig):
    from rawtcp.lab.topology import impair

    cfg, _ = echo_lab
    impair(cfg, delay_ms=20)  # a 40 ms round trip: 4 MiB takes a while
    opened = rawtcp("connect", cfg.server_ip, "8080", "--name", "mt", "--netns", cfg.client_ns, "--json",
                    env=env, check=True)
    sport = next(r for r in json_lines(opened.stdout) if "src" in r)["src"].rsplit(":", 1)[1]
    pid = _keeper_pid(env, "mt")
    (tmp_path / "big.bin").write_bytes(os.urandom(4 << 20))
    sender = Running(["send", "mt", "--file", str(tmp_path / "big.bin"), "--json"], env)
    sender.wait_for(r'"flags": "P?\."[^\n]*"len": [1-9]')  # data is flowing
    os.kill(pid, sig)
    code, _out, err = sender.finish()
    # The command that was waiting on the keeper fails with one line, no traceback.
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    _assert_clean(env, cfg.client_ns)
    # The keeper aborted its connection on the way out (RST): the kernel dropped its socket too.
    assert wait_until(lambda: ns_exec(cfg.server_ns, "ss", "-tanH", f"( dport = :{sport} )").stdout.strip() == "",
                      10)


@pytest.mark.parametrize("sig", SIGNALS)
def test_keeper_signalled_in_time_wait(echo_lab, env, sig):
    cfg, _ = echo_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "tw", "--netns", cfg.client_ns, "--msl2", "120",
           env=env, check=True)
    pid = _keeper_pid(env, "tw")
    closed = rawtcp("close", "tw", env=env, check=True)
    assert "TIME-WAIT" in closed.stdout
    assert f"pid={pid}" in rst_entries(cfg.client_ns)  # TIME-WAIT still holds the 4-tuple's entry
    os.kill(pid, sig)
    assert wait_until(lambda: not pid_alive(pid), 10)
    _assert_clean(env, cfg.client_ns)


LONG_SCRIPT = """// Handshake, then the script waits 60 s for a segment: long enough to be interrupted.
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000>
   +0 > S. 0:0(0) ack 1 <mss 1460>
   +0 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
  +60 < P. 1:11(10) ack 1 win 257
   +0 > . 1:1(0) ack 11
"""


def _netns_of(pid: int, prefix: str) -> list[str]:
    return [n for n in namespaces() if n.startswith(f"{prefix}-{pid}-")]


@pytest.mark.parametrize("sig", SIGNALS)
def test_run_interrupted(env, tmp_path, sig):
    script = tmp_path / "long.pkt"
    script.write_text(LONG_SCRIPT)
    cmd = Running(["run", str(script)], env)
    pid = cmd.proc.pid
    assert wait_until(lambda: len(_netns_of(pid, "rtt-run")) == 2 or cmd.proc.poll() is not None, 30), cmd.lines
    assert cmd.proc.poll() is None, cmd.finish()
    made = _netns_of(pid, "rtt-run")
    # Past the handshake (the runner waits for its +60 s step): then interrupt.
    assert wait_until(lambda: any(ns_exec(n, "ss", "-tanH", "state", "established").stdout.strip()
                                  for n in made), 30)
    cmd.proc.send_signal(sig)
    code, _out, err = cmd.finish()
    _one_line_interrupted(code, err)
    assert not _netns_of(pid, "rtt-run"), namespaces()
    assert not [p for p in Path("/run/rawtcp/labs").glob(f"rtt-run-{pid}-*")]
    assert f"pid={pid}" not in rst_entries(None)


def _demo_in_time_wait(demo: Running) -> list[str]:
    """Wait until the demo's kernel listener has logged its finished connection: the four-way close
    is over and the demo holds TIME-WAIT (its records are printed only when it ends)."""
    pid = demo.proc.pid

    def closed() -> bool:
        logs = list(Path("/run/rawtcp/labs").glob(f"rawtcp-demo-{pid}-*-c.listener.jsonl"))
        return bool(logs) and logs[0].stat().st_size > 0

    assert wait_until(lambda: closed() or demo.proc.poll() is not None, 30) and demo.proc.poll() is None, \
        demo.lines
    made = _netns_of(pid, "rawtcp-demo")
    assert len(made) == 2, made
    return made


@pytest.mark.parametrize("sig", SIGNALS)
def test_demo_interrupted_in_time_wait(env, tmp_path, sig):
    demo = Running(["demo", "--msl2", "60", "--pcap", str(tmp_path / "demo.pcap"), "--json"], env)
    pid = demo.proc.pid
    made = _demo_in_time_wait(demo)
    assert f"pid={pid}" in rst_entries(next(n for n in made if n.endswith("-c")))
    demo.proc.send_signal(sig)
    code, _out, err = demo.finish()
    _one_line_interrupted(code, err)
    assert not _netns_of(pid, "rawtcp-demo"), namespaces()
    assert not [p for p in Path("/run/rawtcp/labs").glob(f"rawtcp-demo-{pid}-*")]


def _flood_available() -> None:
    from rawtcp.cli import COMMANDS, _available

    if "flood" not in COMMANDS or not _available(COMMANDS["flood"][0]):
        pytest.skip("`rawtcp flood` is not part of this build")


def _flood_tables(netns: str, pid: int) -> bool:
    return f"rawtcp_flood_{pid}" in nft_tables(netns) or f"pid={pid}" in rst_entries(netns)


@pytest.mark.parametrize("sig", SIGNALS)
def test_flood_interrupted(echo_lab, env, sig):
    _flood_available()
    cfg, _ = echo_lab
    flood = Running(["flood", cfg.server_ip, "8080", "--syn", "--duration", "60", "--rate", "200",
                     "--netns", cfg.client_ns], env)
    pid = flood.proc.pid
    flood.wait_for(r"FLOOD SYN to 198\.18\.0\.2:8080")  # it says where it sends
    assert wait_until(lambda: _flood_tables(cfg.client_ns, pid), 10)  # its RST drop is in place
    flood.proc.send_signal(sig)
    code, _out, err = flood.finish()
    _one_line_interrupted(code, err)
    assert not _flood_tables(cfg.client_ns, pid), nft_tables(cfg.client_ns)


# --- SIGKILL: the next command reaps ---------------------------------------------------------------

def test_killed_keeper_is_reaped_by_the_next_connect(echo_lab, env):
    cfg, _ = echo_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "k1", "--netns", cfg.client_ns, env=env, check=True)
    pid = _keeper_pid(env, "k1")
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), 10)
    assert f"pid={pid}" in rst_entries(cfg.client_ns)  # what the dead keeper left
    nxt = rawtcp("connect", cfg.server_ip, "8080", "--name", "k2", "--netns", cfg.client_ns, env=env, check=True)
    said = [line for line in nxt.stdout.splitlines() if line.startswith("removed leftover:")]
    assert any(f"dead process {pid}" in line and f"namespace {cfg.client_ns}" in line for line in said), nxt.stdout
    assert any(f"session k1 (keeper pid {pid} is gone)" in line for line in said), nxt.stdout
    assert f"pid={pid}" not in rst_entries(cfg.client_ns)
    rawtcp("close", "k2", "--abort", env=env, check=True)
    _assert_clean(env, cfg.client_ns)


def test_killed_flood_is_reaped_by_the_next_connect(echo_lab, env):
    _flood_available()
    cfg, _ = echo_lab
    flood = Running(["flood", cfg.server_ip, "8080", "--syn", "--duration", "60", "--rate", "200",
                     "--netns", cfg.client_ns], env)
    pid = flood.proc.pid
    assert wait_until(lambda: _flood_tables(cfg.client_ns, pid) or flood.proc.poll() is not None, 20)
    flood.proc.kill()
    flood.finish()
    assert _flood_tables(cfg.client_ns, pid)  # SIGKILL: left behind
    nxt = rawtcp("connect", cfg.server_ip, "8080", "--name", "f2", "--netns", cfg.client_ns, env=env, check=True)
    said = [line for line in nxt.stdout.splitlines() if line.startswith("removed leftover:")]
    assert any(str(pid) in line and cfg.client_ns in line for line in said), nxt.stdout
    assert not _flood_tables(cfg.client_ns, pid)
    rawtcp("close", "f2", "--abort", env=env, check=True)
    _assert_clean(env, cfg.client_ns)


def test_killed_demo_is_reaped_firewall_first_then_namespaces(env, tmp_path):
    demo = Running(["demo", "--msl2", "60", "--pcap", str(tmp_path / "demo.pcap"), "--json"], env)
    pid = demo.proc.pid
    made = _demo_in_time_wait(demo)
    client_ns = next(n for n in made if n.endswith("-c"))
    demo.proc.kill()
    demo.finish()
    assert _netns_of(pid, "rawtcp-demo") == made  # SIGKILL: nothing could clean up
    assert f"pid={pid}" in rst_entries(client_ns)

    names = ["--client-ns", f"rtt-kill-{os.getpid()}-up-c", "--server-ns", f"rtt-kill-{os.getpid()}-up-s"]
    try:
        up = rawtcp("lab", "up", *names, env=env, check=True)
    finally:
        rawtcp("lab", "down", *names, env=env)
    said = [line for line in up.stdout.splitlines() if line.startswith("removed leftover:")]
    entry = [i for i, line in enumerate(said) if f"dead process {pid}" in line and client_ns in line]
    namespace = [i for i, line in enumerate(said) if f"namespace {client_ns} (left by dead pid {pid})" in line]
    assert entry and namespace, up.stdout
    assert entry[0] < namespace[0], up.stdout  # found inside the namespace before the namespace went
    assert not _netns_of(pid, "rawtcp-demo")
    assert not [p for p in Path("/run/rawtcp/labs").glob(f"rawtcp-demo-{pid}-*")]
    assert json.dumps(said)  # what was removed is said, one line each
