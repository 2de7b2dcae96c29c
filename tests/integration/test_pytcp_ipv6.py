"""PyTCP over IPv6: PyTCP 2.7 has AF_INET6 sockets, so its lab is dual-stack (2001:db8::2 beside
198.18.0.2) and scripts and labs run over IPv6 against it. Its AF_INET6 sockets are IPv6-only, so
packetdrill's ipv4-mapped-ipv6 mode is unsupported for this stack (exit 2, one line). Skipped only when
the optional extra (rawtcp[pytcp]) or /dev/net/tun is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytcp_helpers import NEEDS_PYTCP, PASSIVE_OPEN

pytestmark = [
    pytest.mark.integration,
    NEEDS_PYTCP,
]



def rawtcp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, timeout=180)


def test_a_script_runs_over_ipv6_on_pytcp(tmp_path: Path) -> None:
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    script = tmp_path / "open.pkt"
    script.write_text(PASSIVE_OPEN)
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", str(script), "--ip-version", "ipv6", "--stack", "pytcp", "--pcap", str(pcap), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["stack"] == "pytcp"
    packets = [p for p in rdpcap(str(pcap)) if p.haslayer(TCP)]
    assert packets and all(p.haslayer(IPv6) for p in packets)
    synack = next(p for p in packets if p[TCP].flags == "SA")
    assert synack[IPv6].src == "2001:db8::2"
    # PyTCP announces MTU - 40 over IPv6 too (Linux: MTU - 60 = 1440 on a 1500-byte link)
    assert ("MSS", 1460) in synack[TCP].options


def test_a_lab_runs_over_ipv6_on_pytcp() -> None:
    proc = rawtcp("lab", "run", "handshake", "--ipv6", "--stack", "pytcp", "--json")
    result = json.loads(proc.stdout.splitlines()[-1])
    # it runs (over IPv6) and fails where it fails over IPv4: PyTCP answers SACK and wscale with MSS alone
    assert result["stack"] == "pytcp" and result["exit_code"] == 1
    assert "vs actual: <mss 1460>" in result["error"]


def test_the_ipv4_mapped_mode_is_unsupported_on_pytcp(tmp_path: Path) -> None:
    script = tmp_path / "open.pkt"
    script.write_text(PASSIVE_OPEN)
    proc = rawtcp("run", str(script), "--ip-version", "ipv4-mapped-ipv6", "--stack", "pytcp")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unsupported on stack pytcp" in proc.stderr
    assert "ipv4-mapped-ipv6" in proc.stderr
