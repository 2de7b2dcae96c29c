"""The loss-recovery row: rawtcp's own endpoint against kernel sockets over one impaired lab.

rawtcp is driven the way users drive it: ``rawtcp.api.connect`` with its default options (a session
keeper holds the connection; ``send`` returns once every byte is ACKed, ``recv`` once they have all
arrived). Beside it, in the same run, lab and direction, kernel sockets in the client namespace with
``TCP_CONGESTION`` set to "reno" (the like-for-like baseline: random loss, which BBR, this host's
default, largely ignores) and to "bbr" (reported beside it).

Directions, each timed on its own:

* ``send``: the client sends the payload to the lab's kernel sink. Timed from the first send call until
  every byte is ACKed (``send`` returning for rawtcp, SIOCOUTQ reaching 0 for a kernel socket); the sink's
  log then says how many bytes it read and their SHA-256.
* ``recv``: the client names a congestion control, a kernel source (benchmark/kernel_peer.py, in the
  server namespace) sends the payload with it. Timed from that request until the last byte has reached
  the application; the client checks the SHA-256 itself. rawtcp's runs ask for Reno, like its baseline.

Random loss makes single runs noise, so every client and direction runs several times, the clients'
runs interleaved (drift on the shared VM hits them alike), and medians are compared. Every transfer is
bounded: past its timeout it is recorded as failed (and counts as slower than any finished run), never
waited for. Handshakes and closes are not timed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

CLIENTS = ("rawtcp", "kernel-reno", "kernel-bbr")
DIRECTIONS = ("send", "recv")
CONGESTION = {"rawtcp": "reno", "kernel-reno": "reno", "kernel-bbr": "bbr"}  # the kernel side's, see above
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)  # include/uapi/linux/tcp.h
SIOCOUTQ = termios.TIOCOUTQ  # TCP: bytes written but not yet ACKed (tcp_ioctl: write_seq - snd_una)
CONNECT_TIMEOUT = 60.0  # a kernel connect(); rawtcp's is bounded by its SYN retries
CLOSE_TIMEOUT = 30.0  # the untimed close after a transfer
SINK_LOG_WAIT = 10.0  # the sink logs a connection once it has closed it
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_peer.py")


@dataclass(frozen=True)
class LossPlan:
    nbytes: int  # random bytes per transfer
    runs: int  # per client and direction
    loss: float  # netem percentages and milliseconds, both directions of the link
    reorder: float
    duplicate: float
    delay_ms: float
    jitter_ms: float
    timeout: float  # seconds per transfer; a transfer still running then is a failure
    short: bool  # the --quick version
    target_ratio: float = 1.25  # rawtcp median / kernel Reno median

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["bytes"] = record.pop("nbytes")
        return record


# Seven runs per client and direction: at 20 % loss single transfers range from 8 s to past the timeout
# (RTO back-off chains), and five left the medians at the mercy of one or two of them.
FULL_PLAN = LossPlan(nbytes=256 * 1024, runs=7, loss=20, reorder=10, duplicate=5, delay_ms=50, jitter_ms=20,
                     timeout=120.0, short=False)
# CI's version: a quarter of the bytes, half the loss (the rest of the path as in the full run); both
# directions and both baselines. Seven runs, because three swung the ratio from 0.6x to 4x between CI
# runs of the same tree. About 1.5 min here; at worst 42 transfers of 15 s.
QUICK_PLAN = LossPlan(nbytes=64 * 1024, runs=7, loss=10, reorder=10, duplicate=5, delay_ms=50, jitter_ms=20,
                      timeout=15.0, short=True)


@dataclass
class Transfer:
    """One run of one client in one direction."""

    client: str
    direction: str
    run: int
    seconds: float | None  # None: failed (not finished in time, refused, reset)
    delivered: int  # bytes the receiving application got (a run given up on: as far as either end could tell)
    ended: bool  # the receiver read the stream to the sender's FIN: only then are missing bytes lost ones
    intact: bool  # the stream ended and what arrived is the payload, byte for byte (SHA-256)
    error: str | None = None
    retransmits: int | None = None  # segments the sender resent (send direction: the client is the sender)

    def lost(self, nbytes: int) -> int:
        """Bytes missing from a stream that ended (a run given up on has lost nothing yet: it failed)."""
        return max(0, nbytes - self.delivered) if self.ended else 0


class TransferTimeout(Exception):
    """A transfer outlived its plan's timeout."""


