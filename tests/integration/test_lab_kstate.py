"""The kernel's socket states as they change, against the seed listener in a private lab.

A kernel client in the client namespace half-closes; the server socket must be seen going
SYN-RECEIVED -> ESTABLISHED -> CLOSE-WAIT (>= 300 ms) -> LAST-ACK -> CLOSED.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rawtcp.lab.kstate import (
    TRACEFS,
    KernelStateWatcher,
    ensure_tracefs,
    kernel_socket_state,
    pid_namespace,
    reap_trace_instances,
)
from rawtcp.lab.topology import fresh_lab, temporary_lab

pytestmark = pytest.mark.integration


def tracefs_available() -> bool:
    try:
        ensure_tracefs()
    except OSError:
        return False
    return True


HALF_CLOSE_CLIENT = """
import json, socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"A" * 20)
    got = b""
    while len(got) < 10:
        got += s.recv(64)
    s.shutdown(socket.SHUT_WR)
    while s.recv(64):
        pass
    print(json.dumps({"port": s.getsockname()[1]}))
"""

HOLD_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def run_half_close(cfg) -> tuple[tuple[str, int], tuple[str, int]]:
    out = subprocess.run(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", HALF_CLOSE_CLIENT,
                          cfg.server_ip, str(cfg.port)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    port = json.loads(out.stdout)["port"]
    return (cfg.server_ip, cfg.port), (cfg.client_ip, port)


def states(events) -> list[str]:
    return [e.new for e in events]


@pytest.mark.skipif(not tracefs_available(), reason="tracefs unavailable (container?)")
def test_tracefs_sees_every_server_state_and_leaves_no_instance():
    cfg = fresh_lab("rtt-lab", listener="seed", port=18080)
    with temporary_lab(cfg):
        watcher = KernelStateWatcher(netns=cfg.server_ns).start({cfg.port})
        try:
            assert watcher.source == "tracefs"
            instance = watcher.instance
            assert instance is not None and instance.is_dir()
            assert instance.name.startswith(f"rawtcp-p{pid_namespace()}-{os.getpid()}-")
            assert (instance / "trace_clock").read_text().count("[mono]") == 1
            t0 = time.monotonic()
            local, remote = run_half_close(cfg)
            assert watcher.wait_for(local, remote, "CLOSED", timeout=5)
            assert watcher.sync()
        finally:
            watcher.stop()
    assert not instance.exists()
    events = watcher.events_for(local, remote)
    assert states(events) == ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"], events
    assert all(t0 <= e.time <= time.monotonic() for e in events)  # the same clock as time.monotonic()
    by_state = {e.new: e.time for e in events}
    assert by_state["LAST-ACK"] - by_state["CLOSE-WAIT"] >= 0.29  # the seed listener's close delay
    assert watcher.current(local, remote) == "CLOSED"
    # The client's side of the same connection (its SYN-SENT is reported before it has a port).
    # Its TIME-WAIT shows as CLOSED here: the watcher checks TIME-WAIT only in its own netns.
    assert states(watcher.events_for(remote, local)) == [
        "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSED"]


@pytest.mark.skipif(not tracefs_available(), reason="tracefs unavailable (container?)")
def test_tracefs_reports_time_wait_of_the_side_that_closed_first():
    cfg = fresh_lab("rtt-lab", listener="seed", port=18083)
    # The kernel client closes first, so its socket ends in TIME-WAIT (in the client namespace).
    with temporary_lab(cfg), KernelStateWatcher(netns=cfg.client_ns).start({cfg.port}) as watcher:
        server, client = run_half_close(cfg)
        assert watcher.wait_for(client, server, "TIME-WAIT", timeout=5)
        assert kernel_socket_state(cfg.client_ns, client, server) == "TIME-WAIT"
    assert states(watcher.events_for(client, server)) == [
        "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]


def test_sock_diag_fallback_sees_the_long_states():
    cfg = fresh_lab("rtt-lab", listener="seed", port=18081)
    with temporary_lab(cfg):
        watcher = KernelStateWatcher(netns=cfg.server_ns, source="sock_diag").start({cfg.port})
        try:
            assert watcher.source == "sock_diag" and watcher.instance is None
            assert watcher.wait_for((cfg.server_ip, cfg.port), ("0.0.0.0", 0), "LISTEN", timeout=5)
            local, remote = run_half_close(cfg)
            assert watcher.wait_for(local, remote, "CLOSED", timeout=5)
        finally:
            watcher.stop()
    seen = states(watcher.events_for(local, remote))
    # Polling cannot promise the short states (ESTABLISHED lasts ~1 ms here, LAST-ACK microseconds);
    # the 300 ms CLOSE-WAIT it must see, and the socket's end.
    assert "CLOSE-WAIT" in seen and seen[-1] == "CLOSED", seen


def test_one_shot_state_via_ss():
    cfg = fresh_lab("rtt-lab", listener="echo", port=18082)
    with temporary_lab(cfg):
        assert kernel_socket_state(cfg.server_ns, (cfg.server_ip, cfg.port), ("0.0.0.0", 0)) == "LISTEN"
        client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", HOLD_CLIENT,
                                   cfg.server_ip, str(cfg.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            port = int(client.stdout.readline())
            remote = (cfg.client_ip, port)
            assert kernel_socket_state(cfg.server_ns, (cfg.server_ip, cfg.port), remote) == "ESTABLISHED"
            assert kernel_socket_state(cfg.client_ns, remote, (cfg.server_ip, cfg.port)) == "ESTABLISHED"
            assert kernel_socket_state(cfg.server_ns, (cfg.server_ip, cfg.port), (cfg.client_ip, 1)) is None
        finally:
            client.communicate("", timeout=10)


@pytest.mark.skipif(not tracefs_available(), reason="tracefs unavailable (container?)")
def test_reap_removes_only_instances_of_dead_processes():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = TRACEFS / "instances" / f"rawtcp-{dead.pid}-0"
    live = KernelStateWatcher().start({1})
    try:
        stale.mkdir()
        reaped = reap_trace_instances()
        assert stale.name in reaped and not stale.exists()
        assert live.instance is not None and live.instance.exists() and live.instance.name not in reaped
    finally:
        live.stop()
        if stale.exists():
            stale.rmdir()
    prefix = f"rawtcp-p{pid_namespace()}-{os.getpid()}-"
    mine = [p.name for p in (TRACEFS / "instances").iterdir() if p.name.startswith(prefix)]
    assert mine == []


WATCHER_OWNER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from rawtcp.lab.kstate import KernelStateWatcher
w = KernelStateWatcher(source="tracefs").start({1})
print(w.instance.name, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not tracefs_available(), reason="tracefs unavailable (container?)")
def test_instance_of_a_killed_watcher_is_reaped():
    root = str(Path(__file__).resolve().parents[2])
    owner = subprocess.Popen([sys.executable, "-c", WATCHER_OWNER, root], stdout=subprocess.PIPE, text=True)
    try:
        name = owner.stdout.readline().strip()
    finally:
        owner.kill()
        owner.wait(timeout=10)
        owner.stdout.close()
    assert name.startswith(f"rawtcp-p{pid_namespace()}-{owner.pid}-") and (TRACEFS / "instances" / name).is_dir()
    assert name in reap_trace_instances()
    assert not (TRACEFS / "instances" / name).exists()
