"""Network faults: impairments through the CLI in both directions, integrity of data moved
through loss/reorder/duplication/delay with rawtcp as client and as server, and the handshake and the
close completing when exactly the SYN, the SYN-ACK, both FINs and the final ACK are lost once.

Needs root. Labs are private (namespaces rtt-faults-*, rtt-flt-*), sessions use a private RAWTCP_RUNTIME_DIR.
The full-size integrity run (1 MiB each way, 20 % loss ...) is scripts/integrity.py; CI runs a
shorter one here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import json_lines, keeper_pids, nft_tables, ns_exec, rawtcp, segments, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

CONNECT_TIME = """
import socket, sys, time
t0 = time.monotonic()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
print(time.monotonic() - t0)
s.close()
"""




@pytest.fixture
def cli_lab(env):
    """A lab made and removed with the CLI itself (`rawtcp lab up/down --client-ns ... --server-ns ...`)."""
    names = ["--client-ns", f"rtt-flt-{os.getpid()}-c", "--server-ns", f"rtt-flt-{os.getpid()}-s"]
    rawtcp("lab", "down", *names, env=env)
    yield names
    down = rawtcp("lab", "down", *names, env=env)
    assert down.returncode == 0, down.stderr
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert names[1] not in listed and names[3] not in listed


def _connect_seconds(client_ns: str) -> float:
    out = ns_exec(client_ns, sys.executable, "-c", CONNECT_TIME, "198.18.0.2", "8080")
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_impairments_apply_in_both_directions_and_clear(cli_lab, env):
    client_ns = cli_lab[1]
    up = rawtcp("lab", "up", *cli_lab, "--delay", "150", env=env, check=True)
    assert "lab up" in up.stdout
    status = json.loads(rawtcp("lab", "status", *cli_lab, "--json", env=env, check=True).stdout)
    assert status["impairments"]["delay_ms"] == 150
    # connect() takes one round trip: the SYN (client → server) and the SYN-ACK (server → client)
    # are each delayed, so only a delay in BOTH directions makes it last ≥ 300 ms.
    assert _connect_seconds(client_ns) >= 0.29
    changed = rawtcp("lab", "impair", *cli_lab, "--delay", "40", "--duplicate", "1", env=env, check=True)
    applied = json.loads(changed.stdout)
    assert applied["delay_ms"] == 40 and applied["duplicate"] == 1 and applied["backend"] in ("netem", "relay")
    assert 0.075 <= _connect_seconds(client_ns) < 0.29
    rawtcp("lab", "impair", *cli_lab, "--clear", env=env, check=True)
    assert _connect_seconds(client_ns) < 0.075
    status = json.loads(rawtcp("lab", "status", *cli_lab, "--json", env=env, check=True).stdout)
    assert not status.get("impairments") and not [r for r in status.get("relay") or [] if r.get("alive")]


@pytest.mark.parametrize("timestamps", ["--timestamps", "--no-timestamps"])
def test_integrity_both_roles_through_loss_reorder_duplication_delay(timestamps):
    """The shorter CI version of scripts/integrity.py: 256 KiB each way, 10 % loss, 10 % reorder,
    5 % duplication, 30 ± 10 ms delay, rawtcp as client and as server, with and without RFC 7323
    timestamps."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "integrity.py"), "--size", str(256 * 1024), "--loss", "10",
         "--reorder", "10", "--duplicate", "5", "--delay", "30", "--jitter", "10", "--timeout", "60", "--json",
         timestamps, "--prefix", f"rtt-flt-i{os.getpid()}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the script's finally removes its lab and sessions
        out, err = proc.communicate(timeout=120)
    summary = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0, (summary, err[-2000:])
    assert summary["lab_down"] == 0
    by_role = {run["role"]: run for run in summary["runs"]}
    client, server = by_role["client"], by_role["server"]
    assert client["kernel_received"] == client["echo_received"] == 256 * 1024
    assert client["kernel_sha256_ok"] and client["echo_sha256_ok"]
    assert server["rawtcp_received"] == server["kernel_received"] == 256 * 1024
    assert server["rawtcp_sha256_ok"] and server["kernel_sha256_ok"]
    for run in (client, server):
        assert run["handshake"] and run["close"]
        # 10 % loss over ~200 segments each way: retransmissions happen, and both the output and the
        # capture show them.
        assert run["retransmission_events"] > 0 and run["pcap_repeated_segments"] > 0


