"""SEED.md's exchange, segments 1–10, driven by rawtcp against a real kernel in a lab of its own.

The client is ours (ISN 1000, hand-built segments); the server is Linux with the `seed` listener, which
announces MSS 1024, answers the 20 bytes with 10 riding on its ACK, and waits before closing so its ACK
of our FIN and its own FIN are separate segments. The kernel's socket states are recorded as they
change (tracefs) and shown beside each segment.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.core import State
from rawtcp.core.segment import segment_line

Record = dict[str, Any]
ACCEPT_PAUSE = 0.1  # across containers: time for the seed server's accept() and its TCP_QUICKACK 0
REQUEST = b"hello, kernel! (20B)"  # segment 4: exactly 20 bytes, seq 1001-1020
assert len(REQUEST) == 20

# SEED.md's table: (from, flags, rel seq, rel ack, data length); "P." may be "." when no PSH is set.
SEED_SHAPE = [
    ("client", "S", 0, None, 0),
    ("server", "S.", 0, 1, 0),
    ("client", ".", 1, 1, 0),
    ("client", "P.", 1, 1, 20),
    ("server", "P.", 1, 21, 10),
    ("client", ".", 21, 11, 0),
    ("client", "F.", 21, 11, 0),
    ("server", ".", 11, 22, 0),
    ("server", "F.", 11, 22, 0),
    ("client", ".", 22, 12, 0),
]


@dataclass
class DemoResult:
    records: list[Record] = field(default_factory=list)
    segments: list[Record] = field(default_factory=list)
    kernel_states: list[str] = field(default_factory=list)
    client_states: list[str] = field(default_factory=list)
    listener_log: list[dict[str, Any]] = field(default_factory=list)
    received: bytes = b""
    mismatches: list[str] = field(default_factory=list)
    pcap: str | None = None


def check_shape(segments: list[Record]) -> list[str]:
    """Differences between the live segments and SEED.md's table (empty when the shape matches)."""
    problems = []
    if len(segments) != len(SEED_SHAPE):
        problems.append(f"{len(segments)} segments on the wire, SEED.md has {len(SEED_SHAPE)}")
    for i, (want, rec) in enumerate(zip(SEED_SHAPE, segments, strict=False), start=1):
        who, flags, rel_seq, rel_ack, length = want
        got_who = "client" if rec["dir"] == "out" else "server"
        got = (got_who, rec["flags"], rec["rel_seq"], rec["rel_ack"], rec["len"])
        if got != (who, flags, rel_seq, rel_ack, length):
            expected = segment_line(flags, rel_seq, rel_ack, None, length, brackets=True)
            seen = segment_line(rec["flags"], rec["rel_seq"], rec["rel_ack"], None, rec["len"], brackets=True)
            problems.append(f"segment {i}: expected {who} {expected}, got {got_who} {seen}")
    return problems


@dataclass
class DockerPeer:
    """The compose lab: the seed listener in its own container, reached over the lab network."""

    ip: str
    port: int = 8080

    @classmethod
    def from_env(cls) -> DockerPeer | None:
        if os.environ.get("RAWTCP_LAB") != "docker":
            return None
        return cls(os.environ.get("RAWTCP_DOCKER_PEER", "198.18.10.2"),
                   int(os.environ.get("RAWTCP_DOCKER_PORT", "8080")))


