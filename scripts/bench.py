#!/usr/bin/env python3
"""The benchmark: rawtcp beside kernel sockets, scapy, hping3 and tshark, all in one run.

    sudo .venv/bin/python scripts/bench.py [--quick] [--json FILE] [--handshakes N] [--only SECTIONS] [--strict]

The harness lives in scripts/benchmark/ (outside the installed package; it uses rawtcp's public API):
rows.py (rawtcp driven by rawtcp.session.hub, the driver users run) and baselines.py (what it is set
beside), lossy.py and kernel_peer.py (the loss-recovery row), report.py (table and JSON record),
run.py (one run), compare.py and packet.py (stand-alone capture and packet benchmarks).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..")]  # the benchmark package, and the checkout's rawtcp

from benchmark.run import SECTION_HELP, SECTIONS, run_bench  # noqa: E402


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        what = f"unknown section {', '.join(unknown)}" if unknown else "no section"
        raise argparse.ArgumentTypeError(f"{what}: choose from {', '.join(SECTIONS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="rawtcp benchmark: rawtcp beside the kernel, scapy, hping3, tshark",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="sections:\n" + "\n".join(f"  {k:11} {v}" for k, v in SECTION_HELP.items()))
    ap.add_argument("--quick", action="store_true",
                    help="small counts and the short loss row (what CI runs; about 2 minutes)")
    ap.add_argument("--json", dest="json_path", metavar="FILE",
                    help="write the JSON record to FILE (default: a new file in the temporary directory)")
    ap.add_argument("--handshakes", type=int, metavar="N", help="handshakes for the latency/missed-replies rows")
    ap.add_argument("--only", type=_sections, default=SECTIONS, metavar="SECTIONS",
                    help="comma-separated sections to run (default: all), e.g. --only loss")
    ap.add_argument("--strict", action="store_true", help="exit 1 unless every target is met")
    args = ap.parse_args(argv)
    from rawtcp.errors import require_privileges

    require_privileges("the benchmark")

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # unwind, so the labs, their sessions and the nftables tables are removed

    signal.signal(signal.SIGTERM, on_term)
    try:
        met = run_bench(args.quick, args.json_path, args.handshakes, args.only)
    except KeyboardInterrupt:
        print("interrupted: the benchmark's labs and sessions are removed; no record written", file=sys.stderr)
        return 130

    # Not a pass/fail test (timings depend on the machine): a completed run exits 0 unless --strict.
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