# One drop of each control segment, deterministic: `numgen inc` counts the packets that reached it
# in that rule, so `== 0` drops exactly the first match and `== 1` exactly the second.
DROP_ONCE = """
table inet rtt_faults {
  chain in {
    type filter hook input priority -10;
    tcp dport 8080 tcp flags & (fin|syn|rst|ack) == syn numgen inc mod 1000 == 0 counter drop
    tcp dport 8080 tcp flags & fin == fin numgen inc mod 1000 == 0 counter drop
    tcp dport 8080 tcp flags & (fin|syn|rst|psh|ack) == ack numgen inc mod 1000 == 1 counter drop
  }
  chain out {
    type filter hook output priority -10;
    tcp sport 8080 tcp flags & (syn|ack) == syn|ack numgen inc mod 1000 == 0 counter drop
    tcp sport 8080 tcp flags & fin == fin numgen inc mod 1000 == 0 counter drop
  }
}
"""


def _drop_counts(netns: str) -> list[int]:
    text = ns_exec(netns, "nft", "-j", "list", "table", "inet", "rtt_faults").stdout
    counts = []
    for item in json.loads(text)["nftables"]:
        rule = item.get("rule")
        if rule:
            counts += [e["counter"]["packets"] for e in rule["expr"] if "counter" in e]
    return counts


def test_handshake_and_close_survive_lost_syn_synack_fins_and_final_ack(echo_lab, env):
    cfg, _info = echo_lab
    loaded = subprocess.run(["ip", "netns", "exec", cfg.server_ns, "nft", "-f", "-"], input=DROP_ONCE,
                            capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    t0 = time.monotonic()
    opened = rawtcp("connect", cfg.server_ip, "8080", "--name", "lossy", "--netns", cfg.client_ns,
                    "--rto-min", "0.2", "--msl2", "4", "--json", env=env, check=True)
    recs = json_lines(opened.stdout)
    syns = [s for s in segments(recs) if s["dir"] == "out" and s["flags"] == "S"]
    assert len(syns) >= 2 and len({s["seq"] for s in syns}) == 1  # the lost SYN was sent again
    assert any(r.get("event") == "retransmission" for r in recs)
    assert any(r.get("new") == "ESTABLISHED" for r in recs if r.get("type") == "state")
    sport = syns[0]["src"].rsplit(":", 1)[1]

    closed = rawtcp("close", "lossy", "--json", env=env, check=True)
    recs = json_lines(closed.stdout)
    fins = [s for s in segments(recs) if s["dir"] == "out" and "F" in s["flags"]]
    assert len(fins) >= 2 and len({s["seq"] for s in fins}) == 1  # our lost FIN was sent again
    assert "TIME-WAIT" in [r["new"] for r in recs if r.get("type") == "state" and r.get("who") == "rawtcp"]

    # The kernel resends its lost FIN; we (in TIME-WAIT) ACK it again after our final ACK was lost,
    # and only then does the kernel's socket leave LAST-ACK.
    def kernel_socket_gone() -> bool:
        out = ns_exec(cfg.server_ns, "ss", "-tanH", f"( sport = :8080 and dport = :{sport} )").stdout
        return out.strip() == ""

    assert wait_until(kernel_socket_gone, 10)
    assert _drop_counts(cfg.server_ns) == [1, 1, 1, 1, 1]  # SYN, our FIN, final ACK; SYN-ACK, their FIN
    assert time.monotonic() - t0 < 30
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 15)
    assert "rawtcp" not in nft_tables(cfg.client_ns)
