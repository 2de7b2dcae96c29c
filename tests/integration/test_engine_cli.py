"""The engine against a real Linux kernel, driven through the CLI as separate commands.

Needs root, network namespaces and nftables; each test gets a private lab (namespaces named rtt-eng-*)
and a private runtime directory, and checks what the KERNEL saw: the listener's byte counts and its
socket states as recorded by the tracepoint.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from engine_helpers import (
    json_lines,
    keeper_pids,
    nft_tables,
    ns_exec,
    rawtcp,
    segments,
    wait_until,
)

pytestmark = pytest.mark.integration




def _lab(listener: str, tag: str):
    from rawtcp.lab.topology import LabConfig, lab_down, lab_exists, lab_up

    cfg = LabConfig(client_ns=f"rtt-eng-{tag}-{os.getpid()}-c", server_ns=f"rtt-eng-{tag}-{os.getpid()}-s",
                    listener=listener)
    if lab_exists(cfg):
        lab_down(cfg)
    info = lab_up(cfg)
    return cfg, info


@pytest.fixture
def seed_lab(require_root):
    from rawtcp.lab.topology import lab_down

    cfg, info = _lab("seed", "seed")
    yield cfg, info
    lab_down(cfg)


@pytest.fixture
def echo_lab(require_root):
    from rawtcp.lab.topology import lab_down

    cfg, info = _lab("echo", "echo")
    yield cfg, info
    lab_down(cfg)


def _listener_log(info):
    from rawtcp.lab.topology import read_listener_log

    return read_listener_log(info.listener_log)


def _assert_nothing_left(cfg, env):
    run_dir = env["RAWTCP_RUNTIME_DIR"]
    assert wait_until(lambda: not keeper_pids(run_dir), 10), f"keeper processes left: {keeper_pids(run_dir)}"
    assert "rawtcp" not in nft_tables(cfg.client_ns)
    assert not [p for p in os.listdir(env["RAWTCP_RUNTIME_DIR"] + "/sessions")], "session files left"


def test_seed_exchange_as_separate_commands(seed_lab, env):
    cfg, info = seed_lab
    ns = ["--netns", cfg.client_ns]
    # --bare: SEED.md's SYN, <mss> only (the default offers what Linux offers)
    opened = rawtcp("connect", cfg.server_ip, "8080", "--name", "c1", "--isn", "1000", "--bare", *ns, "--json",
                    env=env, check=True)
    handshake = segments(json_lines(opened.stdout))
    assert [(s["dir"], s["flags"]) for s in handshake] == [("out", "S"), ("in", "S."), ("out", ".")]
    syn, synack, ack = handshake
    assert syn["seq"] == 1000 and syn["options"] == "mss 1460"
    assert synack["ack"] == 1001 and "mss 1024" in synack["options"]  # the seed server's TCP_MAXSEG
    assert (ack["seq"], ack["ack"]) == (1001, synack["seq"] + 1)

    sent = rawtcp("send", "c1", "hello, kernel! (20B)", "--json", env=env, check=True)
    data_segs = segments(json_lines(sent.stdout))
    assert data_segs[0]["flags"] == "P." and data_segs[0]["len"] == 20 and data_segs[0]["rel_seq"] == 1

    got = rawtcp("recv", "c1", "--bytes", "10", "--out", "-", env=env, check=True)
    assert len(got.stdout) == 10

    st = json_lines(rawtcp("status", "c1", "--json", env=env, check=True).stdout)[0]
    assert st["state"] == "ESTABLISHED" and st["kernel_state"] == "ESTABLISHED"
    assert st["rel_snd_nxt"] == 21 and st["rel_rcv_nxt"] == 11 and st["peer_mss"] == 1024

    closed = rawtcp("close", "c1", "--json", env=env, check=True)
    recs = json_lines(closed.stdout)
    ours = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "rawtcp"]
    kernel = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "kernel"]
    assert ours[:3] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert "CLOSE-WAIT" in kernel and "LAST-ACK" in kernel
    flags = [(s["dir"], s["flags"]) for s in segments(recs)]
    assert flags == [("out", "F."), ("in", "."), ("in", "F."), ("out", ".")]

    # What the kernel listener itself saw: exactly our 20 bytes, and it sent its 10.
    assert wait_until(lambda: _listener_log(info), 5)
    log = _listener_log(info)
    assert log[0]["received"] == 20 and log[0]["sent"] == 10
    _assert_nothing_left(cfg, env)


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
    assert wait_until(lambda: _listener_log(info), 5)
    assert _listener_log(info)[0]["received"] == len(payload)
    _assert_nothing_left(cfg, env)


def test_half_close_then_recv(seed_lab, env):
    cfg, _info = seed_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "h1", "--netns", cfg.client_ns, env=env, check=True)
    rawtcp("send", "h1", "x" * 20, env=env, check=True)
    shut = json_lines(rawtcp("shutdown", "h1", "--json", env=env, check=True).stdout)
    assert any(r.get("new") == "FIN-WAIT-2" for r in shut if r.get("type") == "state")
    got = rawtcp("recv", "h1", "--bytes", "10", "--out", "-", env=env, check=True)
    assert len(got.stdout) == 10  # the server still sends after our FIN
    rawtcp("close", "h1", env=env, check=True)
    _assert_nothing_left(cfg, env)


def test_abort_sends_rst_and_the_kernel_drops_its_socket(echo_lab, env):
    cfg, _ = echo_lab
    opened = rawtcp("connect", cfg.server_ip, "8080", "--name", "a1", "--netns", cfg.client_ns, "--json",
                    env=env, check=True)
    sport = segments(json_lines(opened.stdout))[0]["src"].rsplit(":", 1)[1]
    aborted = json_lines(rawtcp("close", "a1", "--abort", "--json", env=env, check=True).stdout)
    assert [s["flags"] for s in segments(aborted)] == ["R."] or [s["flags"] for s in segments(aborted)] == ["R"]
    ss = ns_exec(cfg.server_ns, "ss", "-tanH", f"( sport = :8080 and dport = :{sport} )").stdout
    assert ss.strip() == "", ss
    _assert_nothing_left(cfg, env)


def test_passive_open_with_a_kernel_client(echo_lab, env):
    cfg, _ = echo_lab
    listener = subprocess.Popen([sys.executable, "-m", "rawtcp", "listen", "9000", "--name", "s1", "--netns",
                                 cfg.server_ns, "--json"], stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in listener.stdout:  # wait until rawtcp listens (its socket, filter and RST entry exist)
        lines.append(line)
        if '"new": "LISTEN"' in line:
            break
    # The kernel client connects, sends, waits for our answer, then closes.
    code = (f"import socket,sys;s=socket.create_connection(('{cfg.server_ip}',9000),timeout=10);s.sendall(b'ping');"
            "print(s.recv(100).decode());s.close()")
    kernel_client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", code],
                                     stdout=subprocess.PIPE, text=True)
    out, _ = listener.communicate(timeout=30)
    out = "".join(lines) + out
    assert listener.returncode == 0, out
    flags = [(s["dir"], s["flags"]) for s in segments(json_lines(out))]
    assert flags[:3] == [("in", "S"), ("out", "S."), ("in", ".")]
    got = rawtcp("recv", "s1", "--bytes", "4", "--out", "-", env=env, check=True)
    assert got.stdout == "ping"
    rawtcp("send", "s1", "pong", env=env, check=True)
    answer, _ = kernel_client.communicate(timeout=20)
    assert answer.strip() == "pong"
    rawtcp("close", "s1", env=env, check=True)
    _assert_nothing_left(cfg, env)


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
    _assert_nothing_left(cfg, env)


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
    assert wait_until(lambda: _listener_log(info), 5)
    assert _listener_log(info)[0]["received"] == 10
    _assert_nothing_left(cfg, env)


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
    assert wait_until(lambda: _listener_log(info), 5)  # the kernel saw the connection end (EOF)
    assert _listener_log(info)[0]["error"] in (None, "")
    _assert_nothing_left(cfg, env)


def test_lab_commands_are_idempotent_and_down_aborts_sessions(require_root, env):
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
    listener = subprocess.Popen([sys.executable, "-m", "rawtcp", "listen", "9001", "--name", "k1", "--netns",
                                 cfg.server_ns, "--json"], stdout=subprocess.PIPE, text=True, env=env)
    for line in listener.stdout:
        if '"new": "LISTEN"' in line:
            break
    # A kernel client with 1 s keepalives: idle, it probes with seq = our rcv_nxt - 1 and no data.
    code = (f"import socket,time;s=socket.create_connection(('{cfg.server_ip}',9001));"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_KEEPALIVE,1);"
            "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPIDLE,1);"
            "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPINTVL,1);"
            "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_KEEPCNT,2);"
            "time.sleep(3.5);s.sendall(b'alive');print(s.recv(10).decode());s.close()")
    kernel_client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", code],
                                     stdout=subprocess.PIPE, text=True)
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
    _assert_nothing_left(cfg, env)
