"""A user-space stand-in for tc netem, for kernels built without it (CONFIG_NET_SCH_NETEM off).

`python -m rawtcp.lab.relay --in rtimp-b --out veth-c [--loss PCT] [--delay MS] ...` runs inside a
lab namespace. The lab redirects everything leaving the lab link (``tc ... clsact`` egress, u32
match-all, ``mirred egress redirect``) into a private veth pair; this process reads the frames
from that pair's far end, loses, corrupts, duplicates, delays and reorders them as netem would,
and puts them on the lab link with PACKET_QDISC_BYPASS so they skip the redirect the second time.
Frames from kernel sockets and from packet sockets (rawtcp's own) pass the same way.

Semantics follow netem(8): loss/duplicate/corrupt are independent per-frame probabilities; delay
with jitter draws uniformly from delay±jitter (frames may overtake each other, as with netem);
reorder sends that share of frames at once while the others wait out the delay.
Standard library and rawtcp.wire.rawsock only: it must start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import random
import select
import signal
import socket
import sys
import time

from rawtcp.wire.rawsock import PACKET_OUTGOING, open_receive_all_socket, open_send_socket

_MAX_FRAME = 65536


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop()


class Impairment:
    """Decides the fate of each frame: a list of (due time, frame) to send (empty: lost)."""

    def __init__(self, loss: float = 0, delay_ms: float = 0, jitter_ms: float = 0, reorder: float = 0,
                 duplicate: float = 0, corrupt: float = 0, rng: random.Random | None = None) -> None:
        self.loss, self.duplicate = loss / 100, duplicate / 100
        self.corrupt, self.reorder = corrupt / 100, reorder / 100
        self.delay, self.jitter = delay_ms / 1000, jitter_ms / 1000
        self.rng = rng or random.Random()

    def fate(self, frame: bytes, now: float) -> list[tuple[float, bytes]]:
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            return []
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        out = []
        for _ in range(copies):
            data = frame
            if self.corrupt and rng.random() < self.corrupt and len(frame) > 34:
                # Flip one bit past the Ethernet + IPv4 headers: the frame still routes, its checksum fails.
                pos = rng.randrange(34, len(frame))
                data = frame[:pos] + bytes([frame[pos] ^ (1 << rng.randrange(8))]) + frame[pos + 1:]
            if self.reorder and rng.random() < self.reorder:
                due = now
            else:
                due = now + max(0.0, self.delay + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0))
            out.append((due, data))
        return out


def _send(tx: socket.socket, frame: bytes) -> None:
    with contextlib.suppress(OSError):  # e.g. ENOBUFS: a lost frame, as on a real link
        tx.send(frame)


def run(in_if: str, out_if: str, impairment: Impairment) -> int:
    rx = open_receive_all_socket(in_if)
    # Skipping the qdisc also skips the egress redirect that brought the frame here: no loop.
    tx = open_send_socket(out_if)
    queue: list[tuple[float, int, bytes]] = []
    order = itertools.count()
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _send(tx, heapq.heappop(queue)[2])
        timeout = max(0.0, queue[0][0] - now) if queue else None
        ready, _, _ = select.select([rx], [], [], timeout)
        if not ready:
            continue
        for _ in range(256):  # bounded batch, then send what is due
            try:
                frame, addr = rx.recvfrom(_MAX_FRAME)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            now = time.monotonic()
            for due, data in impairment.fate(frame, now):
                if due <= now:  # no delay, or reordered: goes at once, overtaking the delayed ones
                    _send(tx, data)
                else:
                    heapq.heappush(queue, (due, next(order), data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rawtcp.lab.relay", description=__doc__.split("\n")[0])
    parser.add_argument("--in", dest="in_if", required=True, help="interface the redirected frames arrive on")
    parser.add_argument("--out", dest="out_if", required=True, help="the lab link to send them on")
    for name in ("loss", "delay", "jitter", "reorder", "duplicate", "corrupt"):
        parser.add_argument(f"--{name}", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible runs)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    impairment = Impairment(args.loss, args.delay, args.jitter, args.reorder, args.duplicate, args.corrupt,
                            rng=random.Random(args.seed))
    try:
        return run(args.in_if, args.out_if, impairment)
    except _Stop:
        return 0
    except OSError as exc:
        print(f"relay failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
