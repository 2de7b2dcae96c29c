"""The same exchange twice in one lab: rawtcp's crafted client, then a kernel client.

Both runs are captured at the same vantage point (tcpdump on the server's veth, so neither side is
favoured) and their checksums completed (veth leaves them partial), ready for ``compare_captures``:
what the kernel adds (SACK-permitted, timestamps, window scaling, its window sizes) shows up as the
differences.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

REQUEST = b"hello, kernel! (20B)"

# The kernel client does what the crafted one does: connect, 20 bytes, read the 10, close, read EOF.
KERNEL_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print("connected", flush=True)
sys.stdin.readline()  # go: the seed server has accept()ed (as the crafted client waits for it too)
s.sendall(sys.argv[3].encode())
got = b""
while len(got) < 10:
    chunk = s.recv(10 - len(got))
    if not chunk:
        break
    got += chunk
s.shutdown(socket.SHUT_WR)
while s.recv(100):
    pass
s.close()
"""


@contextlib.contextmanager
def tcpdump(netns: str, ifname: str, port: int, path: str) -> Iterator[None]:
    """tcpdump in ``netns`` writing ``path``; returns only once it is capturing (it says so on stderr)."""
    command = ["ip", "netns", "exec", netns, "tcpdump", "-i", ifname, "-U", "--immediate-mode", "-n", "-s", "0",
               "-w", path, f"tcp port {port}"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 10
        line = b""
        while b"listening on" not in line:
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready or proc.poll() is not None:
                raise RuntimeError("tcpdump did not start (apt-get install tcpdump)")
            line = proc.stderr.readline()
        yield
    finally:
        time.sleep(0.05)  # tcpdump writes with -U, but the last packet may still be in flight on veth
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def complete_checksums(path: str) -> None:
    """Rewrite the capture at ``path`` in place with every checksum filled in, in the format its name asks for."""
    from rawtcp.capture.pcap import PcapWriter, is_pcapng_name, iter_packets

    # The writer picks the format by name: the temporary file's must be the one ``path`` asks for (tcpdump
    # wrote classic pcap whatever the name).
    suffix = ".pcapng" if is_pcapng_name(path) else ".pcap"
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=suffix)
    os.close(fd)
    packets = list(iter_packets(path))
    linktype = packets[0].linktype if packets else 1
    with PcapWriter(tmp, linktype=linktype, fix_checksums=True) as writer:
        for pkt in packets:
            writer.write(pkt.data, pkt.ts)
    os.replace(tmp, path)


def run_both(crafted_pcap: str, kernel_pcap: str, emit: Callable[[dict[str, Any]], None]) -> None:
    """Run the crafted exchange and the kernel exchange in one fresh lab, each captured."""
    from rawtcp.core import State
    from rawtcp.lab import topology
    from rawtcp.session.connection import Connection, ConnectionSpec
    from rawtcp.session.errors import SessionError
    from rawtcp.wire import netns

    cfg = topology.fresh_lab("rawtcp-cmp", listener="seed")
    with topology.temporary_lab(cfg):
        with tcpdump(cfg.server_ns, cfg.server_if, cfg.port, crafted_pcap), netns.inside(cfg.client_ns), \
                Connection(ConnectionSpec(remote_ip=cfg.server_ip, remote_port=cfg.port, msl2=0.5,
                                          rto_min=0.2, profile="bare")) as conn:  # what the kernel adds
            ep, driver = conn.endpoint, conn.driver
            driver.listeners.append(emit)

            def run(done: Callable[[], bool], what: str) -> None:
                if not driver.run_until(lambda: done() or ep.state is State.CLOSED, 20) or not done():
                    raise SessionError(f"compare --kernel: {what} did not happen (state {ep.state})")

            ep.open_active(time.monotonic())
            run(lambda: ep.state is State.ESTABLISHED, "the crafted three-way open")
            topology.wait_accepted(cfg)
            ep.send(REQUEST, time.monotonic())
            run(lambda: ep.readable >= 10 and ep.in_flight == 0, "the server's answer")
            ep.read()
            ep.close(time.monotonic())
            run(lambda: ep.state is State.CLOSED, "the crafted close")
        _kernel_exchange(cfg, kernel_pcap)
    complete_checksums(crafted_pcap)
    complete_checksums(kernel_pcap)


def _kernel_exchange(cfg: Any, pcap: str) -> None:
    with tcpdump(cfg.server_ns, cfg.server_if, cfg.port, pcap):
        from rawtcp.lab import topology

        proc = subprocess.Popen(["ip", "netns", "exec", cfg.client_ns, sys.executable, "-c", KERNEL_CLIENT,
                                 cfg.server_ip, str(cfg.port), REQUEST.decode()], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdin is not None
        if proc.stdout.readline().strip() == "connected":
            topology.wait_accepted(cfg)
        try:
            _, err = proc.communicate("go\n", timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError("the kernel client did not finish its exchange in 30 s") from None
        if proc.returncode != 0:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
            raise RuntimeError(f"the kernel client failed: {last}")
        time.sleep(0.4)  # the seed server closes 300 ms after EOF; let its FIN and the last ACK be captured


def run_kernel_client(pcap: str) -> None:
    """Only the kernel client's exchange with the seed server, in a fresh lab (for `lab run
    --compare-kernel`, whose crafted side is the lab itself)."""
    from rawtcp.lab import topology

    cfg = topology.fresh_lab("rawtcp-cmp", listener="seed")
    with topology.temporary_lab(cfg):
        _kernel_exchange(cfg, pcap)
    complete_checksums(pcap)