@contextlib.contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Interrupt whatever the block is blocked in after ``seconds`` (the backstop behind every wait)."""

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise TransferTimeout(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# the kernel source in the server namespace


@contextlib.contextmanager
def kernel_source(netns: str, addr: str, port: int, payload_path: str) -> Iterator[int]:
    """benchmark/kernel_peer.py in ``netns``, until the block ends; yields its port."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, PEER, "--addr", addr, "--port", str(port),
                             "--file", payload_path], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)  # a cold Python start under ip netns exec
        line = proc.stdout.readline().split() if ready else []
        if len(line) != 2 or line[0] != b"ready":
            raise RuntimeError(f"the kernel source did not start (said {line!r})")
        yield int(line[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# ---------------------------------------------------------------------------------------------
# the clients: each returns what one transfer did


@dataclass
class Outcome:
    seconds: float | None = None  # the timed part; None: it did not finish in time
    error: str | None = None
    lport: int | None = None  # the client's port (the sink logs connections by it)
    got: bytes = b""  # what the client received (recv direction), to its end
    ended: bool = False  # recv direction: the sender's FIN came after the data (the stream is complete)
    retransmits: int | None = None  # send direction: segments the client resent
    progress: int | None = None  # a run given up on: payload bytes across by then (ACKed, or received)


# kernel sockets


def _kernel_socket(netns: str, cc: str) -> socket.socket:
    from rawtcp.wire import netns as ns

    with ns.inside(netns):  # a socket belongs to the namespace it was made in, wherever it is used later
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, cc.encode())
    return sock


def _retransmits(sock: socket.socket) -> int | None:
    """The kernel's count of segments this socket resent (tcp_info's tcpi_total_retrans)."""
    from rawtcp.script.tcpinfo import parse_tcp_info

    with contextlib.suppress(OSError):
        return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)).get("tcpi_total_retrans")
    return None


