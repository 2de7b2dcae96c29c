"""The loss-recovery row's kernel sender: a source of the benchmark's bytes, run in the lab's server namespace.

    ip netns exec NS python scripts/benchmark/kernel_peer.py --addr 198.18.0.2 --port 8081 --file PAYLOAD

Each client sends one line naming a congestion control (``reno\\n``, ``bbr\\n``); the source switches its
socket to it (TCP_CONGESTION), sends the whole file, half-closes, and waits for the client's FIN. The
client names it because the sender's congestion control is what a receive test compares: "kernel Reno"
then means Reno on the sending side of both directions. Prints ``ready <port>`` once listening.
Standard library only, bounded waits: it starts fast and never outlives a stuck client for long.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading

TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)  # include/uapi/linux/tcp.h
REQUEST_MAX = 64  # a congestion control's name is at most 16 bytes (TCP_CA_NAME_MAX)
IDLE_TIMEOUT = 150.0  # longer than any transfer the benchmark allows (its per-transfer timeout)


class _Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave accept()."""


def _on_signal(_signum: int, _frame: object) -> None:
    raise _Stop()


def _read_request(conn: socket.socket) -> str:
    line = b""
    while not line.endswith(b"\n") and len(line) < REQUEST_MAX:
        chunk = conn.recv(REQUEST_MAX - len(line))
        if not chunk:
            break
        line += chunk
    return line.decode("ascii", "replace").strip()


def serve(conn: socket.socket, payload: bytes) -> None:
    try:
        conn.settimeout(IDLE_TIMEOUT)
        cc = _read_request(conn)
        if cc:
            conn.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, cc.encode())
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # until the client's FIN: closing earlier could answer late data with RST
            pass
    except OSError:
        pass  # the client gave up (timed out, aborted): the benchmark records that on its side
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", required=True, help="address to listen on (the lab server's)")
    ap.add_argument("--port", type=int, required=True, help="port to listen on (0: any, printed on ready)")
    ap.add_argument("--file", required=True, help="the bytes every connection is sent")
    args = ap.parse_args(argv)
    with open(args.file, "rb") as fh:
        payload = fh.read()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.addr, args.port))
        sock.listen(16)
        print(f"ready {sock.getsockname()[1]}", flush=True)
        while True:
            conn, _peer = sock.accept()
            threading.Thread(target=serve, args=(conn, payload), daemon=True).start()
    except _Stop:
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
