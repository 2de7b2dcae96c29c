"""rawtcp.api against a real Linux kernel: the documented example, passive opens, half-close, abort,
refusal, captures. Each test checks what the KERNEL saw (its listener's log, its socket states from
the tracepoint, ss) and that nothing is left behind: namespaces, firewall entries, keepers, session files.
Needs root; private labs are named rtt-api-*.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import keeper_pids, namespaces, ns_exec, rst_entries, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab(runtime):
    from rawtcp import api

    tag = f"{os.getpid()}-{len(os.listdir(os.path.dirname(runtime)))}"
    the_lab = api.Lab.up(client_ns=f"rtt-api-{tag}-c", server_ns=f"rtt-api-{tag}-s")
    yield the_lab
    the_lab.down()
    assert_nothing_left(the_lab, runtime)


def assert_nothing_left(lab, run_dir: str) -> None:
    assert wait_until(lambda: not keeper_pids(run_dir), 10), f"keepers left: {keeper_pids(run_dir)}"
    assert lab.client_ns not in namespaces() and lab.server_ns not in namespaces()
    left = os.listdir(os.path.join(run_dir, "sessions"))
    assert not left, f"session files left: {left}"
    assert "rtt-api" not in rst_entries(None)


def _kernel_states(conn) -> list[str]:
    return [r["new"] for r in conn.history() if r.get("type") == "state" and r.get("who") == "kernel"]


def test_the_documented_example(lab):
    from rawtcp import api

    c = lab.connect(lab.server_ip, lab.port)
    assert c.state == "ESTABLISHED"
    assert c.send(b"hello") == 5
    assert c.recv() == b"hello"
    assert c.kernel_state() == "ESTABLISHED"
    st = c.status()
    assert st["rel_snd_una"] == 6 and st["rel_rcv_nxt"] == 6 and st["peer_mss"] == 1460
    assert c.close() == "TIME-WAIT"
    # the kernel's listener received our 5 bytes and echoed them (it logs a connection once it ends)
    assert wait_until(lambda: lab.listener_log(), 5)
    log = lab.listener_log()[0]
    assert (log["received"], log["sent"]) == (5, 5) and log["peer"] == st["local"]
    assert wait_until(lambda: c.kernel_state() == "CLOSED" or not c.alive, 5)
    assert wait_until(lambda: not c.alive, 10)  # TIME-WAIT (2 s in a lab) ends, the keeper leaves
    assert "198.18.0.1" not in ns_exec(lab.server_ns, "ss", "-tanH").stdout.replace("TIME-WAIT", "")
    assert [s.name for s in api.sessions()] == []


def test_the_documented_example_verbatim(runtime):
    """docs/api.md's first block, pasted into `python` as a student would (the default lab's names,
    so it runs only when no default lab is up)."""
    from rawtcp.lab.topology import LabConfig, lab_exists

    if lab_exists(LabConfig()) or {"rawtcp-client", "rawtcp-server"} & set(namespaces()):
        pytest.skip("a default lab (rawtcp-client/rawtcp-server) is up: the example would collide with it")
    doc = (ROOT / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, RAWTCP_RUNTIME_DIR=runtime))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["b'hello'", "ESTABLISHED"]
    assert "rawtcp-client" not in namespaces() and "rawtcp-server" not in namespaces()
    assert wait_until(lambda: not keeper_pids(runtime), 10)


def test_passive_open_with_a_kernel_client(lab):
    client: list[subprocess.Popen[str]] = []
    code = (f"import socket;s=socket.create_connection(('{lab.server_ip}',9000),timeout=10);s.sendall(b'ping');"
            "print(s.recv(100).decode());s.close()")

    def on_record(rec):
        # rawtcp listens (socket, filter, RST entry exist): now the kernel client may connect
        if rec.get("type") == "state" and rec.get("new") == "LISTEN" and not client:
            client.append(subprocess.Popen(["ip", "netns", "exec", lab.client_ns, sys.executable, "-c", code],
                                           stdout=subprocess.PIPE, text=True))

    c = lab.listen(9000, on_record=on_record)
    assert client and c.state == "ESTABLISHED"
    assert c.recv(4, wait=10) == b"ping"
    assert c.send("pong") == 4
    answer, _ = client[0].communicate(timeout=20)
    assert answer.strip() == "pong"
    assert c.recv(wait=5) == b""  # the kernel client closed: EOF
    assert c.status()["peer_closed"]
    assert c.close() in ("CLOSED", "LAST-ACK", "TIME-WAIT")


def test_half_close_then_abort(lab):
    c = lab.connect(msl2=10)  # TIME-WAIT outlasts the wait below: the keeper still answers history()
    # our FIN reached the kernel: its echo listener reads EOF and closes in turn, so by the time our
    # FIN is ACKed the kernel's FIN may have come too
    assert c.shutdown() in ("FIN-WAIT-2", "TIME-WAIT")
    assert wait_until(lambda: "CLOSE-WAIT" in _kernel_states(c), 5), _kernel_states(c)
    c2 = lab.connect()
    assert c2.send(b"x" * 3000) == 3000  # more than one MSS
    assert c2.recv(3000, wait=10) == b"x" * 3000
    c2.abort()
    assert wait_until(lambda: not c2.alive, 10)
    ss = ns_exec(lab.server_ns, "ss", "-tanH", "sport = :8080").stdout
    assert "ESTAB" not in ss, ss  # the RST removed the kernel's socket


def test_refused_raises_with_the_cli_exit_code(lab, runtime):
    from rawtcp import api

    with pytest.raises(api.PeerRefused) as info:
        lab.connect(lab.server_ip, 9)
    assert info.value.exit_code == 4 and "connection refused" in str(info.value)
    with pytest.raises(api.UnknownSession) as unknown:
        api.Connection.attach("nope")
    assert unknown.value.exit_code == 3
    assert wait_until(lambda: not keeper_pids(runtime), 10)


def test_capture_of_a_connection_is_read_like_tshark(lab, tmp_path):
    from rawtcp import api

    pcap = tmp_path / "c.pcap"
    with lab.connect(pcap=str(pcap), msl2=0.2) as c:
        c.send(b"0123456789")
        assert c.recv(10, wait=5) == b"0123456789"
    assert wait_until(lambda: not c.alive, 10)  # the keeper closes the pcap on its way out
    streams = api.read_capture(pcap)
    assert len(streams) == 1
    flags = [api.flag_text(seg.tcp.flags) for seg in streams[0].segments]
    assert flags[:3] == ["S", "S.", "."] and "F." in flags
    assert sum(seg.tcp.payload_len for seg in streams[0].segments if seg.from_client) == 10
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-e", "tcp.seq"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert [str(seg.rel_seq) for _st, seg in api.segments(pcap)] == out
    assert api.compare(pcap, pcap).same
