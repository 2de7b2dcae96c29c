"""`rawtcp connect`/`listen` behave like Linux by default; `--bare` gives SEED.md's `<mss>` SYN.

Needs root; each test has a private lab and runtime directory and checks what the KERNEL made of our
SYN (`ss -tie` in its namespace: ts, sack, wscale), not only what we sent.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from engine_helpers import json_lines, keeper_pids, ns_exec, rawtcp, rawtcp_listen, segments, wait_until

pytestmark = pytest.mark.integration

LINUX_SYN = ["mss", "sackOK", "TS", "nop", "wscale"]  # the kernel's own SYN, in its order


def _option_names(text: str) -> list[str]:
    return [part.split()[0] for part in text.split(",") if part]


def _kernel_tcp_info(netns: str, local_port: int, peer_port: int) -> set[str]:
    """The words of `ss -tie` for the kernel's established socket: "ts", "sack", "wscale:S,R", ..."""
    out = ns_exec(netns, "ss", "-tineH", "state", "established",
                  f"( sport = :{local_port} and dport = :{peer_port} )").stdout
    assert out.strip(), f"no established kernel socket :{local_port} ↔ :{peer_port}"
    return set(out.split())


def _sport(records: list[dict]) -> int:
    return int(segments(records)[0]["src"].rsplit(":", 1)[1])


def _done(env: dict[str, str], name: str) -> None:
    rawtcp("close", name, "--abort", env=env)
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 10)


def test_default_connect_offers_what_linux_offers_and_the_kernel_uses_it(echo_lab, env):
    cfg, _ = echo_lab
    opened = json_lines(rawtcp("connect", cfg.server_ip, "8080", "--name", "lx", "--netns", cfg.client_ns,
                               "--json", env=env, check=True).stdout)
    syn = segments(opened)[0]
    assert syn["flags"] == "S" and _option_names(syn["options"]) == LINUX_SYN
    assert syn["options"].endswith("wscale 7")
    kernel = _kernel_tcp_info(cfg.server_ns, 8080, _sport(opened))
    assert {"ts", "sack"} <= kernel, kernel
    assert any(word.startswith("wscale:7,") for word in kernel), kernel  # the kernel scales what it sends by ours
    st = json_lines(rawtcp("status", "lx", "--json", env=env, check=True).stdout)[0]
    assert (st["profile"], st["sack"], st["timestamps"], st["rcv_wscale"]) == ("linux", True, True, 7)
    _done(env, "lx")


def test_bare_connect_is_the_seed_syn(echo_lab, env):
    cfg, _ = echo_lab
    opened = json_lines(rawtcp("connect", cfg.server_ip, "8080", "--name", "bare", "--bare", "--netns",
                               cfg.client_ns, "--json", env=env, check=True).stdout)
    syn = segments(opened)[0]
    assert syn["options"] == "mss 1460"
    kernel = _kernel_tcp_info(cfg.server_ns, 8080, _sport(opened))
    assert not {"ts", "sack"} & kernel and not any(w.startswith("wscale:") for w in kernel), kernel
    # one feature back on top of --bare
    _done(env, "bare")
    opened = json_lines(rawtcp("connect", cfg.server_ip, "8080", "--name", "bts", "--bare", "--timestamps",
                               "--netns", cfg.client_ns, "--json", env=env, check=True).stdout)
    assert _option_names(segments(opened)[0]["options"]) == ["mss", "nop", "nop", "TS"]
    kernel = _kernel_tcp_info(cfg.server_ns, 8080, _sport(opened))
    assert "ts" in kernel and "sack" not in kernel, kernel
    _done(env, "bts")


def test_default_listen_answers_a_kernel_client_with_linux_options(echo_lab, env):
    cfg, _ = echo_lab
    code = (f"import socket,sys;s=socket.create_connection(('{cfg.server_ip}',9002),timeout=10);"
            "print(s.getsockname()[1],flush=True);sys.stdin.readline();s.close()")
    with rawtcp_listen(cfg, env, 9002, "ls") as (listener, _head):
        client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", code],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert client.stdout is not None
            kport = int(client.stdout.readline())
            out, _ = listener.communicate(timeout=30)
            synack = next(s for s in segments(json_lines(out)) if s["flags"] == "S.")
            assert _option_names(synack["options"]) == LINUX_SYN and synack["options"].endswith("wscale 7")
            kernel = _kernel_tcp_info(cfg.client_ns, kport, 9002)
            assert {"ts", "sack"} <= kernel and any(w.startswith("wscale:7,") for w in kernel), kernel
        finally:
            client.communicate("\n", timeout=10)
    _done(env, "ls")


def test_sack_and_timestamps_work_through_loss_with_the_keeper(echo_lab, env, tmp_path):
    """The keeper carries the negotiated options: through 10 % loss the echo comes back intact, our ACKs
    carry SACK blocks for what arrived beyond a hole, and every segment carries a timestamp."""
    from rawtcp.lab.topology import impair

    cfg, _ = echo_lab
    impair(cfg, loss=10, delay_ms=10)
    payload = os.urandom(128 * 1024)
    (tmp_path / "in.bin").write_bytes(payload)
    rawtcp("connect", cfg.server_ip, "8080", "--name", "sk", "--netns", cfg.client_ns, "--retries", "15",
           env=env, check=True)
    rawtcp("send", "sk", "--file", str(tmp_path / "in.bin"), "--wait", "60", env=env, check=True, timeout=120)
    rawtcp("recv", "sk", "--bytes", str(len(payload)), "--wait", "60", "--out", str(tmp_path / "out.bin"),
           env=env, check=True, timeout=120)
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).digest() == hashlib.sha256(payload).digest()
    history = segments(json_lines(rawtcp("status", "sk", "--history", "--json", env=env, check=True).stdout))
    ours = [s for s in history if s["dir"] == "out" and s["flags"] != "S"]
    assert any("sack " in s["options"] for s in ours), "no SACK block in any of our ACKs"
    assert all("TS val" in s["options"] for s in ours if "R" not in s["flags"])
    _done(env, "sk")


def test_keepalive_probes_from_the_keeper_are_answered_by_the_kernel(echo_lab, env):
    cfg, _ = echo_lab
    rawtcp("connect", cfg.server_ip, "8080", "--name", "ka", "--keepalive", "0.5", "--netns", cfg.client_ns,
           env=env, check=True)

    def probes() -> list[dict]:
        history = segments(json_lines(rawtcp("status", "ka", "--history", "--json", env=env, check=True).stdout))
        # RFC 9293 §3.8.4: SEG.SEQ = SND.NXT - 1, no data; the kernel answers with an ACK
        return [s for s in history if s["dir"] == "out" and s["rel_seq"] == 0 and s["flags"] == "."]

    assert wait_until(lambda: len(probes()) >= 2, 10)
    st = json_lines(rawtcp("status", "ka", "--json", env=env, check=True).stdout)[0]
    assert st["state"] == "ESTABLISHED" and st["kernel_state"] == "ESTABLISHED"
    _done(env, "ka")
