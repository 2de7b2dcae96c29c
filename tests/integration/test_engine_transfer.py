"""Long transfers through the CLI: `--wait S` is patience without progress, not a total deadline.

Needs root; each test has a private lab (rtt-engine-transfer-*) and runtime directory. A slow path is the lab's
delay (`rawtcp lab impair`), a peer that stops answering is an nftables quota in its namespace.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from engine_helpers import keeper_pids, ns_exec, rawtcp, rawtcp_listen, wait_until

pytestmark = pytest.mark.integration


def _done(env: dict[str, str], name: str) -> None:
    rawtcp("close", name, "--abort", env=env)
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 10)


def test_send_wait_is_patience_without_progress_not_a_deadline(sink_lab, env, tmp_path):
    """Through 100 ms each way a MiB takes several round trips of slow start, longer than --wait 1 in
    all, but every round trip acknowledges more: the send succeeds."""
    from rawtcp.lab.topology import impair

    cfg, _ = sink_lab
    impair(cfg, delay_ms=100)
    (tmp_path / "mib.bin").write_bytes(os.urandom(1 << 20))
    rawtcp("connect", cfg.server_ip, "8080", "--name", "slow", "--netns", cfg.client_ns, env=env, check=True)
    t0 = time.monotonic()
    sent = rawtcp("send", "slow", "--file", str(tmp_path / "mib.bin"), "--wait", "1", env=env, timeout=120)
    took = time.monotonic() - t0
    assert sent.returncode == 0, sent.stderr
    assert took > 1.5, f"the transfer took {took:.2f} s: too quick to show anything about --wait 1"
    assert "sent 1048576 bytes, all acknowledged" in sent.stdout
    _done(env, "slow")


STALL = """
table inet rtt_stall {
  chain in {
    type filter hook input priority -10;
    tcp dport 8080 quota over 60000 bytes drop
  }
}
"""


def test_send_gives_up_after_wait_seconds_without_an_ack_and_says_how_far_it_got(sink_lab, env, tmp_path):
    cfg, _ = sink_lab
    (tmp_path / "quarter.bin").write_bytes(os.urandom(256 * 1024))
    rawtcp("connect", cfg.server_ip, "8080", "--name", "stall", "--netns", cfg.client_ns, env=env, check=True)
    # From now on the server takes about 60 kB, then nothing: no more ACKs, however long we wait.
    loaded = subprocess.run(["ip", "netns", "exec", cfg.server_ns, "nft", "-f", "-"], input=STALL,
                            capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    t0 = time.monotonic()
    sent = rawtcp("send", "stall", "--file", str(tmp_path / "quarter.bin"), "--wait", "2", env=env, timeout=60)
    took = time.monotonic() - t0
    assert sent.returncode == 1, (sent.stdout[-500:], sent.stderr)
    found = re.fullmatch(r"rawtcp: error: no ACK progress for 2 s: (\d+) of 262144 bytes acknowledged",
                         sent.stderr.strip())
    assert found, sent.stderr
    assert 0 < int(found.group(1)) < 262144
    assert 2.0 <= took < 8.0, took  # two seconds after the last ACK, long before the retries run out
    ns_exec(cfg.server_ns, "nft", "delete", "table", "inet", "rtt_stall")
    _done(env, "stall")


# The kernel client sends five 100-byte pieces half a second apart: 2 s in all, never 1 s quiet.
TRICKLE = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
for _ in range(5):
    time.sleep(0.5)
    s.sendall(b"x" * 100)
time.sleep(5)
s.close()
"""


@contextmanager
def _trickling_client(cfg, env: dict[str, str], port: int, name: str) -> Iterator[None]:
    """``rawtcp listen`` (session ``name``) has accepted a kernel client sending TRICKLE's pieces."""
    with rawtcp_listen(cfg, env, port, name) as (listener, _head):
        client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", TRICKLE,
                                   cfg.server_ip, str(port)])
        try:
            listener.communicate(timeout=30)
            yield
        finally:
            client.kill()
            client.wait()


def test_recv_wait_is_patience_without_new_data(sink_lab, env):
    cfg, _ = sink_lab
    with _trickling_client(cfg, env, 9003, "tr"):
        t0 = time.monotonic()
        got = rawtcp("recv", "tr", "--bytes", "600", "--wait", "1", "--out", "-", env=env, timeout=30)
        took = time.monotonic() - t0
        # All five pieces came (each within a second of the last), then a quiet second: 500 of 600.
        assert got.returncode == 1 and got.stdout == "x" * 500, (got.stdout, got.stderr)
        assert "received 500 of 600 bytes (no new data for 1 s)" in got.stderr
        assert took >= 2.5, took
    _done(env, "tr")


def _on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """Run rawtcp with stderr on a pseudo-terminal (stdout a pipe); returns code, stdout, the terminal's text."""
    import threading

    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rawtcp", *args], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, text=True, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:  # drain as it comes, so a full terminal buffer never blocks rawtcp
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once rawtcp, the terminal's last writer, has gone
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=timeout)
    reader.join(10)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_send_shows_progress_on_a_terminal_and_not_with_json(sink_lab, env, tmp_path):
    from rawtcp.lab.topology import impair

    cfg, _ = sink_lab
    impair(cfg, delay_ms=100)
    (tmp_path / "mib.bin").write_bytes(os.urandom(1 << 20))
    rawtcp("connect", cfg.server_ip, "8080", "--name", "pg", "--netns", cfg.client_ns, env=env, check=True)
    code, out, term = _on_a_terminal(["send", "pg", "--file", str(tmp_path / "mib.bin")], env)
    assert code == 0, term
    assert re.search(r"\r\x1b\[K\d+ of 1048576 bytes acknowledged \(\d+ %\), [\d.]+ [KM]?i?B/s", term), term
    assert "progress" not in out and "sent 1048576 bytes, all acknowledged" in out
    code, out, term = _on_a_terminal(["send", "pg", "--file", str(tmp_path / "mib.bin"), "--json"], env)
    assert code == 0, term
    assert term == "" and '"progress"' not in out  # --json stays machine-readable, stderr quiet
    _done(env, "pg")


def test_recv_shows_progress_on_a_terminal(sink_lab, env):
    cfg, _ = sink_lab
    with _trickling_client(cfg, env, 9004, "rp"):
        code, out, term = _on_a_terminal(["recv", "rp", "--bytes", "500", "--wait", "2"], env)
        assert code == 0 and out.endswith("x" * 500 + "\n"), term
        assert re.search(r"\r\x1b\[K\d+ of 500 bytes received", term), term
    _done(env, "rp")
