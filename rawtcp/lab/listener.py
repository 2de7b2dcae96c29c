"""A real kernel TCP listener for the lab: `python -m rawtcp.lab.listener --mode echo|sink|seed ...`.

Run inside the server namespace (`ip netns exec NS python -m rawtcp.lab.listener ...`). Listens on
``--addr`` (IPv4) and, with ``--addr6``, on an IPv6 address too, with two sockets: an AF_INET6 socket
that also took IPv4 (IPV6_V6ONLY=0) would make every IPv4 connection an AF_INET6 socket with
IPv4-mapped addresses, which the kernel-state watcher and `ss` filters would no longer see as IPv4.
Prints ``ready <port>`` once listen() has returned on every socket, then serves every connection from
one event loop (epoll, non-blocking sockets): no thread per connection, so accepting stays cheap and
the kernel keeps completing new handshakes while old connections are served.
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
import contextlib
import hashlib
import heapq
import json
import os
import selectors
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
BACKLOG = 1024  # the kernel caps it at net.core.somaxconn (4096 on current kernels)
_CHUNK = 65536
_ACCEPTS_PER_TURN = 64  # a burst of handshakes is accepted in one turn, yet reads still get their turn
_OUT_LIMIT = 1 << 20  # echo: stop reading while this much waits to go back (the peer is not reading)

# Not every Python build exposes the constant; the value is Linux's (include/uapi/linux/tcp.h).
TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


class _Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the event loop."""


class EventLog:
    """The listener's JSON-lines log of what it accepted, read and sent.

    ``autoflush=False`` leaves flushing to the caller (the event loop flushes once per turn, before it
    waits); the lock serves callers with a thread per connection (the PyTCP agent's listeners)."""

    def __init__(self, fh: IO[str] | None, autoflush: bool = True) -> None:
        self._fh = fh
        self._autoflush = autoflush
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            try:
                self._fh.write(line + "\n")
                if self._autoflush:
                    self._fh.flush()
            except (OSError, ValueError):  # closed at exit while a connection finishes
                pass

    def flush(self) -> None:
        if self._fh is None:
            return
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._fh.flush()


def _fmt(addr: tuple[Any, ...]) -> str:
    # IPv6 in brackets ("[2001:db8::1]:40000") as ss writes it; AF_INET6 addresses are (ip, port, flow, scope).
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


class Session:
    """What one connection's mode does with the bytes it reads, without any I/O (both servers use it).

    ``read_size()`` is how much to ask for next (the seed mode reads exactly its 20 request bytes first,
    so its answer leaves before anything after them is read); ``received(data)`` returns the bytes to
    send back; ``linger`` is how long to stay open after the peer's EOF."""

    __slots__ = ("digest", "error", "local", "mode", "nreceived", "peer", "sent", "start")

    def __init__(self, mode: str, peer: str, local: str, start: float) -> None:
        self.mode, self.peer, self.local, self.start = mode, peer, local, start
        self.digest = hashlib.sha256()
        self.nreceived = self.sent = 0
        self.error: str | None = None

    def read_size(self) -> int:
        if self.mode == "seed" and self.nreceived < SEED_REQUEST_BYTES:
            return SEED_REQUEST_BYTES - self.nreceived
        return _CHUNK

    def received(self, data: bytes) -> bytes:
        before = self.nreceived
        self.digest.update(data)
        self.nreceived += len(data)
        if self.mode == "echo":
            return data
        if self.mode == "seed" and before < SEED_REQUEST_BYTES <= self.nreceived:
            # Sent before the delayed ACK fires, so it rides on the ACK of the 20 bytes (SEED seg 5).
            return SEED_ANSWER
        return b""

    def linger(self, close_delay: float) -> float:
        # Half-closed by the peer: the seed stays in CLOSE-WAIT long enough that the kernel ACKs the FIN
        # (~40 ms delayed ACK) in its own segment before our FIN (SEED segs 8 and 9).
        return close_delay if self.mode == "seed" else 0.0

    def record(self, end: float) -> dict[str, Any]:
        return {"peer": self.peer, "local": self.local, "mode": self.mode, "received": self.nreceived,
                "sha256": self.digest.hexdigest(), "sent": self.sent, "error": self.error,
                "start": self.start, "end": end}


def _local_name(conn: Any) -> str:
    try:
        return _fmt(conn.getsockname())
    except OSError:
        return ""


