"""The engine against a real Linux kernel, driven through the CLI as separate commands.

Needs root, network namespaces and nftables; each test gets a private lab (namespaces named rtt-engine-cli-*)
and a private runtime directory, and checks what the KERNEL saw: the listener's byte counts and its
socket states as recorded by the tracepoint.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from engine_helpers import (
    assert_nothing_left,
    json_lines,
    keeper_pids,
    listener_log,
    ns_exec,
    passive_open_with_a_kernel_client,
    rawtcp,
    rawtcp_listen,
    seed_exchange,
    segments,
    wait_until,
)

pytestmark = pytest.mark.integration




def test_seed_exchange_as_separate_commands(seed_lab, env):
    cfg, _info = seed_lab
    # --bare: SEED.md's SYN, <mss> only (the default offers what Linux offers)
    with seed_exchange(seed_lab, env, cfg.server_ip, "c1", "--bare") as run:
        syn = segments(run.opened)[0]
        assert syn["options"] == "mss 1460"  # a 1500-byte veth less 20 bytes of IPv4 header and 20 of TCP


def test_keeper_acks_data_while_no_command_runs(echo_lab, env, tmp_path):
    cfg, info = echo_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "e1", "--netns", cfg.client_ns, env=env, check=True)
    payload = bytes(range(256)) * 40  # 10240 bytes: several MSS-sized segments
    (tmp_path / "payload.bin").write_bytes(payload)
    rawtcp("send", "e1", "--file", str(tmp_path / "payload.bin"), env=env, check=True)

    # The echo comes back while no command runs: the keeper ACKs and buffers it.
    def buffered() -> int:
        return json_lines(rawtcp("status", "e1", "--json", env=env, check=True).stdout)[0]["readable"]

    assert wait_until(lambda: buffered() == len(payload), 10)
    rawtcp("recv", "e1", "--bytes", str(len(payload)), "--out", str(tmp_path / "echo.bin"), env=env, check=True)
    assert (tmp_path / "echo.bin").read_bytes() == payload
    rawtcp("close", "e1", env=env, check=True)
    assert wait_until(lambda: listener_log(info), 5)
    assert listener_log(info)[0]["received"] == len(payload)
    assert_nothing_left(cfg, env)


def test_half_close_then_recv(seed_lab, env):
    cfg, _info = seed_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "h1", "--netns", cfg.client_ns, env=env, check=True)
    rawtcp("send", "h1", "x" * 20, env=env, check=True)
    shut = json_lines(rawtcp("shutdown", "h1", "--json", env=env, check=True).stdout)
    assert any(r.get("new") == "FIN-WAIT-2" for r in shut if r.get("type") == "state")
    got = rawtcp("recv", "h1", "--bytes", "10", "--out", "-", env=env, check=True)
    assert len(got.stdout) == 10  # the server still sends after our FIN
    rawtcp("close", "h1", env=env, check=True)
    assert_nothing_left(cfg, env)


def test_abort_sends_rst_and_the_kernel_drops_its_socket(echo_lab, env):
    cfg, _ = echo_lab
    opened = rawtcp("connect", cfg.server_ip, "8080", "--name", "a1", "--netns", cfg.client_ns, "--json",
                    env=env, check=True)
    sport = segments(json_lines(opened.stdout))[0]["src"].rsplit(":", 1)[1]
    aborted = json_lines(rawtcp("close", "a1", "--abort", "--json", env=env, check=True).stdout)
    assert [s["flags"] for s in segments(aborted)] == ["R."] or [s["flags"] for s in segments(aborted)] == ["R"]
    ss = ns_exec(cfg.server_ns, "ss", "-tanH", f"( sport = :8080 and dport = :{sport} )").stdout
    assert ss.strip() == "", ss
    assert_nothing_left(cfg, env)


def test_passive_open_with_a_kernel_client(echo_lab, env):
    cfg, _ = echo_lab
    recs = passive_open_with_a_kernel_client(echo_lab, env, cfg.server_ip, 9000, "s1")
    flags = [(s["dir"], s["flags"]) for s in segments(recs)]
    assert flags[:3] == [("in", "S"), ("out", "S."), ("in", ".")]
    rawtcp("close", "s1", env=env, check=True)
    assert_nothing_left(cfg, env)


def test_refused_and_silent_peers(echo_lab, env):
    cfg, _ = echo_lab
    refused = rawtcp("connect", cfg.server_ip, "9", "--netns", cfg.client_ns, env=env)
    assert refused.returncode == 4
    assert refused.stderr.strip() == f"rawtcp: error: connection refused: RST from {cfg.server_ip}:9"
    # A port the server's firewall silently drops: our SYN is retransmitted, then we give up.
    ns_exec(cfg.server_ns, "nft", "add table inet rtt_drop { chain in { type filter hook input priority 0; "
            "tcp dport 7777 drop; }; }")
    silent = rawtcp("connect", cfg.server_ip, "7777", "--netns", cfg.client_ns, "--retries", "1", "--json",
                    env=env)
    assert silent.returncode == 5
    assert "no SYN-ACK" in silent.stderr and "after 2 tries" in silent.stderr
    syns = [s for s in segments(json_lines(silent.stdout)) if s["flags"] == "S"]
    assert len(syns) == 2  # the first SYN and one retransmission
    assert_nothing_left(cfg, env)


@pytest.mark.unprivileged
def test_unknown_session_lists_the_live_ones(env):
    proc = rawtcp("send", "nope", "x", env=env)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "rawtcp: error: no session named 'nope' (live sessions: none)"


def test_sequence_numbers_wrap_around_against_the_kernel(echo_lab, env):
    cfg, info = echo_lab
    isn = 2**32 - 5  # our data crosses 2**32 after 4 bytes
    rawtcp("connect", cfg.server_ip, "8080", "--name", "w1", "--isn", str(isn), "--netns", cfg.client_ns,
           env=env, check=True)
    sent = json_lines(rawtcp("send", "w1", "0123456789", "--json", env=env, check=True).stdout)
    data = segments(sent)[0]
    assert data["seq"] == 2**32 - 4 and data["rel_seq"] == 1
    got = rawtcp("recv", "w1", "--bytes", "10", "--out", "-", env=env, check=True)
    assert got.stdout == "0123456789"
    st = json_lines(rawtcp("status", "w1", "--json", env=env, check=True).stdout)[0]
    assert st["snd_nxt"] == 6 and st["rel_snd_nxt"] == 11  # wrapped
    rawtcp("close", "w1", env=env, check=True)
    assert wait_until(lambda: listener_log(info), 5)
    assert listener_log(info)[0]["received"] == 10
    assert_nothing_left(cfg, env)


def test_sessions_json_and_idle_close(echo_lab, env):
    cfg, info = echo_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "i1", "--idle", "1", "--msl2", "0.5", "--netns",
           cfg.client_ns, env=env, check=True)
    rows = json_lines(rawtcp("sessions", "--json", env=env, check=True).stdout)
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == "i1" and row["state"] == "ESTABLISHED" and row["pid"] in keeper_pids()
    assert (row["local_addr"], row["remote_addr"], row["remote_port"]) == (cfg.client_ip, cfg.server_ip, 8080)
    # Idle for a second: the keeper closes the connection politely (FIN, TIME-WAIT) and exits.
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 15)
    assert wait_until(lambda: listener_log(info), 5)  # the kernel saw the connection end (EOF)
    assert listener_log(info)[0]["error"] in (None, "")
    assert_nothing_left(cfg, env)


def test_lab_commands_are_idempotent_and_down_aborts_sessions(env):
    names = ["--client-ns", f"rtt-eng-cli-{os.getpid()}-c", "--server-ns", f"rtt-eng-cli-{os.getpid()}-s"]
    try:
        first = rawtcp("lab", "up", *names, env=env, check=True)
        assert "lab up" in first.stdout
        again = rawtcp("lab", "up", *names, env=env, check=True)
        assert "already up" in again.stdout
        rawtcp("connect", "198.18.0.2", "8080", "--name", "d1", "--netns", names[1], env=env, check=True)
        down = rawtcp("lab", "down", *names, env=env, check=True)
        assert "aborted session d1 (RST)" in down.stdout
        assert f"removed namespace {names[1]}" in down.stdout
        assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 10)
        none = rawtcp("lab", "down", *names, env=env, check=True)
        assert "no lab is up" in none.stdout
    finally:
        rawtcp("lab", "down", *names, env=env)


def test_keeper_answers_keepalives_while_no_command_runs(echo_lab, env):
    cfg, _ = echo_lab
    with rawtcp_listen(cfg, env, 9001, "k1") as (listener, _head):
        kernel_client = _keepalive_client(cfg)
        listener.communicate(timeout=20)
        assert listener.returncode == 0
    got = rawtcp("recv", "k1", "--bytes", "5", "--wait", "10", "--out", "-", env=env, check=True)
    assert got.stdout == "alive"  # the kernel kept the connection: every keepalive was answered
    rawtcp("send", "k1", "yes", env=env, check=True)
    answer, _ = kernel_client.communicate(timeout=20)
    assert answer.strip() == "yes"
    history = segments(json_lines(rawtcp("status", "k1", "--history", "--json", env=env, check=True).stdout))
    probes = [s for s in history if s["dir"] == "in" and s["len"] == 0 and s["rel_seq"] == 0
              and s["flags"] == "."]
    assert len(probes) >= 2, history
    for probe in probes:  # each probe got an ACK right after it
        after = history[history.index(probe) + 1]
        assert after["dir"] == "out" and after["flags"] == "." and after["rel_ack"] == 1
    rawtcp("close", "k1", env=env, check=True)
    assert_nothing_left(cfg, env)


def _keepalive_client(cfg) -> subprocess.Popen[str]:
    # A kernel client with 1 s keepalives: idle, it probes with seq = our rcv_nxt - 1 and no data.
    code = (f"import socket,time;s=socket.create_connection(('{cfg.server_ip}',9001));"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_KEEPALIVE,1);"
            "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPIDLE,1);"
            "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPINTVL,1);"
            "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPCNT,2);"
            "time.sleep(3.5);s.sendall(b'alive');print(s.recv(10).decode());s.close()")
    return subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)
