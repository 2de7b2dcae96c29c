"""The engine over IPv6 against a real Linux kernel, driven through the CLI as separate commands.

Needs root, network namespaces and nftables; each test gets a private dual-stack lab (namespaces
rtt-eng6-*) and a private runtime directory, and checks what the KERNEL saw over IPv6: the listener's
byte counts and peers, and its socket states as the tracepoint recorded them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from engine_helpers import json_lines, keeper_pids, nft_tables, rawtcp, segments, wait_until

pytestmark = pytest.mark.integration


def _lab(listener: str, tag: str):
    from rawtcp.lab.topology import LabConfig, lab_down, lab_exists, lab_up

    cfg = LabConfig(client_ns=f"rtt-eng6-{tag}-{os.getpid()}-c", server_ns=f"rtt-eng6-{tag}-{os.getpid()}-s",
                    listener=listener)
    if lab_exists(cfg):
        lab_down(cfg)
    return cfg, lab_up(cfg)


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


def _kernel_states(recs):
    return [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "kernel"]


def _assert_nothing_left(cfg, env):
    run_dir = env["RAWTCP_RUNTIME_DIR"]
    assert wait_until(lambda: not keeper_pids(run_dir), 10), f"keeper processes left: {keeper_pids(run_dir)}"
    assert "rawtcp" not in nft_tables(cfg.client_ns)
    assert "rawtcp" not in nft_tables(cfg.server_ns)
    assert not os.listdir(run_dir + "/sessions"), "session files left"


def test_seed_exchange_over_ipv6_as_separate_commands(seed_lab, env):
    cfg, info = seed_lab
    assert info.server_ip6 == "2001:db8::2"
    opened = rawtcp("connect", info.server_ip6, "8080", "--name", "c6", "--isn", "1000", "--netns", cfg.client_ns,
                    "--json", env=env, check=True)
    recs = json_lines(opened.stdout)
    handshake = segments(recs)
    assert [(s["dir"], s["flags"]) for s in handshake] == [("out", "S"), ("in", "S."), ("out", ".")]
    syn, synack, ack = handshake
    # MSS from the path: a 1500-byte veth less 40 bytes of IPv6 header and 20 of TCP (RFC 8200 §3).
    assert syn["seq"] == 1000 and "mss 1440" in syn["options"]
    assert syn["src"].startswith("[2001:db8::1]:") and syn["dst"] == "[2001:db8::2]:8080"
    assert synack["ack"] == 1001 and "mss 1024" in synack["options"]  # the seed server's TCP_MAXSEG
    assert (ack["seq"], ack["ack"]) == (1001, synack["seq"] + 1)
    # The kernel's side of the open, read from the tracepoint's IPv6 fields.
    assert _kernel_states(recs) == ["SYN-RECEIVED", "ESTABLISHED"]

    sent = rawtcp("send", "c6", "hello, kernel! (20B)", "--json", env=env, check=True)
    data_segs = segments(json_lines(sent.stdout))
    assert data_segs[0]["flags"] == "P." and data_segs[0]["len"] == 20 and data_segs[0]["rel_seq"] == 1

    got = rawtcp("recv", "c6", "--bytes", "10", "--out", "-", env=env, check=True)
    assert got.stdout == "0123456789"

    st = json_lines(rawtcp("status", "c6", "--json", env=env, check=True).stdout)[0]
    assert st["state"] == "ESTABLISHED" and st["kernel_state"] == "ESTABLISHED"
    assert st["kernel_state_source"] == "tracefs"
    assert st["remote"] == "[2001:db8::2]:8080" and st["local"].startswith("[2001:db8::1]:")
    assert st["rel_snd_nxt"] == 21 and st["rel_rcv_nxt"] == 11 and st["peer_mss"] == 1024

    listed = json_lines(rawtcp("sessions", "--json", env=env, check=True).stdout)
    assert [(s["name"], s["remote_addr"], s["remote_port"], s["local_addr"]) for s in listed] == [
        ("c6", "2001:db8::2", 8080, "2001:db8::1")]

    closed = rawtcp("close", "c6", "--json", env=env, check=True)
    recs = json_lines(closed.stdout)
    ours = [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "rawtcp"]
    assert ours[:3] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    kernel = _kernel_states(recs)
    assert kernel[:2] == ["CLOSE-WAIT", "LAST-ACK"]
    flags = [(s["dir"], s["flags"]) for s in segments(recs)]
    assert flags == [("out", "F."), ("in", "."), ("in", "F."), ("out", ".")]
    # The ladder's state column: the kernel half-closed after our FIN, LAST-ACK as its FIN comes.
    assert [s.get("kernel_state") for s in segments(recs)][:3] == ["CLOSE-WAIT", "CLOSE-WAIT", "LAST-ACK"]

    # What the kernel listener itself saw, over IPv6: our 20 bytes from our address, its 10 back.
    assert wait_until(lambda: _listener_log(info), 5)
    (log,) = _listener_log(info)
    assert log["peer"] == st["local"] and log["local"] == "[2001:db8::2]:8080"
    assert log["received"] == 20 and log["sent"] == 10
    _assert_nothing_left(cfg, env)


def test_echo_over_ipv6_and_ipv4_side_by_side(echo_lab, env, tmp_path):
    """The dual-stack lab's echo listener answers both families at once; each session sees its own."""
    cfg, info = echo_lab
    rawtcp("connect", info.server_ip6, "8080", "--name", "v6", "--netns", cfg.client_ns, env=env, check=True)
    rawtcp("connect", cfg.server_ip, "8080", "--name", "v4", "--netns", cfg.client_ns, env=env, check=True)
    payload = bytes(range(256)) * 20  # 5120 bytes: several 1440-byte segments over IPv6
    (tmp_path / "payload.bin").write_bytes(payload)
    sent = rawtcp("send", "v6", "--file", str(tmp_path / "payload.bin"), "--json", env=env, check=True)
    # MSS 1440 over IPv6, less the 12 bytes of TSopt every segment carries (RFC 6691, RFC 7323)
    assert max(s["len"] for s in segments(json_lines(sent.stdout)) if s["dir"] == "out") == 1440 - 12
    rawtcp("send", "v4", "four", env=env, check=True)
    echoed = rawtcp("recv", "v6", "--bytes", str(len(payload)), "--out", str(tmp_path / "back.bin"), env=env,
                    check=True)
    assert echoed.returncode == 0 and (tmp_path / "back.bin").read_bytes() == payload
    assert rawtcp("recv", "v4", "--bytes", "4", "--out", "-", env=env, check=True).stdout == "four"
    for name in ("v6", "v4"):
        st = json_lines(rawtcp("status", name, "--json", env=env, check=True).stdout)[0]
        assert st["kernel_state"] == "ESTABLISHED", (name, st)
    rawtcp("close", "v6", env=env, check=True)
    rawtcp("close", "v4", "--abort", env=env, check=True)
    assert wait_until(lambda: len(_listener_log(info)) == 2, 5)
    by_peer = {r["peer"].startswith("["): r for r in _listener_log(info)}
    assert by_peer[True]["received"] == by_peer[True]["sent"] == len(payload)
    assert by_peer[False]["received"] == 4
    _assert_nothing_left(cfg, env)


