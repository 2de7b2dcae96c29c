"""`rawtcp run` and the lab catalogue against the real kernel, in fresh namespaces per script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rawtcp.script.catalogue import LABS, find, run_lab

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PKT = ROOT / "tests" / "script" / "pkt"


def rawtcp(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


@pytest.mark.parametrize("name", ["passive-data-close.pkt", "active-blocking.pkt"])
def test_passing_scripts_exit_0(name: str) -> None:
    proc = rawtcp("run", str(PKT / name))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ": pass (" in proc.stdout


def test_wrong_ack_fails_with_packetdrill_message_and_ladder() -> None:
    proc = rawtcp("run", str(PKT / "fail-ack.pkt"))
    assert proc.returncode == 1
    assert f"{PKT / 'fail-ack.pkt'}:7: error handling packet: live packet field tcp_ack: expected: 2 vs actual: 1" \
        in proc.stderr
    ladder = proc.stdout.splitlines()
    assert ladder[0] == "what happened:"
    assert any(" < S " in line for line in ladder) and any(" > S. " in line for line in ladder)


def test_wrong_read_result_is_a_runtime_error() -> None:
    proc = rawtcp("run", str(PKT / "fail-read.pkt"))
    assert proc.returncode == 1
    assert "fail-read.pkt:11: runtime error in read call: Expected result 1000 but got 0" in proc.stderr


def test_wrong_timing_reports_expected_actual_and_tolerance() -> None:
    proc = rawtcp("run", "--tolerance-usecs", "20000", str(PKT / "fail-timing.pkt"))
    assert proc.returncode == 1
    assert "fail-timing.pkt:7: timing error: expected outbound packet at 0.5" in proc.stderr
    # packetdrill's tolerance: the larger of --tolerance_usecs (20 ms here) and 12.5 % of the 0.5 s gap
    assert re.search(r"tolerance 0\.06\d+ sec", proc.stderr), proc.stderr


def test_bad_script_exits_2_with_one_line() -> None:
    proc = rawtcp("run", str(PKT / "bad-syntax.pkt"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"rawtcp: error: {PKT / 'bad-syntax.pkt'}:2: bad flags 'Q'"


def test_json_and_pcap(tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", "--json", "--pcap", str(pcap), str(PKT / "passive-data-close.pkt"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    flags = [(e["dir"], e["flags"]) for e in out["ladder"]]
    assert flags[:3] == [("<", "S"), (">", "S."), ("<", ".")]
    assert out["ladder"][1]["seq"] == 0 and out["ladder"][1]["abs_seq"] == out["kernel_isn"]
    assert pcap.stat().st_size > 24 + 16 * len(out["ladder"])


def test_nothing_left_behind() -> None:
    before = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    proc = rawtcp("run", str(PKT / "fail-ack.pkt"))
    assert proc.returncode == 1
    after = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert not {ns for ns in after - before if ns.startswith("rtt-run-")}


@pytest.mark.parametrize("lab", [lab.name for lab in LABS])
def test_catalogue_lab_passes(lab: str) -> None:
    result = run_lab(find(lab))
    assert result.passed, f"{result.error}\n{result.ladder_text()}"
    assert result.ladder


@pytest.mark.parametrize("lab", [lab.name for lab in LABS])
def test_catalogue_lab_passes_over_ipv6(lab: str, tmp_path: Path) -> None:
    pcap = tmp_path / "lab.pcap"
    result = run_lab(find(lab), pcap=str(pcap), ip_version="ipv6")
    assert result.passed, f"{result.error}\n{result.ladder_text()}"
    frames = pcap.read_bytes()
    # every frame on the wire is IPv6 (ethertype 0x86dd) between the lab's 2001:db8:: addresses
    assert b"\x86\xdd" in frames and b"\x08\x00E" not in frames


def test_labs_lesson_ships_with_the_package() -> None:
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "labs", "--lesson"], capture_output=True, text=True,
                          cwd="/", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "| 10  | client | ACK      | 1022 | 8012 |" in proc.stdout and "TIME-WAIT" in proc.stdout


def test_lab_ladder_shows_kernel_states() -> None:
    result = run_lab(find("half-close"))
    assert result.passed, result.error
    states = [entry.kstate for entry in result.ladder]
    assert "ESTABLISHED" in states and "CLOSE-WAIT" in states


def test_lab_docker_mode_against_a_serving_helper() -> None:
    """`--lab docker` without Docker: the compose layout (a serving helper in the kernel's namespace,
    rawtcp in the peer's) rebuilt from two namespaces."""
    from rawtcp.lab.process import child_env
    from rawtcp.lab.topology import fresh_lab, temporary_lab

    cfg = fresh_lab("rtt-dsim")
    with temporary_lab(cfg, listener=False):
        env = dict(child_env(), RAWTCP_HELPER_TOKEN="test-token")
        srv = subprocess.Popen(["ip", "netns", "exec", cfg.server_ns, sys.executable, "-m",
                                "rawtcp.script.syscall_helper", "--serve", f"{cfg.server_ip}:7700"],
                               env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert srv.stdout is not None and srv.stdout.readline().startswith("ready 7700")
            cenv = dict(env, RAWTCP_DOCKER_PEER=cfg.server_ip, RAWTCP_DOCKER_LOCAL=cfg.client_ip)
            for name, code in (("passive-data-close.pkt", 0), ("fail-ack.pkt", 1)):
                proc = subprocess.run(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-m", "rawtcp", "run",
                                       "--lab", "docker", str(PKT / name)], env=cenv, capture_output=True,
                                      text=True, timeout=60, check=False)
                assert proc.returncode == code, proc.stdout + proc.stderr
            bad = dict(cenv, RAWTCP_HELPER_TOKEN="wrong")
            proc = subprocess.run(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-m", "rawtcp", "run",
                                   "--lab", "docker", str(PKT / "fail-ack.pkt")], env=bad, capture_output=True,
                                  text=True, timeout=60, check=False)
            assert proc.returncode == 2 and "bad or missing token" in proc.stderr
        finally:
            srv.terminate()
            srv.wait(timeout=5)
