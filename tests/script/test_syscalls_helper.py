"""The helper process's protocol: the new options, PACKETDRILL_PID for commands, config and tcpinfo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_syscalls_support import connected_pair, loopback

from rawtcp.script.syscall_helper import Helper


def _helper() -> tuple[Helper, list[dict]]:
    replies: list[dict] = []
    helper = Helper(loopback(), lambda line: replies.append(json.loads(line)))
    return helper, replies


def test_commands_see_packetdrill_pid_and_it_is_their_parent(tmp_path) -> None:
    helper, replies = _helper()
    # set_sysctls.py names its restore file after PACKETDRILL_PID; scripts run it as ..._${PPID}.sh
    cmd = (f'echo "echo restored" > {tmp_path}/restore_$PACKETDRILL_PID.sh; '
           f'sh {tmp_path}/restore_${{PPID}}.sh; echo "$PACKETDRILL_PID $PPID"')
    helper.handle({"id": 1, "op": "cmd", "cmd": cmd, "cwd": str(tmp_path)})
    [reply] = replies
    assert reply["status"] == 0
    lines = reply["output"].split()
    assert lines[0] == "restored"
    assert lines[1] == lines[2] == str(os.getpid())


def test_config_and_tcpinfo_ops() -> None:
    helper, replies = _helper()
    helper.handle({"id": 1, "op": "config", "live_start": 12.5, "tolerance_usecs": 7000})
    assert replies[-1] == {"id": 1, "ok": True}
    assert (helper.executor.live_start, helper.executor.tolerance_usecs) == (12.5, 7000)
    helper.handle({"id": 2, "op": "tcpinfo"})
    assert "script_error" in replies[-1]  # no socket under test yet
    peer = connected_pair(helper.executor)
    with peer:
        helper.handle({"id": 3, "op": "tcpinfo"})
        info = replies[-1]["info"]
        assert info["tcpi_state"] == 1  # TCP_ESTABLISHED
        for name in ("tcpi_snd_mss", "tcpi_total_rto_time", "tcpi_received_ce_bytes", "tcpi_ecn_mode",
                     "tcpi_options2", "SK_MEMINFO_RCVBUF"):
            assert name in info, name
    helper.executor.close_all()


def test_helper_process_options_end_to_end() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rawtcp.script.syscall_helper", "--local-ip", "127.0.0.1",
                             "--remote-ip", "127.0.0.1", "--bind-port", "0", "--ip-version", "ipv4-mapped-ipv6",
                             "--script-local-ip", "10.0.0.1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        # the agent protocol's ready line (docs/agent-protocol.md): its version and the stack it drives
        assert json.loads(proc.stdout.readline()) == {"id": 0, "ready": True, "protocol": "rawtcp-agent/1",
                                                      "stack": "linux"}
        requests = [
            {"id": 1, "op": "call", "name": "socket", "result": {"int": 3}, "errno": None,
             "args": [{"ell": True}, {"word": "SOCK_STREAM"}, {"word": "IPPROTO_TCP"}]},
            {"id": 2, "op": "call", "name": "bind", "result": {"int": 0}, "errno": None,
             "args": [{"int": 3}, {"ell": True}, {"ell": True}]},
            {"id": 3, "op": "cmd", "cmd": "echo $PACKETDRILL_PID $PPID"},
            {"id": 4, "op": "exit"},
        ]
        for req in requests:
            proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        replies = {r["id"]: r for r in (json.loads(proc.stdout.readline()) for _ in requests)}
        assert replies[1]["error"] is None and replies[2]["error"] is None
        assert replies[3]["output"].split() == [str(proc.pid)] * 2
    finally:
        proc.wait(timeout=10)
