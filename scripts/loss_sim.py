#!/usr/bin/env python3
"""Loss recovery in simulated time: rawtcp's core sending to rawtcp's core over the lab relay's impairment
model, many seeded runs in a second or two, no root and no network.

    .venv/bin/python scripts/loss_sim.py [--runs 40] [--bytes 65536] [--loss 10] [--reorder 10]
                                         [--duplicate 5] [--delay 50] [--jitter 20] [--quickack]

What it is for: trying a change to rawtcp/core/recovery.py or the endpoint's timers before the real
benchmark (`scripts/bench.py --only loss`), whose runs take minutes and whose kernel baseline is noisy.
The receiver here is rawtcp's core, not Linux, so absolute times differ from the benchmark's; compare
a change against its parent, same seeds. Prints the median, mean and 90th percentile transfer time
(first byte sent until every byte is ACKed) and the sender's median retransmissions.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rawtcp.core import Endpoint, EndpointConfig, State
from rawtcp.lab.relay import Impairment

SIM_LIMIT = 3600.0  # simulated seconds; a run still going then counts as that long


def transfer(seed: int, nbytes: int, settings: dict[str, float], quickack: bool) -> tuple[float, int]:
    """One transfer; returns (simulated seconds, segments the sender resent)."""
    paths = {"a": Impairment(rng=random.Random(seed), **settings),
             "b": Impairment(rng=random.Random(seed + 1_000_003), **settings)}
    ends = {"a": Endpoint(EndpointConfig.linux_like(40000, remote_port=8080, isn=1000, max_retries=100)),
            "b": Endpoint(EndpointConfig.linux_like(8080, isn=5000, max_retries=100, delayed_ack=not quickack))}
    flight: list[tuple[float, int, str, object]] = []
    count = 0
    now = 0.0

    def pull() -> None:
        nonlocal count
        for name, ep in ends.items():
            for seg in ep.segments_to_send(now):
                for due, _ in paths[name].fate(b"", now):
                    count += 1
                    heapq.heappush(flight, (max(due, now + 1e-4), count, name, seg))

    def step() -> bool:
        """Advance to the next event; False when nothing is left to happen."""
        nonlocal now
        pull()
        times = [t for t in (ends["a"].next_timer(), ends["b"].next_timer()) if t is not None]
        if flight:
            times.append(flight[0][0])
        if not times:
            return False
        now = max(now, min(times))
        while flight and flight[0][0] <= now:
            _, _, src, seg = heapq.heappop(flight)
            ends["b" if src == "a" else "a"].receive(seg, now)  # type: ignore[arg-type]
        for ep in ends.values():
            ep.handle_timer(now)
            ep.read()
        return True

    a = ends["a"]
    ends["b"].open_passive(0.0)
    a.open_active(0.0)
    while a.state is not State.ESTABLISHED and now < SIM_LIMIT and step():
        pass
    start = now
    a.send(bytes(nbytes), now)
    while (a.in_flight or a.unsent) and now - start < SIM_LIMIT and step():
        pass
    return now - start, a.retransmits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--bytes", dest="nbytes", type=int, default=64 * 1024)
    ap.add_argument("--loss", type=float, default=10.0)
    ap.add_argument("--reorder", type=float, default=10.0)
    ap.add_argument("--duplicate", type=float, default=5.0)
    ap.add_argument("--delay", type=float, default=50.0, help="one-way delay, ms")
    ap.add_argument("--jitter", type=float, default=20.0, help="ms either side of the delay")
    ap.add_argument("--quickack", action="store_true", help="the receiver ACKs every segment (TCP_QUICKACK)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.nbytes < 1:
        ap.error("--runs and --bytes must be positive")
    settings = {"loss": args.loss, "reorder": args.reorder, "duplicate": args.duplicate,
                "delay_ms": args.delay, "jitter_ms": args.jitter}
    results = [transfer(seed, args.nbytes, settings, args.quickack) for seed in range(args.runs)]
    times = sorted(t for t, _ in results)
    print(f"{args.runs} runs, {args.nbytes} B, {args.loss:g}% loss, {args.reorder:g}% reorder, "
          f"{args.duplicate:g}% dup, {args.delay:g}±{args.jitter:g} ms: median {statistics.median(times):.3f} s, "
          f"mean {statistics.mean(times):.3f} s, p90 {times[int(0.9 * (len(times) - 1))]:.3f} s; "
          f"retransmissions median {statistics.median(r for _, r in results):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
