"""Network impairments on a private lab, both backends: tc netem (where the kernel has it) and the
user-space relay (rawtcp.lab.relay) that stands in for it; and tx checksum offload."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from rawtcp.lab.errors import LabError
from rawtcp.lab.topology import (
    NO_NETEM_MESSAGE,
    RELAY_IF,
    clear_impairments,
    fresh_lab,
    impair,
    lab_down,
    lab_status,
    lab_up,
    pid_alive,
    set_tx_checksum,
)

pytestmark = pytest.mark.integration


def tc(netns: str, *args: str) -> str:
    return subprocess.run(["tc", "-n", netns, *args], capture_output=True, text=True, check=True).stdout


def ends(cfg):
    return ((cfg.client_ns, cfg.client_if), (cfg.server_ns, cfg.server_if))


@pytest.fixture
def lab(echo_lab):
    return echo_lab.cfg


def apply(cfg, backend, **settings):
    try:
        return impair(cfg, backend=backend, **settings)
    except LabError as exc:
        if str(exc) == NO_NETEM_MESSAGE:
            pytest.skip(NO_NETEM_MESSAGE)
        raise


ECHO = """
import hashlib, json, socket, sys, time
data = bytes(range(256)) * (int(sys.argv[3]) // 256)
t0 = time.monotonic()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    connect = time.monotonic() - t0
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    back = b""
    while chunk := s.recv(65536):
        back += chunk
print(json.dumps({"connect": connect, "same": back == data}))
"""


def echo(cfg, size: int) -> dict:
    out = subprocess.run(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", ECHO, cfg.server_ip,
                          str(cfg.port), str(size)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_netem_applies_to_both_directions_and_clears(lab):
    apply(lab, "netem", loss=20, delay_ms=50, jitter_ms=20, reorder=10, duplicate=5, corrupt=1)
    for ns, ifname in ends(lab):
        text = tc(ns, "qdisc", "show", "dev", ifname, "root")
        assert "netem" in text and "loss 20%" in text and "duplicate 5%" in text and "reorder 10%" in text
        assert "delay 50ms  20ms" in text and "corrupt 1%" in text
    status = lab_status(lab)
    assert status["impairment_backend"] == "netem"
    assert status["netem"][lab.client_if]["loss"] == status["netem"][lab.server_if]["loss"] == 20
    # `impair` sets the whole configuration: what is not given is off.
    impair(lab, delay_ms=5, backend="netem")
    assert "loss" not in tc(lab.client_ns, "qdisc", "show", "dev", lab.client_if, "root")
    assert sorted(clear_impairments(lab)) == sorted([lab.client_if, lab.server_if])
    for ns, ifname in ends(lab):
        assert "netem" not in tc(ns, "qdisc", "show", "dev", ifname, "root")
    assert clear_impairments(lab) == []


def test_relay_delays_both_directions_keeps_data_intact_and_clears(lab):
    assert echo(lab, 1 << 16)["connect"] < 0.05
    got = apply(lab, "relay", delay_ms=40)
    assert got["backend"] == "relay" and got["delay_ms"] == 40
    for ns, ifname in ends(lab):
        assert f"redirect to device {RELAY_IF}" in tc(ns, "filter", "show", "dev", ifname, "egress").lower()
    relays = lab_status(lab)["relay"]
    assert len(relays) == 2 and all(r["alive"] for r in relays)
    # connect() waits one round trip: 40 ms each way.
    assert echo(lab, 1 << 16)["connect"] >= 0.079

    # The fault mix, milder than scripts/integrity.py's full run: kernel TCP both ends, every byte back intact.
    apply(lab, "relay", loss=5, delay_ms=10, jitter_ms=5, reorder=10, duplicate=5)
    assert [r["alive"] for r in lab_status(lab)["relay"]] == [True, True]
    assert not any(pid_alive(r["pid"]) for r in relays)  # the previous relays were replaced
    assert echo(lab, 1 << 18)["same"]

    pids = [r["pid"] for r in lab_status(lab)["relay"]]
    assert sorted(clear_impairments(lab)) == sorted([lab.client_if, lab.server_if])
    assert not any(pid_alive(p) for p in pids)
    for ns, ifname in ends(lab):
        assert "mirred" not in tc(ns, "filter", "show", "dev", ifname, "egress")
        assert subprocess.run(["ip", "-n", ns, "link", "show", RELAY_IF], capture_output=True).returncode != 0
    assert lab_status(lab)["impairment_backend"] is None and lab_status(lab)["relay"] == []
    assert echo(lab, 1 << 16)["connect"] < 0.05


def test_lab_down_removes_a_lab_with_relays():
    cfg = fresh_lab("rtt-lab", listener="sink")
    lab_up(cfg)
    try:
        impair(cfg, loss=1, backend="relay")
        pids = [r["pid"] for r in lab_status(cfg)["relay"]]
    finally:
        lab_down(cfg)
    assert pids and not any(pid_alive(p) for p in pids)


def test_impairments_refuse_bad_values_and_a_missing_lab(lab):
    with pytest.raises(LabError, match="reorder needs a delay"):
        impair(lab, reorder=10)
    with pytest.raises(LabError, match="unknown impairment backend"):
        impair(lab, loss=1, backend="magic")
    with pytest.raises(LabError, match="no lab is up"):
        impair(fresh_lab("rtt-lab"), loss=1)


@pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool (apt-get install ethtool)")
def test_tx_checksum_offload_toggles(lab):
    set_tx_checksum(lab, False)
    status = lab_status(lab)
    assert [status["interfaces"][ns]["tx_checksum"] for ns in (lab.client_ns, lab.server_ns)] == [False, False]
    set_tx_checksum(lab, True)
    status = lab_status(lab)
    assert [status["interfaces"][ns]["tx_checksum"] for ns in (lab.client_ns, lab.server_ns)] == [True, True]