def run_demo(pcap: str, emit: Callable[[Record], None], *, isn: int = 1000, mss: int = 1460,
             msl2: float = 1.0, timeout: float = 20.0, docker: DockerPeer | None = None,
             ipv6: bool = False, stack_name: str = "linux") -> DemoResult:
    """Bring up a fresh lab (or use the compose lab's listener container), run the exchange, tear
    down what was made; records go to ``emit`` as they happen.

    ``ipv6``: the same exchange between the lab's IPv6 addresses (RFC 8200). The segments are the
    same: our MSS option is the given one, the seed server's is its TCP_MAXSEG (1024) in both families.
    """
    from rawtcp.capture.streams import endpoint_name
    from rawtcp.lab import topology
    from rawtcp.lab.kstate import KernelStateWatcher
    from rawtcp.session.connection import Connection, ConnectionSpec
    from rawtcp.session.errors import SessionError
    from rawtcp.session.kernelview import KernelView
    from rawtcp.session.sidecar import write_states
    from rawtcp.wire import netns

    result = DemoResult(pcap=pcap)

    def keep(rec: Record) -> None:
        result.records.append(rec)
        if rec["type"] == "segment":
            result.segments.append(rec)
        elif rec["type"] == "state":
            # the stack's changes say whose they are ("kernel", "pytcp"); rawtcp's own say "rawtcp"
            (result.client_states if rec.get("who") == "rawtcp" else result.kernel_states).append(rec["new"])
        emit(rec)

    with contextlib.ExitStack() as stack:
        if docker is None:
            cfg = topology.fresh_lab("rawtcp-demo", listener="seed", stack=stack_name)
            lab = stack.enter_context(topology.temporary_lab(cfg))
            server_ip, port = (cfg.server_ip6 if ipv6 else cfg.server_ip), cfg.port
            if server_ip is None:
                raise SessionError("demo over IPv6: the lab has no IPv6 addresses")
        else:
            lab, server_ip, port = None, docker.ip, docker.port
        # The tracepoint sees every namespace's sockets (containers share the host's kernel).
        if stack_name != "linux" and lab is not None:
            from rawtcp.lab.stack import state_watcher

            watcher = state_watcher(cfg.client_ns, {port})  # the stack's own states, from its agent
        else:
            watcher = KernelStateWatcher()
            watcher.start({port})
        stack.callback(watcher.stop)
        if lab is not None:
            stack.enter_context(netns.inside(cfg.client_ns))
        # SEED.md's segments exactly: its SYN carries only <mss>, and every segment is ACKed at once.
        conn = stack.enter_context(Connection(ConnectionSpec(
            remote_ip=server_ip, remote_port=port, isn=isn, mss=mss, msl2=msl2, pcap=pcap, rto_min=0.2,
            profile="bare",
        )))
        ep, driver = conn.endpoint, conn.driver
        kernel_side = (server_ip, port)
        ours = (conn.local_ip, ep.local_port)
        view = KernelView(watcher, kernel_side, ours, driver.t0)
        driver.listeners.append(lambda rec: view.add(rec, time.monotonic()))

        def run(done: Callable[[], bool], what: str) -> None:
            ok = driver.run_until(lambda: done() or ep.state is State.CLOSED, timeout)
            view.release(time.monotonic(), keep)
            if not ok or (ep.state is State.CLOSED and not done()):
                raise SessionError(f"demo: {what} did not happen (state {ep.state})")

        ep.open_active(time.monotonic())  # segment 1
        run(lambda: ep.state is State.ESTABLISHED, "the three-way open")  # 2, 3
        # The seed server turns quick-ACK off right after accept(): let it, or its answer cannot ride
        # on its ACK (SEED.md segment 5). Across containers its accept queue is out of sight: a pause.
        if lab is not None and stack_name == "linux":
            topology.wait_accepted(cfg)
        else:  # a user-space stack's accept queue is out of sight (no ss) too
            time.sleep(ACCEPT_PAUSE)
        ep.send(REQUEST, time.monotonic())  # 4
        run(lambda: ep.readable >= 10 and ep.in_flight == 0, "the server's 10-byte answer")  # 5, 6
        result.received = ep.read()
        ep.close(time.monotonic())  # 7
        run(lambda: ep.state is State.TIME_WAIT, "the four-way close")  # 8, 9, 10
        run(lambda: ep.state is State.CLOSED, "TIME-WAIT's end")
        watcher.wait_for(kernel_side, ours, "CLOSED", 2.0)
        view.release(time.monotonic(), keep, force=True)
        view.flush_kernel(keep)
        write_states(pcap, result.records, driver.wall0, endpoint_name(ours),
                     endpoint_name(kernel_side))
        if lab is not None and lab.listener_log:  # the listener logged the connection when it ended
            result.listener_log = topology.read_listener_log(lab.listener_log)
    result.mismatches = check_shape(result.segments)
    return result
