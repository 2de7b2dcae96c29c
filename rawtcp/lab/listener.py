"""A real kernel TCP listener for the lab: `python -m rawtcp.lab.listener --mode echo|sink|seed ...`.

Run inside the server namespace (`ip netns exec NS python -m rawtcp.lab.listener ...`). Listens on
``--addr`` (IPv4) and, with ``--addr6``, on an IPv6 address too, with two sockets: an AF_INET6 socket
that also took IPv4 (IPV6_V6ONLY=0) would make every IPv4 connection an AF_INET6 socket with
IPv4-mapped addresses, which the kernel-state watcher and `ss` filters would no longer see as IPv4.
Prints ``ready <port>`` once listen() has returned on every socket, then serves each connection in
its own thread, so the kernel keeps completing new handshakes while old connections are served.
When a connection ends, one JSON line goes to ``--log``: what the kernel actually received and sent.

Modes:
  echo  echoes everything back; closes on EOF.
  sink  reads and discards; closes on EOF.
  seed  the server of SEED.md: announces MSS 1024, answers the client's first 20 bytes with
        SEED_ANSWER (10 bytes) riding on the ACK, and closes CLOSE_DELAY s after the client's FIN.
Standard library only: this process must start fast and import nothing heavy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import IO, Any

SEED_MSS = 1024
SEED_REQUEST_BYTES = 20
# The 10 bytes segment 5 of SEED.md carries; digits, so a ladder or hexdump shows them plainly.
SEED_ANSWER = b"0123456789"
BACKLOG = 128
_CHUNK = 65536

# Not every Python build exposes the constant; the value is Linux's (include/uapi/linux/tcp.h).
TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


class _Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave accept()."""


class EventLog:
    """The listener's JSON-lines log of what it accepted, read and sent (one writer lock: a thread per
    connection)."""

    def __init__(self, fh: IO[str] | None) -> None:
        self._fh = fh
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
            except (OSError, ValueError):  # closed at exit while a connection thread finishes
                pass


def _fmt(addr: tuple[Any, ...]) -> str:
    # IPv6 in brackets ("[2001:db8::1]:40000") as ss writes it; AF_INET6 addresses are (ip, port, flow, scope).
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _recv_exact(conn: socket.socket, want: int, digest: Any) -> tuple[int, bool]:
    """Read until `want` bytes or EOF; returns (bytes read, EOF seen)."""
    got = 0
    while got < want:
        data = conn.recv(want - got)
        if not data:
            return got, True
        digest.update(data)
        got += len(data)
    return got, False


def _drain(conn: socket.socket, digest: Any) -> int:
    """Read until EOF, returning the byte count."""
    got = 0
    while data := conn.recv(_CHUNK):
        digest.update(data)
        got += len(data)
    return got


def serve(conn: socket.socket, peer: tuple[str, int], mode: str, log: EventLog, close_delay: float) -> None:
    """Serve one accepted connection, then log what happened on it."""
    digest = hashlib.sha256()
    received = sent = 0
    error: str | None = None
    start = time.monotonic()
    try:
        local = _fmt(conn.getsockname())
    except OSError:
        local = ""
    try:
        if mode == "echo":
            while data := conn.recv(_CHUNK):
                digest.update(data)
                received += len(data)
                conn.sendall(data)
                sent += len(data)
        elif mode == "sink":
            received = _drain(conn, digest)
        else:  # seed
            received, eof = _recv_exact(conn, SEED_REQUEST_BYTES, digest)
            if received == SEED_REQUEST_BYTES:
                # Sent before the delayed ACK fires, so it rides on the ACK of the 20 bytes (SEED seg 5).
                conn.sendall(SEED_ANSWER)
                sent = len(SEED_ANSWER)
            if not eof:
                received += _drain(conn, digest)
            # Half-closed by the peer: stay in CLOSE-WAIT long enough that the kernel ACKs the FIN
            # (~40 ms delayed ACK) in its own segment before our FIN (SEED segs 8 and 9).
            time.sleep(close_delay)
    except OSError as exc:
        error = exc.strerror or type(exc).__name__
    finally:
        try:
            conn.close()
        finally:
            log.write({
                "peer": _fmt(peer), "local": local, "mode": mode, "received": received,
                "sha256": digest.hexdigest(), "sent": sent, "error": error,
                "start": start, "end": time.monotonic(),
            })


def make_listening_socket(addr: str, port: int, mode: str) -> socket.socket:
    """A listening socket on ``addr`` (IPv4, or IPv6 when it has a colon: that family only)."""
    v6 = ":" in addr
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # IPv4 has its own socket
        if mode == "seed":
            # Set before listen(): the SYN-ACK's MSS option comes from the listener's user_mss.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SEED_MSS)
        sock.bind((addr, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rawtcp.lab.listener", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("echo", "sink", "seed"), default="echo")
    parser.add_argument("--addr", default="0.0.0.0")
    parser.add_argument("--addr6", help="also listen on this IPv6 address, same port (a second socket)")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on ready)")
    parser.add_argument("--log", help="append one JSON line per finished connection to this file")
    parser.add_argument("--close-delay", type=float, default=0.3,
                        help="seed mode: seconds between reading EOF and closing (default 0.3)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"port {args.port} is outside 0-65535")
    if args.close_delay < 0:
        parser.error("--close-delay must be >= 0")

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    socks: list[socket.socket] = []
    addr = args.addr
    try:
        socks.append(make_listening_socket(args.addr, args.port, args.mode))
        if args.addr6:
            addr = args.addr6
            # The same port on both families, also when --port 0 let the kernel pick the first one.
            socks.append(make_listening_socket(args.addr6, socks[0].getsockname()[1], args.mode))
    except OSError as exc:
        for sock in socks:
            sock.close()
        print(f"cannot listen on {addr}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    fh = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    log = EventLog(fh)
    try:
        print(f"ready {socks[0].getsockname()[1]}", flush=True)
        # Whoever waited for "ready" may go away: never write to that pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        for sock in socks:
            sock.setblocking(False)  # select() says which one has a connection; accept() never blocks
        while True:
            ready, _, _ = select.select(socks, [], [])
            for sock in ready:
                _accept(sock, args.mode, log, args.close_delay)
    except _Stop:
        return 0
    finally:
        for sock in socks:
            sock.close()
        if fh is not None:
            fh.close()


def _accept(sock: socket.socket, mode: str, log: EventLog, close_delay: float) -> None:
    """Accept one connection on a ready listening socket and serve it in its own thread."""
    try:
        conn, peer = sock.accept()
    except (BlockingIOError, ConnectionAbortedError, InterruptedError):
        return
    except OSError as exc:
        print(f"accept failed: {exc}", file=sys.stderr)
        time.sleep(0.01)  # e.g. EMFILE: back off instead of spinning
        return
    conn.setblocking(True)  # serve() blocks; say so rather than rely on what accept() inherits
    if mode == "seed":
        # Right after accept(): leave quick-ACK mode so the answer rides on the ACK (SEED seg 5).
        conn.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)
    threading.Thread(target=serve, args=(conn, peer[:2], mode, log, close_delay), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
