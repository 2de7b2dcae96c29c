# Lab 13: why the ISN is random. If ISNs were predictable (say, starting at 0 or a global counter),
# an attacker could forge segments that fit an existing connection without seeing it, and old
# duplicates of a previous connection on the same ports could be taken for new data. Linux
# computes each ISN as a keyed hash of the 4-tuple (RFC 6528) plus a clock ticking every 64 ns.
# So five connections from five source ports get five unrelated ISNs, while two SYNs on the *same*
# 4-tuple get ISNs that differ only by the time between them (divided by 64 ns), which keeps a new
# incarnation ahead of the old one's sequence numbers.
"""Lab 13 (Python scenario): the kernel's ISNs across connections and over time."""

from __future__ import annotations

import itertools
import time

CONNECTIONS = 5


def run(sc) -> None:  # type: ignore[no-untyped-def]
    sc.syscall("socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    sc.syscall("setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
    sc.syscall("bind(3, ..., ...) = 0")
    sc.syscall("listen(3, 16) = 0")

    isns = []
    for _ in range(CONNECTIONS):
        port = sc.peer_port()
        sc.send(port, "S", seq=0, options=[("MSS", 1460)])
        isns.append((port, sc.expect(port, "S.").seq))
        sc.send(port, "R", seq=1)  # abandon the half-open connection: the port is free again
    for port, isn in isns:
        sc.note(f"peer port {port}: kernel ISN {isn:10d} ({isn:#010x})")
    values = [isn for _, isn in isns]
    gaps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(values)]
    if len(set(values)) != len(values) or max(values) - min(values) < 1 << 20:
        raise sc.fail(f"ISNs of different connections should be scattered over 2**32, got {values}")
    if len(set(gaps)) == 1:
        raise sc.fail(f"ISNs advance by a constant step {gaps[0]}: predictable")

    # The same 4-tuple again, a little later: the hash is the same, only the clock has moved on.
    port, first = isns[0]
    t0 = time.monotonic()
    time.sleep(0.2)
    sc.send(port, "S", seq=0, options=[("MSS", 1460)])
    again = sc.expect(port, "S.").seq
    elapsed = time.monotonic() - t0
    step = (again - first) & 0xFFFFFFFF
    sc.note(f"peer port {port} again: ISN {again} = previous + {step} "
            f"(about {step * 64 / 1e9:.2f} s of a 64 ns clock)")
    if not 0 < step < (elapsed + 5.0) * 1e9 / 64:
        raise sc.fail(f"same 4-tuple: ISN moved by {step}, expected a small clock-driven step")