def _unacked(sock: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0\0\0\0"))[0])


def _read_to_eof(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What is left until the peer's FIN (bounded), and whether the FIN came."""
    sock.settimeout(timeout)
    rest = bytearray()
    try:
        while chunk := sock.recv(65536):
            rest += chunk
    except OSError:
        return bytes(rest), False
    return bytes(rest), True


def kernel_send(netns: str, dst: str, port: int, cc: str, payload: bytes, timeout: float) -> Outcome:
    """Timed until every byte is ACKed."""
    sock = _kernel_socket(netns, cc)
    out = Outcome()
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect((dst, port))
        out.lport = sock.getsockname()[1]
        t0 = time.perf_counter()
        end = t0 + timeout
        try:
            with hard_deadline(timeout + 5):
                sock.settimeout(timeout)
                sock.sendall(payload)
                # all handed to the kernel; now until the receiver has ACKed the last byte (1 ms is
                # well under this path's 100 ms round trip)
                while _unacked(sock) > 0:
                    if time.perf_counter() >= end:
                        raise TransferTimeout(f"{_unacked(sock)} bytes unACKed after {timeout:g} s")
                    time.sleep(0.001)
            out.seconds = time.perf_counter() - t0
        except (OSError, TransferTimeout) as exc:
            out.error = str(exc) or type(exc).__name__
            with contextlib.suppress(OSError):
                out.progress = len(payload) - _unacked(sock)
        out.retransmits = _retransmits(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        _read_to_eof(sock, CLOSE_TIMEOUT)  # the sink closes after our FIN: its log line follows
        return out
    finally:
        sock.close()


def kernel_recv(netns: str, dst: str, port: int, cc: str, nbytes: int, timeout: float) -> Outcome:
    """Timed from the request until ``nbytes`` have been read."""
    sock = _kernel_socket(netns, cc)
    out = Outcome()
    got = bytearray()
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect((dst, port))
        t0 = time.perf_counter()
        end = t0 + timeout
        try:
            with hard_deadline(timeout + 5):
                sock.settimeout(timeout)
                sock.sendall(f"{cc}\n".encode())
                while len(got) < nbytes:
                    sock.settimeout(max(0.001, end - time.perf_counter()))
                    chunk = sock.recv(65536)
                    if not chunk:
                        out.ended = True
                        break
                    got += chunk
            if len(got) >= nbytes:
                out.seconds = time.perf_counter() - t0
            else:
                out.error = f"connection closed after {len(got)} bytes"
        except (OSError, TransferTimeout) as exc:
            out.error = str(exc) or type(exc).__name__
        if not out.ended and out.error is None:  # untimed: the rest of the stream, up to the source's FIN
            rest, out.ended = _read_to_eof(sock, CLOSE_TIMEOUT)
            got += rest
        out.got = bytes(got)
        return out
    finally:
        sock.close()


# rawtcp through its public API, default options


def _local_port(conn: Any) -> int:
    return int(str(conn.status()["local"]).rsplit(":", 1)[1])


def _finish(conn: Any) -> None:
    """The untimed close: polite if it can be, else RST (the keeper must not outlive the run)."""
    from rawtcp import api

    try:
        with hard_deadline(CLOSE_TIMEOUT + 5):
            conn.close(wait=CLOSE_TIMEOUT)
    except (*api.ERRORS, TransferTimeout):
        with contextlib.suppress(*api.ERRORS, TransferTimeout), hard_deadline(10):
            if conn.alive:
                conn.abort()


def rawtcp_send(netns: str, dst: str, port: int, payload: bytes, timeout: float,
                on_open: Callable[[Any], None]) -> Outcome:
    """Timed until ``send`` returns: it does once every byte is ACKed."""
    from rawtcp import api

    conn = api.connect(dst, port, netns=netns)  # the defaults: no option is given
    on_open(conn)
    out = Outcome(lport=_local_port(conn))
    t0 = time.perf_counter()
    try:
        with hard_deadline(timeout + 5):  # send's own wait is the first bound; this one is the backstop
            conn.send(payload, wait=timeout)
        seconds = time.perf_counter() - t0
        if seconds <= timeout:
            out.seconds = seconds
        else:
            out.error = f"took {seconds:.1f} s, over the {timeout:g} s timeout"
    except (*api.ERRORS, TransferTimeout) as exc:
        out.error = str(exc)
    with contextlib.suppress(*api.ERRORS, OSError, KeyError, TypeError, ValueError):
        status = conn.status()
        out.retransmits = int(status["retransmits"])
        if out.seconds is None:
            out.progress = max(0, int(status["rel_snd_una"]) - 1)  # our SYN took sequence number 0

    _finish(conn)
    return out


def rawtcp_recv(netns: str, dst: str, port: int, nbytes: int, timeout: float,
                on_open: Callable[[Any], None]) -> Outcome:
    """Timed from the request until ``nbytes`` have come out of ``recv``."""
    from rawtcp import api

    conn = api.connect(dst, port, netns=netns)
    on_open(conn)
    out = Outcome()
    got = bytearray()
    t0 = time.perf_counter()
    end = t0 + timeout
    try:
        with hard_deadline(timeout + 5):
            conn.send(f"{CONGESTION['rawtcp']}\n", wait=timeout)
            while len(got) < nbytes:
                left = end - time.perf_counter()
                if left <= 0:
                    break
                chunk = conn.recv(nbytes - len(got), wait=left)
                if not chunk:  # the peer closed (or nothing came in time)
                    break
                got += chunk
        if len(got) >= nbytes:
            out.seconds = time.perf_counter() - t0
        else:
            out.error = f"{len(got)} of {nbytes} bytes after {time.perf_counter() - t0:.1f} s"
    except (*api.ERRORS, TransferTimeout) as exc:
        out.error = str(exc)
    if out.error is not None:
        with contextlib.suppress(*api.ERRORS, OSError, KeyError, TypeError, ValueError):
            out.progress = len(got) + int(conn.status()["readable"])  # recv(n) hands nothing over until n
    if out.error is None:  # untimed: anything after the payload, and the source's FIN
        with contextlib.suppress(*api.ERRORS, TransferTimeout), hard_deadline(CLOSE_TIMEOUT + 5):
            deadline = time.monotonic() + CLOSE_TIMEOUT
            while not (ended := bool(conn.status().get("peer_closed"))) and time.monotonic() < deadline:
                got += conn.recv(wait=max(0.01, deadline - time.monotonic()))
            got += conn.recv(wait=0.01) if ended else b""
            out.ended = ended
    out.got = bytes(got)
    _finish(conn)
    return out


def rawtcp_syn_options(conn: Any) -> str | None:
    """The options of the SYN rawtcp sent (as ``rawtcp status --history`` prints them): which defaults
    were in force, for the record."""
    from rawtcp import api

    with contextlib.suppress(*api.ERRORS, OSError):
        for rec in conn.history():
            if rec.get("type") == "segment" and rec.get("dir") == "out" and "S" in str(rec.get("flags", "")):
                return str(rec.get("options") or "")
    return None


# ---------------------------------------------------------------------------------------------
# the row


def _sink_record(cfg: Any, lport: int) -> dict[str, Any] | None:
    """The lab sink's line for our connection (it writes it once it has closed the connection)."""
    from rawtcp.lab import topology

    peer = f"{cfg.client_ip}:{lport}"
    deadline = time.monotonic() + SINK_LOG_WAIT
    while True:
        for rec in topology.listener_log(cfg):
            if rec.get("peer") == peer:
                return rec
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)  # polling a log file, bounded


def _median(times: list[float | None]) -> float | None:
    """Median with failures counted as slower than any finished run; None if most runs failed."""
    med = statistics.median([math.inf if t is None else t for t in times]) if times else math.inf
    return None if math.isinf(med) else med


def summarise(transfers: list[Transfer], plan: LossPlan) -> dict[str, Any]:
    """Per direction: each client's runs, median, failures, lost bytes; rawtcp's ratios to the kernel's."""
    out: dict[str, Any] = {}
    for direction in DIRECTIONS:
        if not any(t.direction == direction for t in transfers):
            continue
        d: dict[str, Any] = {}
        for client in CLIENTS:
            runs = [t for t in transfers if t.client == client and t.direction == direction]
            times = [t.seconds for t in runs]
            median = _median(times)
            d[client] = {
                "runs": len(runs), "times_s": [None if t is None else round(t, 3) for t in times],
                "median_s": None if median is None else round(median, 3),
                "goodput_kbit_s": None if not median else round(plan.nbytes * 8 / median / 1000, 1),
                "failed": sum(t.seconds is None for t in runs),
                "lost_bytes": sum(t.lost(plan.nbytes) for t in runs),
                "intact": all(t.intact for t in runs if t.ended),  # what reached its end is the payload
                "retransmits": [t.retransmits for t in runs],
            }
        rw, reno, bbr = (d[c]["median_s"] for c in CLIENTS)
        d["ratio_reno"] = round(rw / reno, 3) if rw and reno else None
        d["ratio_bbr"] = round(rw / bbr, 3) if rw and bbr else None
        out[direction] = d
    return out


def loss_recovery(plan: LossPlan, on_progress: Callable[[str], None] = _say) -> dict[str, Any]:
    """Make an impaired lab, run every client in both directions ``plan.runs`` times, interleaved;
    return the record (plan, per-run transfers, summary). The lab goes whatever ends the run."""
    from rawtcp import api
    from rawtcp.lab import topology

    payload = os.urandom(plan.nbytes)
    digest = hashlib.sha256(payload).hexdigest()
    record: dict[str, Any] = {"plan": plan.to_json(), "sha256": digest}
    transfers: list[Transfer] = []
    opened: list[Any] = []  # rawtcp connections, aborted on the way out if still alive

    def on_open(conn: Any) -> None:
        opened.append(conn)
        if "rawtcp_syn_options" not in record:
            record["rawtcp_syn_options"] = rawtcp_syn_options(conn)
    cfg = topology.fresh_lab("rtt-bench", listener="sink")
    workdir = tempfile.mkdtemp(prefix="rawtcp-bench-loss-")
    payload_path = os.path.join(workdir, "payload")
    with open(payload_path, "wb") as fh:
        fh.write(payload)
    try:
        with topology.temporary_lab(cfg, listener=True):
            record["impairment"] = topology.impair(cfg, loss=plan.loss, delay_ms=plan.delay_ms,
                                                   jitter_ms=plan.jitter_ms, reorder=plan.reorder,
                                                   duplicate=plan.duplicate)
            try:
                with kernel_source(cfg.server_ns, cfg.server_ip, cfg.port + 1, payload_path) as source_port:
                    for run in range(plan.runs):
                        # a different client first each run, so no client always follows the same one
                        order = CLIENTS[run % len(CLIENTS):] + CLIENTS[:run % len(CLIENTS)]
                        for direction in DIRECTIONS:
                            for client in order:
                                t = _one(client, direction, run, cfg, source_port, payload, digest, plan, on_open)
                                transfers.append(t)
                                on_progress(f"    loss run {run + 1}/{plan.runs} {direction:4} {client:11} "
                                            + (f"{t.seconds:7.2f} s" if t.seconds is not None else "  failed")
                                            + f"  {t.delivered}/{plan.nbytes} B"
                                            + ("" if t.intact else " NOT INTACT" if t.ended else " unfinished")
                                            + ("" if t.retransmits is None else f", {t.retransmits} resent")
                                            + (f"  ({t.error})" if t.error else ""))
            finally:
                for conn in opened:
                    with contextlib.suppress(*api.ERRORS, OSError):
                        if conn.alive:
                            conn.abort()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(payload_path)
            os.rmdir(workdir)
    record["transfers"] = [asdict(t) for t in transfers]
    record["summary"] = summarise(transfers, plan)
    return record


def _one(client: str, direction: str, run: int, cfg: Any, source_port: int, payload: bytes, digest: str,
         plan: LossPlan, on_open: Callable[[Any], None]) -> Transfer:
    from rawtcp import api

    cc = CONGESTION[client]
    ns, dst = cfg.client_ns, cfg.server_ip
    try:
        if direction == "send":
            if client == "rawtcp":
                out = rawtcp_send(ns, dst, cfg.port, payload, plan.timeout, on_open)
            else:
                out = kernel_send(ns, dst, cfg.port, cc, payload, plan.timeout)
            assert out.lport is not None
            sink = _sink_record(cfg, out.lport)
            delivered = int(sink["received"]) if sink else (out.progress or 0)
            ended = sink is not None and sink.get("error") is None  # the sink read up to our FIN
            intact = ended and sink is not None and sink["sha256"] == digest and delivered == plan.nbytes
            if sink is None and out.error is None:
                out.error = "the sink logged no such connection"
        else:
            if client == "rawtcp":
                out = rawtcp_recv(ns, dst, source_port, plan.nbytes, plan.timeout, on_open)
            else:
                out = kernel_recv(ns, dst, source_port, cc, plan.nbytes, plan.timeout)
            delivered, ended = max(len(out.got), out.progress or 0), out.ended
            intact = ended and hashlib.sha256(out.got).hexdigest() == digest
    except (*api.ERRORS, OSError, TransferTimeout) as exc:  # the connection never opened
        return Transfer(client, direction, run, None, 0, False, False, f"no connection: {exc}")
    seconds, error = out.seconds, out.error
    if seconds is not None and not intact:  # finished in time but wrong, or its end never came: not a pass
        seconds, error = None, error or ("bytes differ from what was sent" if ended else "the stream did not end")
    return Transfer(client, direction, run, seconds, delivered, ended, intact, error, out.retransmits)
