"""Network impairments (tc netem on both veth ends) and tx checksum offload on a private lab."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from rawtcp.lab.errors import LabError
from rawtcp.lab.topology import (
    NO_NETEM_MESSAGE,
    clear_impairments,
    fresh_lab,
    impair,
    lab_status,
    set_tx_checksum,
    temporary_lab,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces (run the suite with sudo)"),
]


def qdisc(netns: str, ifname: str) -> str:
    return subprocess.run(["tc", "-n", netns, "qdisc", "show", "dev", ifname, "root"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def lab():
    cfg = fresh_lab("rtt-lab", listener="echo")
    with temporary_lab(cfg, listener=False):
        yield cfg


def test_impairments_apply_to_both_directions_and_clear(lab):
    try:
        impair(lab, loss=20, delay_ms=50, jitter_ms=20, reorder=10, duplicate=5, corrupt=1)
    except LabError as exc:
        if str(exc) == NO_NETEM_MESSAGE:
            pytest.skip(NO_NETEM_MESSAGE)
        raise
    for ns, ifname in ((lab.client_ns, lab.client_if), (lab.server_ns, lab.server_if)):
        text = qdisc(ns, ifname)
        assert "netem" in text and "loss 20%" in text and "duplicate 5%" in text and "reorder 10%" in text
        assert "delay 50ms  20ms" in text and "corrupt 1%" in text
    netem = lab_status(lab)["netem"]
    assert netem[lab.client_if]["loss"] == netem[lab.server_if]["loss"] == 20
    assert netem[lab.server_if]["delay_ms"] == 50 and netem[lab.server_if]["jitter_ms"] == 20

    # `impair` sets the whole configuration: what is not given is off.
    impair(lab, delay_ms=5)
    assert "loss" not in qdisc(lab.client_ns, lab.client_if)
    assert sorted(clear_impairments(lab)) == sorted([lab.client_if, lab.server_if])
    for ns, ifname in ((lab.client_ns, lab.client_if), (lab.server_ns, lab.server_if)):
        assert "netem" not in qdisc(ns, ifname)
    assert clear_impairments(lab) == []


def test_impairments_refuse_bad_values_and_a_missing_lab(lab):
    with pytest.raises(LabError, match="reorder needs a delay"):
        impair(lab, reorder=10)
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
