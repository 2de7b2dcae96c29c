"""The lab's kernel listener in its namespace, driven by kernel clients in the client namespace.

The seed listener is checked on the wire (tcpdump in the client namespace, started and awaited
before the first packet): MSS 1024 in the SYN-ACK, the 10-byte answer riding on the ACK of the
20 bytes, and the ACK of the client's FIN sent apart from, and >= 300 ms before, the server's FIN.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rawtcp.lab.listener import SEED_ANSWER
from rawtcp.lab.topology import fresh_lab, listener_log, temporary_lab, wait_accepted

pytestmark = pytest.mark.integration


def in_ns(netns: str, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=30)


def wait_log(cfg, count: int, timeout: float = 5.0) -> list[dict]:
    # The listener appends its line after closing; a file append cannot be waited for otherwise.
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(listener_log(cfg)) < count:
        time.sleep(0.01)
    return listener_log(cfg)


SEND_CLIENT = """
import json, socket, sys
data = bytes(range(256)) * (int(sys.argv[3]) // 256)
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    port = s.getsockname()[1]
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    back = b""
    while chunk := s.recv(65536):
        back += chunk
print(json.dumps({"port": port, "sent": len(data), "back": len(back), "same": back == data}))
"""


@pytest.mark.parametrize("mode", ["echo", "sink"])
def test_echo_and_sink_with_a_kernel_client(mode):
    cfg = fresh_lab("rtt-lab", listener=mode)
    size = 256 * 4000
    with temporary_lab(cfg):
        out = in_ns(cfg.client_ns, SEND_CLIENT, cfg.server_ip, str(cfg.port), str(size))
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        (rec,) = wait_log(cfg, 1)
    digest = hashlib.sha256(bytes(range(256)) * 4000).hexdigest()
    assert rec["peer"] == f"{cfg.client_ip}:{res['port']}" and rec["local"] == f"{cfg.server_ip}:{cfg.port}"
    assert (rec["mode"], rec["received"], rec["sha256"], rec["error"]) == (mode, size, digest, None)
    if mode == "echo":
        assert res["same"] and rec["sent"] == size
    else:
        assert res["back"] == 0 and rec["sent"] == 0


# The seed client, as SEED.md's: 20 bytes, read the 10, half-close, read to EOF.
# It sends when told (a line on stdin): the test first waits until the listener has accept()ed.
SEED_CLIENT = """
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print("connected", flush=True)
sys.stdin.readline()
s.sendall(b"A" * 20)
got = b""
while len(got) < 10:
    got += s.recv(64)
s.shutdown(socket.SHUT_WR)
rest = s.recv(64)
print(json.dumps({"port": s.getsockname()[1], "got": got.decode(), "rest": rest.decode()}))
s.close()
"""


def read_pcap(path: Path) -> list[dict]:
    """IPv4/TCP packets of an Ethernet pcap (stdlib only; a truncated last record is skipped)."""
    data = path.read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < incl or struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        tcp = ip[ihl:total]
        sport, dport, seq, ack, off_flags, _win = struct.unpack_from("!HHIIHH", tcp, 0)
        hlen = (off_flags >> 12) * 4
        flags = off_flags & 0x3F
        mss, i, opts = None, 0, tcp[20:hlen]
        while i < len(opts):
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if kind == 2:
                mss = struct.unpack_from("!H", opts, i + 2)[0]
            i += max(opts[i + 1], 2)
        out.append({"time": sec + usec / 1e6, "src": src, "dst": dst, "sport": sport, "dport": dport,
                    "seq": seq, "ack": ack, "flags": flags, "mss": mss, "payload": bytes(tcp[hlen:])})
    return out


FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


@pytest.fixture
def tcpdump():
    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump (apt-get install tcpdump)")
    procs: list[subprocess.Popen] = []

    def start(netns: str, ifname: str, pcap: Path, bpf: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-i", ifname, "-n", "-U",
                                 "--immediate-mode", "-w", str(pcap), bpf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        # Wait for tcpdump's own "listening on" line: from then on nothing is missed.
        buf, end = b"", time.monotonic() + 15
        while b"listening on" not in buf:
            left = end - time.monotonic()
            assert left > 0 and select.select([proc.stderr], [], [], left)[0], f"tcpdump did not start: {buf!r}"
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"tcpdump exited: {buf!r}"
            buf += chunk
        return proc

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stderr.close()


def test_seed_listener_makes_seed_md_segments(tcpdump, tmp_path):
    cfg = fresh_lab("rtt-lab", listener="seed")
    pcap = tmp_path / "seed.pcap"
    with temporary_lab(cfg):
        tcpdump(cfg.client_ns, cfg.client_if, pcap, f"tcp port {cfg.port}")
        client = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", SEED_CLIENT,
                                   cfg.server_ip, str(cfg.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "connected"
        # The answer rides on the ACK only if the listener set TCP_QUICKACK=0 before the data came.
        assert wait_accepted(cfg)
        stdout, stderr = client.communicate("go\n", timeout=30)
        assert client.returncode == 0, stderr
        res = json.loads(stdout)
        server = (cfg.server_ip, cfg.port)

        def from_server(pkts):
            return [p for p in pkts if (p["src"], p["sport"]) == server and p["dport"] == res["port"]]

        # Until the server's FIN is in the file (bounded; tcpdump writes each packet as it sees it).
        end = time.monotonic() + 5
        while time.monotonic() < end and not any(p["flags"] & FIN for p in from_server(read_pcap(pcap))):
            time.sleep(0.01)
        (rec,) = wait_log(cfg, 1)
    assert res["got"] == SEED_ANSWER.decode() and res["rest"] == ""
    assert (rec["received"], rec["sent"]) == (20, 10)

    pkts = [p for p in read_pcap(pcap) if res["port"] in (p["sport"], p["dport"])]
    srv = from_server(pkts)
    cli = [p for p in pkts if p not in srv]
    syn = next(p for p in cli if p["flags"] & SYN)
    synack = next(p for p in srv if p["flags"] & SYN)
    assert synack["flags"] & ACK and synack["mss"] == 1024  # SEED seg 2: <mss 1024>
    cisn, sisn = syn["seq"], synack["seq"]

    data20 = next(p for p in cli if len(p["payload"]) == 20)
    assert data20["seq"] == cisn + 1
    # SEED seg 5: the 10 bytes carry the ACK of the 20 (ack = isn + 21); no pure ACK came before them.
    answer = next(p for p in srv if p["payload"])
    assert answer["payload"] == SEED_ANSWER and answer["ack"] == cisn + 21 and answer["seq"] == sisn + 1
    between = [p for p in srv if data20["time"] <= p["time"] < answer["time"]]
    assert between == [], f"the server ACKed the 20 bytes on its own: {between}"

    # SEED segs 7-9: the client's FIN, the server's ACK of it alone, then (>= 300 ms later) its FIN.
    cfin = next(p for p in cli if p["flags"] & FIN)
    after = [p for p in srv if p["time"] >= cfin["time"]]
    assert len(after) >= 2, after
    fin_ack, sfin = after[0], after[1]
    assert not fin_ack["flags"] & FIN and fin_ack["ack"] == cisn + 22 and not fin_ack["payload"]
    assert sfin["flags"] & FIN and sfin["seq"] == sisn + 11 and sfin["ack"] == cisn + 22
    assert sfin["time"] - cfin["time"] >= 0.29
