"""`rawtcp run` on single scripts: address modes (IPv6 on the wire, IPv4 with mapped sockets), ICMP
errors the kernel acts on, a TFO server with packetdrill's cookie, PACKETDRILL_PID in shell commands,
which packets a script sees, and packetdrill's sequence-number rule.

The scripts are the project's own (tests/script/pkt/modes, tests/script/pkt/suite). Each run makes
and removes its own namespaces; the wire is judged from --pcap captures.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from rawtcp.capture.pcap import iter_packets
from rawtcp.wire.packet import decode_frame

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PKT = ROOT / "tests" / "script" / "pkt"
MODES = PKT / "modes"
SUITE = PKT / "suite"
ETH_IP, ETH_IP6 = 0x0800, 0x86DD
LAB4 = {"198.18.0.1", "198.18.0.2"}
LAB6 = {"2001:db8::1", "2001:db8::2"}
COOKIE4, COOKIE6 = "3021b9d889017eeb", "c1d1e9742a47a9bc"  # packetdrill's, for its IPv4 / IPv6 addresses


def rawtcp(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def run_json(*args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = rawtcp("run", "--json", *args)
    assert proc.stdout.strip(), proc.stderr
    return proc, json.loads(proc.stdout)


def line_of(script: Path, text: str) -> int:
    """The line number of the first line of ``script`` containing ``text``."""
    for number, line in enumerate(script.read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {script}")


def frames(pcap: Path) -> list[bytes]:
    return [packet.data for packet in iter_packets(pcap)]


def ethertype(frame: bytes) -> int:
    return struct.unpack_from("!H", frame, 12)[0]


def tcp_frames(pcap: Path) -> list:
    out = []
    for frame in frames(pcap):
        dec = decode_frame(frame, verify=False)
        if dec is not None:
            out.append(dec)
    return out


def assert_wire(pcap: Path, mode: str) -> None:
    """Every frame of the capture is of the mode's IP version, between the lab's addresses of it."""
    captured = frames(pcap)
    assert len(captured) >= 3
    want_type, lab = (ETH_IP6, LAB6) if mode == "ipv6" else (ETH_IP, LAB4)
    assert {ethertype(f) for f in captured} == {want_type}
    decoded = tcp_frames(pcap)
    assert decoded, "no TCP in the capture"
    for dec in decoded:
        assert {str(ipaddress.ip_address(dec.src_ip)), str(ipaddress.ip_address(dec.dst_ip))} == lab
        assert dec.version == (6 if mode == "ipv6" else 4)


# -- address modes -------------------------------------------------------------------------------------

SCRIPTS_EVERY_MODE = [SUITE / "passive.pkt", SUITE / "active.pkt", MODES / "peer-isn-1000.pkt",
                      MODES / "two-listens.pkt", MODES / "shell-pid.pkt"]


@pytest.mark.parametrize("mode", ["ipv4", "ipv4-mapped-ipv6", "ipv6"])
@pytest.mark.parametrize("script", SCRIPTS_EVERY_MODE, ids=[p.name for p in SCRIPTS_EVERY_MODE])
def test_own_scripts_pass_in_each_address_mode_with_that_ip_version_on_the_wire(
        script: Path, mode: str, tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", "--ip-version", mode, "--pcap", str(pcap), str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if script.name != "shell-pid.pkt":  # no packets in that one
        assert_wire(pcap, mode)


def test_ip_version_from_the_scripts_option_line(tmp_path: Path) -> None:
    script = MODES / "optline-v6.pkt"
    pcap = tmp_path / "v6.pcap"
    proc = rawtcp("run", "--pcap", str(pcap), str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_wire(pcap, "ipv6")
    # the command line wins over the option line, as packetdrill's does
    pcap4 = tmp_path / "v4.pcap"
    proc = rawtcp("run", "--ip_version=ipv4", "--pcap", str(pcap4), str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_wire(pcap4, "ipv4")


def test_ip_version_option_line_matters(tmp_path: Path) -> None:
    """The same script without its option line runs over IPv4: the option line is what made it IPv6."""
    text = (MODES / "optline-v6.pkt").read_text().replace("--ip_version=ipv6\n", "")
    script = tmp_path / "no-option.pkt"
    script.write_text(text)
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", "--pcap", str(pcap), str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_wire(pcap, "ipv4")


def test_mapped_mode_sockets_have_ipv4_mapped_names(tmp_path: Path) -> None:
    script = MODES / "mapped-names.pkt"
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", "--ip-version", "ipv4-mapped-ipv6", "--pcap", str(pcap), str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_wire(pcap, "ipv4-mapped-ipv6")  # IPv4 on the wire, AF_INET6 sockets
    # the same checks fail for IPv4 sockets and for IPv6 ones: the names really are ::ffff:a.b.c.d
    first = line_of(script, "getsockname(3")
    proc = rawtcp("run", "--ip-version", "ipv4", str(script))
    assert proc.returncode == 1
    assert f"mapped-names.pkt:{first}: runtime error in getsockname call: Bad getsockname address: expected: " \
           "::ffff:198.18.0.2:8080 actual: 198.18.0.2:8080" in proc.stderr
    proc = rawtcp("run", "--ip-version", "ipv6", str(script))
    assert proc.returncode == 1 and "actual: 2001:db8::2:8080" in proc.stderr


def test_mapped_spelling_of_packetdrills_addresses_means_the_labs() -> None:
    proc = rawtcp("run", "--ip-version", "ipv4-mapped-ipv6", str(MODES / "mapped-script-names.pkt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- ICMP ---------------------------------------------------------------------------------------------


def _kernel_payloads(pcap: Path) -> list[int]:
    return [len(d.segment.payload) for d in tcp_frames(pcap)
            if str(ipaddress.ip_address(d.src_ip)) in ("198.18.0.2", "2001:db8::2") and d.segment.payload]


def _icmp(pcap: Path) -> list[tuple[int, int, int, int]]:
    """(IP version, type, code, MTU) of every ICMP / ICMPv6 message in the capture."""
    out = []
    for frame in frames(pcap):
        if ethertype(frame) == ETH_IP and frame[14 + 9] == 1:
            icmp = 14 + (frame[14] & 0x0F) * 4
            out.append((4, frame[icmp], frame[icmp + 1], struct.unpack_from("!H", frame, icmp + 6)[0]))
        elif ethertype(frame) == ETH_IP6 and frame[14 + 6] == 58:
            icmp = 14 + 40
            out.append((6, frame[icmp], frame[icmp + 1], struct.unpack_from("!I", frame, icmp + 4)[0]))
    return out


@pytest.mark.parametrize("mode", ["ipv4", "ipv4-mapped-ipv6"])
def test_frag_needed_makes_the_kernel_resend_smaller_segments(mode: str, tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", "--ip-version", mode, "--pcap", str(pcap), str(MODES / "icmp-frag-needed-v4.pkt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _icmp(pcap) == [(4, 3, 4, 1200)]  # destination unreachable, fragmentation needed, MTU 1200
    assert _kernel_payloads(pcap) == [1460, 1160, 300]


def test_packet_too_big_makes_the_kernel_resend_smaller_segments_over_ipv6(tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    proc = rawtcp("run", "--pcap", str(pcap), str(MODES / "icmp-ptb-v6.pkt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _icmp(pcap) == [(6, 2, 0, 1280)]  # ICMPv6 packet too big, MTU 1280
    assert _kernel_payloads(pcap) == [1460, 1220, 240]
    assert {ethertype(f) for f in frames(pcap)} == {ETH_IP6}


def test_icmp_quoting_a_segment_never_sent_is_ignored_by_the_kernel(tmp_path: Path) -> None:
    """The quoted sequence number is the script's, mapped like the kernel's own: quote data beyond what
    was sent and the kernel drops the message; what comes next is the full-sized segment again, on the
    retransmission timer, not the smaller ones."""
    source = MODES / "icmp-frag-needed-v4.pkt"
    script = tmp_path / "icmp-out-of-window.pkt"
    script.write_text(source.read_text().replace("[1:1461(1460)]", "[90001:91461(1460)]"))
    proc, out = run_json(str(script))
    assert proc.returncode == 1
    assert out["error"] == f"{script}:{line_of(source, '> . 1:1161(1160)')}: error handling packet: live packet " \
                           "field tcp_flags: expected: . vs actual: P."
    icmp = next(e for e in out["ladder"] if "icmp" in e)
    resent = out["ladder"][-1]
    assert (resent["dir"], resent["seq"], resent["len"]) == (">", 1, 1460)
    assert resent["time"] - icmp["time"] > 0.15  # the RTO (200 ms at least), not the ICMP, sent it


# -- TFO server ----------------------------------------------------------------------------------------

TFO = MODES / "tfo-server.pkt"


@pytest.mark.parametrize(("mode", "cookie"), [("ipv4", COOKIE4), ("ipv4-mapped-ipv6", COOKIE4), ("ipv6", COOKIE6)])
def test_tfo_server_accepts_data_with_packetdrills_cookie(mode: str, cookie: str) -> None:
    proc, out = run_json("--ip-version", mode, "-D", f"TFO_COOKIE={cookie}", str(TFO))
    assert proc.returncode == 0, out["error"]
    synack = next(e for e in out["ladder"] if e["dir"] == ">" and e["flags"] == "S.")
    assert synack["ack"] == 11 and synack["line"] == line_of(TFO, "> S. 0:0(0) ack 11")
    syn = out["ladder"][0]
    assert (syn["flags"], syn["len"]) == ("S", 10)
    # what went on the wire is the lab's cookie, not packetdrill's
    assert "FOEXP" in syn["options"] and cookie not in syn["options"]


@pytest.mark.parametrize(("mode", "cookie"), [("ipv4", "0011223344556677"), ("ipv6", COOKIE4)])
def test_tfo_server_refuses_data_with_a_wrong_cookie(mode: str, cookie: str) -> None:
    proc, out = run_json("--ip-version", mode, "-D", f"TFO_COOKIE={cookie}", str(TFO))
    assert proc.returncode == 1
    assert out["error"] == f"{TFO}:{line_of(TFO, '> S. 0:0(0) ack 11')}: error handling packet: live packet field " \
                           "tcp_ack: expected: 11 vs actual: 1"


def test_tfo_code_block_runs_and_its_failure_names_its_line(tmp_path: Path) -> None:
    block = line_of(TFO, "%{")
    script = tmp_path / "tfo-wrong-assert.pkt"
    script.write_text(TFO.read_text().replace("TCPI_OPT_SYN_DATA) != 0", "TCPI_OPT_SYN_DATA) == 0"))
    proc, out = run_json("-D", f"TFO_COOKIE={COOKIE4}", str(script))
    assert proc.returncode == 1
    assert out["error"].startswith(f"{script}:{block}: error in Python code: AssertionError")
    # blocks run after the script, as packetdrill's: every event after the block ran first
    assert out["ladder"][-1]["line"] == len(TFO.read_text().splitlines())


def test_code_blocks_run_only_after_the_script(tmp_path: Path) -> None:
    """A script that fails after a failing block reports the script's failure: the block never ran."""
    script = tmp_path / "tfo-two-failures.pkt"
    text = TFO.read_text().replace("TCPI_OPT_SYN_DATA) != 0", "TCPI_OPT_SYN_DATA) == 0")
    text = text.replace("> F. 1:1(0) ack 12", "> F. 1:1(0) ack 13")
    script.write_text(text)
    proc, out = run_json("-D", f"TFO_COOKIE={COOKIE4}", str(script))
    assert proc.returncode == 1
    assert out["error"] == f"{script}:{line_of(script, '> F. 1:1(0) ack 13')}: error handling packet: live packet " \
                           "field tcp_ack: expected: 13 vs actual: 12"


