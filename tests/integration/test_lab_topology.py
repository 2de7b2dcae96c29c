"""The lab against the real kernel: up, status, down, idempotence, rollback, leftovers of killed owners.

Needs root; every lab here is private (namespaces rtt-lab-<pid>-<n>-c/-s) and removed in a finally.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rawtcp.lab.errors import LabError
from rawtcp.lab.topology import (
    LabConfig,
    fresh_lab,
    lab_down,
    lab_exists,
    lab_status,
    lab_up,
    pid_alive,
    reap_stale_labs,
    temporary_lab,
)

pytestmark = pytest.mark.integration

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def labs():
    """Configs to remove whatever a test leaves (the test itself should leave nothing)."""
    made: list[LabConfig] = []
    yield made
    for cfg in made:
        if lab_exists(cfg):
            lab_down(cfg)


def netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def listener_pids(cfg: LabConfig) -> set[int]:
    """Listener processes of this lab (their log path names the lab; other labs may run meanwhile)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"rawtcp.lab.listener" in cmd and cfg.client_ns.encode() in cmd:
                pids.add(int(entry.name))
    return pids


def in_ns(netns: str, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=30)


ECHO_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(b"hello lab")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(100):
        data += chunk
print(data.decode())
"""


def assert_nothing_left(cfg: LabConfig) -> None:
    assert not {cfg.client_ns, cfg.server_ns} & netns_list()
    assert not lab_exists(cfg)
    assert not listener_pids(cfg)


def test_up_status_down(labs):
    cfg = fresh_lab("rtt-lab")
    labs.append(cfg)
    info = lab_up(cfg)
    assert {cfg.client_ns, cfg.server_ns} <= netns_list()
    assert listener_pids(cfg) == {info.listener_pid}
    status = lab_status(cfg)
    assert status["up"] and status["exists"]
    assert status["interfaces"][cfg.client_ns]["addresses"] == ["198.18.0.1/24"]
    assert status["interfaces"][cfg.server_ns]["addresses"] == ["198.18.0.2/24"]
    assert status["interfaces"][cfg.client_ns]["state"] == "UP"
    assert status["listener"]["pid"] == info.listener_pid
    assert status["listener"]["alive"] and status["listener"]["listening"]
    assert status["listener"]["mode"] == "echo" and status["netem"] == {"veth-c": None, "veth-s": None}
    json.dumps(status)  # the CLI prints it with --json

    # Static neighbours both ways: the first SYN needs no ARP.
    neigh = subprocess.run(["ip", "-n", cfg.client_ns, "neigh", "show", "198.18.0.2"],
                           capture_output=True, text=True, check=True).stdout
    assert "PERMANENT" in neigh and info.server_mac in neigh
    out = in_ns(cfg.client_ns, ECHO_CLIENT, cfg.server_ip, str(cfg.port))
    assert out.stdout.strip() == "hello lab", out.stderr

    with pytest.raises(LabError, match=r"^lab is already up \(rawtcp lab down to remove it\)$"):
        lab_up(cfg)

    removed = lab_down(cfg)
    assert f"namespace {cfg.client_ns}" in removed and f"namespace {cfg.server_ns}" in removed
    assert f"listener pid {info.listener_pid}" in removed
    assert not pid_alive(info.listener_pid)
    assert_nothing_left(cfg)
    with pytest.raises(LabError, match=r"^no lab is up$"):
        lab_down(cfg)
    assert lab_status(cfg)["up"] is False


def test_rollback_when_the_listener_cannot_start(labs):
    cfg = fresh_lab("rtt-lab", listener="bogus")
    labs.append(cfg)
    with pytest.raises(LabError, match="listener failed to start"):
        lab_up(cfg)
    assert_nothing_left(cfg)


def test_rollback_when_the_veth_cannot_be_made(labs):
    cfg = fresh_lab("rtt-lab", client_if="an-interface-name-too-long")
    labs.append(cfg)
    with pytest.raises(LabError, match="ip link add"):
        lab_up(cfg)
    assert_nothing_left(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"server_ip": "198.18.0.300"}, "not an IPv4 address"), ({"port": 0}, "outside 1-65535"),
     ({"server_ip": "198.18.0.1"}, "must differ")],
)
def test_bad_config_is_refused_before_anything_is_made(labs, overrides, message):
    cfg = fresh_lab("rtt-lab", **overrides)
    labs.append(cfg)
    with pytest.raises(LabError, match=message):
        lab_up(cfg)
    assert not lab_exists(cfg)


def test_temporary_lab_is_removed_when_the_block_raises(labs):
    cfg = fresh_lab("rtt-lab", listener="sink")
    labs.append(cfg)
    with pytest.raises(RuntimeError), temporary_lab(cfg) as info:
        assert pid_alive(info.listener_pid)
        raise RuntimeError("boom")
    assert_nothing_left(cfg)


OWNER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from rawtcp.lab.topology import LabConfig, lab_up
lab_up(LabConfig(client_ns=sys.argv[2] + "-c", server_ns=sys.argv[2] + "-s"), temporary=True)
lab_up(LabConfig(client_ns=sys.argv[3] + "-c", server_ns=sys.argv[3] + "-s"))
print("up", flush=True)
time.sleep(120)
"""


def test_labs_left_by_a_killed_process_are_found_and_removed(labs):
    temp_cfg, kept_cfg = fresh_lab("rtt-lab"), fresh_lab("rtt-lab")
    labs += [temp_cfg, kept_cfg]
    base = lambda cfg: cfg.client_ns[:-2]  # noqa: E731
    owner = subprocess.Popen([sys.executable, "-c", OWNER, ROOT, base(temp_cfg), base(kept_cfg)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "up"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    status = lab_status(temp_cfg)
    assert status["up"] and status["owner_alive"] is False and status["temporary"] is True

    # A temporary lab whose owner died is reaped; a persistent one (rawtcp lab up) is not.
    reaped = reap_stale_labs()
    assert any(temp_cfg.client_ns in line and f"dead pid {owner.pid}" in line for line in reaped), reaped
    assert not lab_exists(temp_cfg)
    assert lab_status(kept_cfg)["up"]

    # `lab down` removes the persistent lab even though its owner is gone.
    removed = lab_down(kept_cfg)
    assert any(line.startswith("listener pid") for line in removed)
    assert_nothing_left(kept_cfg)
    assert_nothing_left(temp_cfg)


def test_two_concurrent_lab_ups_one_wins_and_the_lab_stays_whole(labs):
    import threading

    cfg = fresh_lab("rtt-lab")
    labs.append(cfg)
    results: list[object] = []

    def up() -> None:
        try:
            results.append(lab_up(cfg))
        except LabError as exc:
            results.append(exc)

    threads = [threading.Thread(target=up) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [r for r in results if isinstance(r, LabError)]
    assert len(results) == 2 and len(errors) == 1 and "already up" in str(errors[0])
    status = lab_status(cfg)
    assert status["up"] and status["listener"]["alive"] and status["listener"]["listening"]
    lab_down(cfg)
