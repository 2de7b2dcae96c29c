"""Every command's ``--pcap x.pcapng`` carries a comment on each packet, written with the packet: a session
(and one whose keeper is killed before it could add the kernel's states), a script run, a probe.

Needs root (namespaces, raw sockets, nftables) and tshark, which reads the comments back as Wireshark
shows them. Private labs (rtt-capture-comments-*) and a private RAWTCP_RUNTIME_DIR per test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from engine_helpers import json_lines, keeper_pids, rawtcp, wait_until

# A process has ended when it is gone or a zombie: a daemonized keeper's parent is PID 1, and a container's
# PID 1 (pytest itself on a fresh machine) never reaps orphans, so /proc/PID stays while the zombie does.
from rawtcp.proc import pid_alive

pytestmark = pytest.mark.integration

PKT = Path(__file__).resolve().parent.parent / "script" / "pkt"


@pytest.fixture
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("needs tshark (apt-get install tshark) to read the comments as Wireshark does")
    return path


def comments(tshark: str, path: Path) -> list[tuple[str, str]]:
    """(tcp flags as tshark shows them, the packet's comments) per packet."""
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "tcp.flags.str", "-e", "frame.comment"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return [(row[0].replace("\u00b7", "").strip(), row[1] if len(row) > 1 else "") for row in rows]


def _keeper_pid(env: dict[str, str], name: str) -> int:
    rows = json_lines(rawtcp("sessions", "--json", env=env, check=True).stdout)
    return next(r["pid"] for r in rows if r["name"] == name)


def test_session_capture_has_rawtcp_state_per_packet_and_kernel_state_after_close(seed_lab, env, tshark,
                                                                                   tmp_path):
    cfg, _ = seed_lab
    pcap = tmp_path / "s.pcapng"
    rawtcp("connect", cfg.server_ip, "8080", "--name", "c1", "--netns", cfg.client_ns, "--pcap", str(pcap),
           "--msl2", "1", env=env, check=True)
    rawtcp("send", "c1", "hello, kernel! (20B)", env=env, check=True)
    rawtcp("recv", "c1", "--bytes", "10", "--out", "-", env=env, check=True)
    rawtcp("close", "c1", env=env, check=True)
    # The keeper adds the kernel's states on its way out, after TIME-WAIT (1 s here).
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 30), "the keeper never finished"
    rows = comments(tshark, pcap)
    assert [flags for flags, _ in rows][:3] == ["S", "AS", "A"]
    # rawtcp's own state, written with the packet: the state that sent it, or that it found.
    assert rows[0][1].startswith("rawtcp SYN-SENT") and rows[1][1].startswith("rawtcp SYN-SENT")
    assert rows[2][1].startswith("rawtcp ESTABLISHED")
    assert all(c.startswith("rawtcp ") for _, c in rows), rows
    # The kernel's, read from the tracepoint, was added beside it when the keeper ended (from the
    # first packet after its socket existed: Linux makes the full socket when the handshake's ACK lands).
    data = next(i for i, (flags, _) in enumerate(rows) if "P" in flags)
    assert "rawtcp ESTABLISHED" in rows[data][1] and "states: kernel ESTABLISHED" in rows[data][1], rows
    assert not any("states: rawtcp" in c for _, c in rows), rows  # the writer's own is never repeated
    assert any("state kernel" in c and "-> CLOSE-WAIT" in c for _, c in rows), rows


def test_killed_keepers_capture_keeps_its_comments(seed_lab, env, tshark, tmp_path):
    cfg, _ = seed_lab
    pcap = tmp_path / "k.pcapng"
    rawtcp("connect", cfg.server_ip, "8080", "--name", "k1", "--netns", cfg.client_ns, "--pcap", str(pcap),
           env=env, check=True)
    rawtcp("send", "k1", "hello, kernel! (20B)", env=env, check=True)
    pid = _keeper_pid(env, "k1")
    os.kill(pid, signal.SIGKILL)  # no post-pass: what is in the file was written with each packet
    assert wait_until(lambda: not pid_alive(pid), 10)
    try:
        rows = comments(tshark, pcap)
        assert [flags for flags, _ in rows][:4] == ["S", "AS", "A", "AP"], rows
        assert [c for _, c in rows][:4] == ["rawtcp SYN-SENT", "rawtcp SYN-SENT", "rawtcp ESTABLISHED",
                                            "rawtcp ESTABLISHED"]
    finally:
        # The next command that touches the wire reaps what the dead keeper left (its RST entry).
        rawtcp("connect", cfg.server_ip, "8080", "--name", "k2", "--netns", cfg.client_ns, env=env, check=True)
        rawtcp("close", "k2", "--abort", env=env, check=True)


def test_script_capture_names_each_packets_script_line(tshark, tmp_path):
    pcap = tmp_path / "run.pcapng"
    script = PKT / "passive-data-close.pkt"
    proc = rawtcp("run", "--json", "--pcap", str(pcap), str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ladder = json.loads(proc.stdout)["ladder"]
    rows = comments(tshark, pcap)
    assert len(rows) == len(ladder)
    lines = {entry["line"] for entry in ladder}
    for _flags, comment in rows:
        assert comment.startswith("script line "), rows
        assert int(comment.split()[2]) in lines


def test_probe_capture_says_which_probe_and_what_answered(echo_lab, tshark, tmp_path):
    cfg, _ = echo_lab
    pcap = tmp_path / "p.pcapng"
    proc = rawtcp("probe", cfg.server_ip, str(cfg.port), "--netns", cfg.client_ns, "--count", "2",
                  "--interval", "0.05", "--pcap", str(pcap))
    assert proc.returncode == 0, proc.stderr
    rows = comments(tshark, pcap)
    assert [flags for flags, _ in rows] == ["S", "AS", "R"] * 2
    for n in (1, 2):
        sent, answer, rst = (c for _, c in rows[3 * (n - 1):3 * n])
        assert sent == f"probe {n}"
        assert answer.startswith(f"probe {n}: answer, rtt ") and answer.endswith(" ms")
        assert rst.startswith(f"probe {n}: RST")


def test_scenario_lab_capture_names_each_packets_connection(tshark, tmp_path):
    from rawtcp.script.catalogue import find, run_lab

    pcap = tmp_path / "lab.pcapng"
    result = run_lab(find("isn-random"), pcap=str(pcap))
    assert result.passed, f"{result.error}\n{result.ladder_text()}"
    rows = comments(tshark, pcap)
    labels = {entry.label for entry in result.ladder}
    assert len(rows) >= len(result.ladder)
    for _flags, comment in rows:
        written = comment.split(",")[0]  # tshark joins a packet's comments with commas
        assert written.startswith("peer port ") and written.removeprefix("peer port ") in labels, rows