def serve(conn: Any, peer: tuple[str, int], mode: str, log: EventLog, close_delay: float) -> None:
    """Serve one accepted connection with blocking calls (a thread each), then log what happened on it.

    The kernel listener uses :class:`Server` instead; this serves sockets that have no event loop to
    join (another stack's, behind the socket calls used here: recv, sendall, getsockname, close)."""
    session = Session(mode, _fmt(peer), _local_name(conn), time.monotonic())
    try:
        while data := conn.recv(session.read_size()):
            out = session.received(data)
            if out:
                conn.sendall(out)
                session.sent += len(out)
        time.sleep(session.linger(close_delay))
    except OSError as exc:
        session.error = exc.strerror or type(exc).__name__
    finally:
        try:
            conn.close()
        finally:
            log.write(session.record(time.monotonic()))


class _Conn:
    __slots__ = ("eof", "mask", "out", "session", "sock")

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self.sock, self.session = sock, session
        self.out = bytearray()
        self.eof = False
        self.mask = selectors.EVENT_READ  # what the selector waits for on this socket


class Server:
    """Every connection of the listening sockets from one epoll loop, on non-blocking sockets.

    A connection reads when readable, sends what its mode answers at once, and waits for writability
    only while the peer's receive window is full (reading stops meanwhile, as a blocking sendall would).
    The seed mode's close CLOSE_DELAY s after EOF is a timer, not a sleeping thread."""

    def __init__(self, socks: list[socket.socket], mode: str, log: EventLog, close_delay: float) -> None:
        self.mode, self.log, self.close_delay = mode, log, close_delay
        self.sel = selectors.DefaultSelector()
        self.listening = socks
        for sock in socks:
            sock.setblocking(False)  # the selector says which one has a connection; accept() never blocks
            self.sel.register(sock, selectors.EVENT_READ, None)
        self.timers: list[tuple[float, int, _Conn]] = []  # (close time, tie-break, connection): seed lingering
        self._tie = 0
        self.conns: set[_Conn] = set()

    def run(self) -> None:
        select, flush = self.sel.select, self.log.flush
        while True:
            flush()  # each finished connection's line is in the file before we wait
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, events in select(timeout):
                conn = key.data
                if conn is None:
                    self._accept(key.fileobj)  # type: ignore[arg-type]
                elif events & selectors.EVENT_READ:
                    self._readable(conn)
                else:
                    self._send(conn)
            if self.timers:
                now = time.monotonic()
                while self.timers and self.timers[0][0] <= now:
                    self._finish(heapq.heappop(self.timers)[2])

    def close(self) -> None:
        for conn in list(self.conns):
            conn.sock.close()
        self.conns.clear()
        self.sel.close()

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                print(f"accept failed: {exc}", file=sys.stderr)
                time.sleep(0.01)  # e.g. EMFILE: back off instead of spinning
                return
            sock.setblocking(False)
            if self.mode == "seed":
                # Right after accept(): leave quick-ACK mode so the answer rides on the ACK (SEED seg 5).
                sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)
            conn = _Conn(sock, Session(self.mode, _fmt(peer), _local_name(sock), time.monotonic()))
            self.conns.add(conn)
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: _Conn) -> None:
        session = conn.session
        try:
            data = conn.sock.recv(session.read_size())
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(conn, exc)
            return
        if not data:
            conn.eof = True
        else:
            out = session.received(data)
            if out:
                conn.out += out
        self._send(conn)

    def _send(self, conn: _Conn) -> None:
        out = conn.out
        while out:
            try:
                n = conn.sock.send(out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._fail(conn, exc)
                return
            conn.session.sent += n
            del out[:n]
        if conn.eof and not out:
            self.sel.unregister(conn.sock)
            linger = conn.session.linger(self.close_delay)
            if linger > 0:
                self._tie += 1
                heapq.heappush(self.timers, (time.monotonic() + linger, self._tie, conn))
            else:
                self._finish(conn)
            return
        want = ((selectors.EVENT_READ if len(out) < _OUT_LIMIT and not conn.eof else 0)
                | (selectors.EVENT_WRITE if out else 0))
        if want != conn.mask:
            conn.mask = want
            self.sel.modify(conn.sock, want, conn)

    def _fail(self, conn: _Conn, exc: OSError) -> None:
        conn.session.error = exc.strerror or type(exc).__name__
        self.sel.unregister(conn.sock)
        self._finish(conn)

    def _finish(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        conn.sock.close()
        self.log.write(conn.session.record(time.monotonic()))


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
    server = Server(socks, args.mode, EventLog(fh, autoflush=False), args.close_delay)
    try:
        print(f"ready {socks[0].getsockname()[1]}", flush=True)
        # Whoever waited for "ready" may go away: never write to that pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        server.run()
    except _Stop:
        return 0
    finally:
        server.close()
        for sock in socks:
            sock.close()
        if fh is not None:
            fh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
