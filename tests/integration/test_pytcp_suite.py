"""A suite run against PyTCP (`rawtcp run DIR --stack pytcp`): each script in its own PyTCP lab, a script
whose calls PyTCP's socket API cannot express counted `unsupported` (not a failure of the stack), the
rest pass or fail. Skipped only when the optional extra (rawtcp[pytcp]) or /dev/net/tun is missing."""

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

SCRIPTS = {
    # a passive open PyTCP makes as Linux does
    "open.pkt": PASSIVE_OPEN,
    # Linux's SYN-ACK to a SYN offering SACK and window scaling: PyTCP implements neither
    "options.pkt": """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
""",
    # a call PyTCP cannot make, after a SYN-ACK that differs from Linux's: unsupported, asked before the SYN
    "late.pkt": """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+0  < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4
+0  shutdown(4, SHUT_WR) = 0
""",
    # a socket option PyTCP has no knob for
    "maxseg.pkt": """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_TCP, TCP_MAXSEG, [1000], 4) = 0
""",
}


def test_a_suite_on_pytcp_counts_pass_fail_and_unsupported(tmp_path: Path) -> None:
    for name, text in SCRIPTS.items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "run", str(tmp_path), "--stack", "pytcp", "-j", "2",
                           "--timeout", "60", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a script failed
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    by_script = {r["script"]: r for r in lines if "script" in r}
    assert by_script["open.pkt"]["result"] == "pass"
    assert by_script["options.pkt"]["result"] == "fail"
    assert "vs actual: <mss 1460>" in by_script["options.pkt"]["error"]
    unsupported = by_script["maxseg.pkt"]
    assert unsupported["result"] == "unsupported" and unsupported["exit_code"] == 2
    assert "unsupported on stack pytcp" in unsupported["error"] and "TCP_MAXSEG" in unsupported["error"]
    late = by_script["late.pkt"]
    assert late["result"] == "unsupported" and "late.pkt:8: unsupported on stack pytcp: shutdown()" in late["error"]
    summary = lines[-1]
    assert summary["stack"] == "pytcp"
    assert {k: summary["summary"]["ipv4"][k] for k in ("pass", "fail", "unsupported", "total")} == \
        {"pass": 1, "fail": 1, "unsupported": 2, "total": 4}


def test_a_suite_of_unsupported_scripts_alone_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "maxseg.pkt").write_text(SCRIPTS["maxseg.pkt"])
    (tmp_path / "maxseg2.pkt").write_text(SCRIPTS["maxseg.pkt"])
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "run", str(tmp_path), "--stack", "pytcp", "-j", "2",
                           "--timeout", "60"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ipv4: 0 of 2 passed" in proc.stdout and "2 unsupported" in proc.stdout