# -- shell commands ---------------------------------------------------------------------------------------


def test_shell_commands_get_packetdrill_pid_and_ppid_of_the_helper(tmp_path: Path) -> None:
    before = set(glob.glob("/tmp/rtt_*"))
    proc = rawtcp("run", str(MODES / "shell-pid.pkt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(glob.glob("/tmp/rtt_*")) <= before, "the cleanup command did not remove the file"
    # and the checks are real: a file under another name is not found
    script = tmp_path / "shell-pid-wrong.pkt"
    script.write_text((MODES / "shell-pid.pkt").read_text().replace("test -f /tmp/rtt_${PPID}",
                                                                    "test -f /tmp/rtt_x${PPID}"))
    proc = rawtcp("run", str(script))
    assert proc.returncode == 1
    assert f"shell-pid-wrong.pkt:{line_of(script, 'rtt_x')}: error executing command `test -f /tmp/rtt_x${{PPID}}`: " \
           "non-zero status 1" in proc.stderr
    assert set(glob.glob("/tmp/rtt_*")) <= before, "the cleanup command must run after a failure too"


# -- which packets count ---------------------------------------------------------------------------------


def test_packets_of_an_earlier_connection_are_ignored(tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    proc, out = run_json("--pcap", str(pcap), str(MODES / "fin-in-flight.pkt"))
    assert proc.returncode == 0, out["error"]
    segs = [d.segment for d in tcp_frames(pcap)]
    syns = [s for s in segs if s.flags & 0x02 and not s.flags & 0x10]
    assert len(syns) == 2 and syns[0].sport != syns[1].sport
    first_port = syns[0].sport
    second_syn = segs.index(syns[1])
    # the first connection's FIN went out again while the second connection ran, and the run passed
    late_fins = [s for s in segs[second_syn:] if s.sport == first_port and s.flags & 0x01]
    assert late_fins, "no retransmitted FIN: the script did not exercise what it is for"
    assert all(e["flags"] != "F." for e in out["ladder"][4:]), "the stray FIN was matched to an event"


def test_second_passive_open_after_a_second_listen_uses_a_new_peer_port(tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    proc, out = run_json("--pcap", str(pcap), str(MODES / "two-listens.pkt"))
    assert proc.returncode == 0, out["error"]
    assert [e["flags"] for e in out["ladder"] if e["dir"] == "<" and e["flags"] == "S"] == ["S", "S"]
    # the ladder has no ports; the capture does
    syns = [d.segment for d in tcp_frames(pcap) if d.segment.flags & 0x02 and not d.segment.flags & 0x10]
    assert len(syns) == 2
    assert syns[0].sport != syns[1].sport
    assert syns[0].dport == syns[1].dport == 8080
    assert syns[1].seq == 100


def test_peer_isn_1000_and_relative_numbers_after_the_syn() -> None:
    proc, out = run_json(str(MODES / "peer-isn-1000.pkt"))
    assert proc.returncode == 0, out["error"]
    ladder = out["ladder"]
    syn, synack = ladder[0], ladder[1]
    assert (syn["seq"], syn["abs_seq"]) == (1000, 1000)
    assert (synack["ack"], synack["abs_ack"]) == (1001, 1001)
    data = next(e for e in ladder if e["dir"] == "<" and e["len"] == 20)
    assert (data["seq"], data["abs_seq"]) == (1, 1001)
    ack = next(e for e in ladder if e["dir"] == ">" and e["ack"] == 21)
    assert ack["abs_ack"] == 1021
    kernel_data = next(e for e in ladder if e["dir"] == ">" and e["len"] == 5)
    assert kernel_data["abs_seq"] == (out["kernel_isn"] + 1) % 2**32


def test_absolute_numbers_after_the_syn_are_wrong_by_packetdrills_rule(tmp_path: Path) -> None:
    """Writing the peer's data at 1001:1021 (absolute) puts it 1000 bytes ahead: the kernel does not
    acknowledge it as the script's relative 21."""
    text = (MODES / "peer-isn-1000.pkt").read_text().replace("< P. 1:21(20)", "< P. 1001:1021(20)")
    script = tmp_path / "absolute.pkt"
    script.write_text(text)
    proc, out = run_json(str(script))
    assert proc.returncode == 1
    assert out["error"].startswith(f"{script}:{line_of(script, '> . 1:1(0) ack 21')}: error handling packet: "
                                   "live packet field tcp_ack: expected: 21 vs actual: 1")