def test_listen_answers_a_kernel_ipv6_client(echo_lab, env):
    cfg, _info = echo_lab
    listener = subprocess.Popen(
        [sys.executable, "-m", "rawtcp", "listen", "9000", "--ipv6", "--name", "s6", "--isn", "5000",
         "--netns", cfg.server_ns, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    client = None
    try:
        # Wait until the keeper listens (its "CLOSED → LISTEN" comes first), then let a kernel client in.
        assert listener.stdout is not None
        for line in listener.stdout:
            if '"LISTEN"' in line:
                break
        client = subprocess.Popen(
            ["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c",
             "import socket\n"
             "c = socket.create_connection(('2001:db8::2', 9000), timeout=20)\n"
             "c.sendall(b'ping over IPv6')\n"
             "print(c.recv(100).decode(), flush=True)\n"
             "c.close()\n"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = listener.communicate(timeout=30)
        assert listener.returncode == 0, err
        recs = json_lines(out)
        handshake = segments(recs)[:3]
        assert [(s["dir"], s["flags"]) for s in handshake] == [("in", "S"), ("out", "S."), ("in", ".")]
        syn, synack, _ = handshake
        assert syn["src"].startswith("[2001:db8::1]:") and syn["dst"] == "[2001:db8::2]:9000"
        assert "mss 1440" in syn["options"]  # the kernel's own MSS over IPv6
        assert synack["seq"] == 5000 and synack["ack"] == syn["seq"] + 1 and "mss 1440" in synack["options"]
        # The kernel client's own socket, from the tracepoint: SYN-SENT then ESTABLISHED.
        assert _kernel_states(recs)[:2] == ["SYN-SENT", "ESTABLISHED"]

        got = rawtcp("recv", "s6", "--bytes", "14", "--out", "-", env=env, check=True)
        assert got.stdout == "ping over IPv6"
        rawtcp("send", "s6", "pong", env=env, check=True)
        client_out, client_err = client.communicate(timeout=30)
        assert client.returncode == 0 and client_out.strip() == "pong", client_err
    finally:
        for proc in (listener, client):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    closed = rawtcp("close", "s6", "--json", env=env, check=True)
    flags = [(s["dir"], s["flags"]) for s in segments(json_lines(closed.stdout))]
    assert ("out", "F.") in flags
    _assert_nothing_left(cfg, env)


def test_ipv6_bad_input_is_one_line(echo_lab, env):
    cfg, _info = echo_lab
    for args, fragment in (
        (("connect", "fe80::1", "8080", "--netns", cfg.client_ns), "link-local"),
        (("connect", "2001:db8::2:1:2:3:4:5:6", "8080", "--netns", cfg.client_ns), "an IPv6 address"),
        (("listen", "9000", "--addr", "2001:db8::99", "--netns", cfg.server_ns), "not an address of"),
        (("listen", "9000", "--addr", "nonsense", "--netns", cfg.server_ns), "not an IPv4 or IPv6"),
        (("listen", "9000", "--addr", "2001:db8::2", "--ipv6", "--netns", cfg.server_ns), "not both"),
    ):
        proc = rawtcp(*args, env=env)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("rawtcp: error: ") and fragment in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    _assert_nothing_left(cfg, env)
