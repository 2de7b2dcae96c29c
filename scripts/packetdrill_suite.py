#!/usr/bin/env python3
"""packetdrill's own suite under ``rawtcp run``, beside packetdrill itself: how many of the scripts that
packetdrill passes on this machine rawtcp passes too, per address mode, with the wall time of each.

    packetdrill_suite.py DIR [--packetdrill BINARY] [--native NATIVE.txt] [--variants ipv4,ipv6]
                         [-j 2] [--only-native] [--json FILE] [--junit FILE] [--runs N]

DIR is a packetdrill checkout's ``gtests/net/tcp`` (or ``shared/packetdrill/tcp``). What "packetdrill
passes here" means comes from ``--packetdrill BINARY`` (run on the same scripts in the same run, each
in a private network namespace with run_all.py's arguments) or from a ``NATIVE.txt`` list
(``variant script pass|fail`` per line; found beside DIR by default). ``--only-native`` runs rawtcp
on the natively passing scripts only (what CI does) and exits 1 when one of them fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rawtcp.script.suite import (
    IP_VERSIONS,
    Job,
    JobResult,
    SuiteOptions,
    find_scripts,
    plan,
    progress_line,
    run_suite,
    write_junit,
)

# run_all.py's arguments for packetdrill itself, per variant (its addresses live only inside the
# private namespace each native run gets: packetdrill's tun device never leaves it).
PACKETDRILL_ARGS = {
    "ipv4": "--ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0 "
            "--remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable "
            "-D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR",
    "ipv6": "--ip_version=ipv6 --mtu=1520 --local_ip=fd3d:0a0b:17d6::1 --gateway_ip=fd3d:0a0b:17d6:8888::1 "
            "--remote_ip=fd3d:fa7b:d17d::1 -D TFO_COOKIE=c1d1e9742a47a9bc -D CMSG_LEVEL_IP=SOL_IPV6 "
            "-D CMSG_TYPE_RECVERR=IPV6_RECVERR",
    "ipv4-mapped-ipv6": "--ip_version=ipv4-mapped-ipv6 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1 "
                        "--netmask_ip=255.255.0.0 --remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb "
                        "-D CODE=host_unreachable -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR",
}
NATIVE_TIMEOUT = 180.0


def read_native(path: Path) -> dict[tuple[str, str], bool]:
    """NATIVE.txt: ``variant script pass|fail`` per line -> {(variant, script): passed}."""
    table = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[(parts[0], parts[1])] = parts[2] == "pass"
    return table


def run_packetdrill(binary: str, job: Job) -> JobResult:
    """packetdrill itself on one script, in a fresh network namespace (``unshare -n``), as run_all.py does."""
    inner = f"ip link set lo up && exec {binary} --send_omit_free {PACKETDRILL_ARGS[job.variant]} {job.script.name}"
    started = time.monotonic()
    try:
        proc = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=job.script.parent, capture_output=True,
                              text=True, errors="replace", timeout=NATIVE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return JobResult(job, "timeout", time.monotonic() - started, "packetdrill timed out")
    seconds = time.monotonic() - started
    if proc.returncode == 0:
        return JobResult(job, "pass", seconds, exit_code=0)
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return JobResult(job, "fail", seconds, lines[0] if lines else f"exit {proc.returncode}", proc.returncode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="packetdrill's gtests/net/tcp (or a subdirectory, or scripts)", nargs="+")
    parser.add_argument("--packetdrill", metavar="BINARY", help="run packetdrill itself side by side")
    parser.add_argument("--native", metavar="FILE", help="NATIVE.txt (default: beside DIR, if there)")
    parser.add_argument("--variants", default="ipv4,ipv4-mapped-ipv6,ipv6")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--only-native", action="store_true",
                        help="run rawtcp only on what packetdrill passes; exit 1 if any of those fails")
    parser.add_argument("--retries", type=int, default=0,
                        help="run a failing script again up to N times (as NATIVE.txt was measured: 3 tries)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the rawtcp suite N times (flakiness)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per script before it is stopped")
    parser.add_argument("--json", metavar="FILE", help="write every result and the totals as JSON")
    parser.add_argument("--junit", metavar="FILE", help="JUnit XML of the (last) rawtcp run")
    args = parser.parse_args()

    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in IP_VERSIONS]
    if bad:
        parser.error(f"unknown variant(s) {', '.join(bad)}")
    scripts = find_scripts(args.dir)
    jobs = plan(scripts, variants)
    root = Path(os.path.commonpath([str(s.parent) for s in scripts]))

    # What packetdrill passes: measured now (--packetdrill) or read from NATIVE.txt.
    native: dict[tuple[str, str], bool] = {}
    native_wall: dict[str, float] = {}
    native_results: list[JobResult] = []
    if args.packetdrill:
        binary = str(Path(args.packetdrill).resolve())
        for variant in variants:
            mine = [j for j in jobs if j.variant == variant]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                native_results += list(pool.map(lambda j: run_packetdrill(binary, j), mine))
            native_wall[variant] = time.monotonic() - started
        native = {(r.job.variant, r.job.name): r.passed for r in native_results}
    else:
        guess = [Path(args.native)] if args.native else [root.parent / "NATIVE.txt", root / "NATIVE.txt"]
        found = next((p for p in guess if p.is_file()), None)
        if found is None:
            parser.error("no NATIVE.txt found: give --native FILE or --packetdrill BINARY")
        table = read_native(found)
        # NATIVE.txt names scripts relative to the suite's top directory (tcp/)
        native = {(j.variant, j.name): table.get((j.variant, _suite_name(j.script)), False) for j in jobs}

    if args.only_native:
        jobs = [j for j in jobs if native.get((j.variant, j.name))]

    opts = SuiteOptions(variants=variants, jobs=args.jobs, timeout=args.timeout, retries=args.retries)
    runs: list[list[JobResult]] = []
    walls: list[dict[str, float]] = []
    for run in range(args.runs):
        results: list[JobResult] = []
        wall: dict[str, float] = {}
        for variant in variants:
            mine = [j for j in jobs if j.variant == variant]
            started = time.monotonic()
            results += run_suite(mine, opts, lambda r: print(progress_line(r), flush=True))
            wall[variant] = time.monotonic() - started
        runs.append(results)
        walls.append(wall)
        print(f"\n== run {run + 1} of {args.runs}")
        print(report(results, native, wall, native_wall, variants))

    if args.junit:
        write_junit(runs[-1], args.junit)
    if args.json:
        record = {"dir": [str(d) for d in args.dir], "variants": variants, "jobs": args.jobs,
                  "native_source": "packetdrill" if args.packetdrill else "NATIVE.txt",
                  "runs": [{"wall_seconds": w, "results": [r.to_dict() for r in res]} for res, w in zip(runs, walls,
                                                                                                      strict=True)],
                  "native": [r.to_dict() for r in native_results] or None,
                  "native_wall_seconds": native_wall or None,
                  "totals": [totals(res, native, variants) for res in runs]}
        Path(args.json).write_text(json.dumps(record, indent=1))
    regressions = [r for res in runs for r in res if native.get((r.job.variant, r.job.name)) and not r.passed]
    if regressions:
        print(f"\n{len(regressions)} run(s) of natively passing scripts failed under rawtcp:")
        for r in regressions:
            print(f"  {r.job.name} ({r.job.variant}): {r.outcome}: {r.error}")
    return 1 if regressions and args.only_native else 0


def _suite_name(script: Path) -> str:
    """The script's name below the suite's top (the directory holding common/), as NATIVE.txt writes it."""
    for parent in script.parents:
        if (parent / "common" / "defaults.sh").exists():
            return str(script.relative_to(parent))
    return script.name


def totals(results: list[JobResult], native: dict[tuple[str, str], bool], variants: list[str]) -> dict[str, dict]:
    out = {}
    for variant in variants:
        mine = [r for r in results if r.job.variant == variant]
        bar = [r for r in mine if native.get((variant, r.job.name))]
        out[variant] = {"ran": len(mine), "passed": sum(r.passed for r in mine),
                        "native_passing": sum(1 for (v, _), ok in native.items() if v == variant and ok),
                        "passed_of_native": sum(r.passed for r in bar),
                        "retried": sum(r.passed and r.attempts > 1 for r in mine)}
    return out


def report(results: list[JobResult], native: dict[tuple[str, str], bool], wall: dict[str, float],
           native_wall: dict[str, float], variants: list[str]) -> str:
    lines = []
    for variant, t in totals(results, native, variants).items():
        line = (f"{variant}: rawtcp passes {t['passed_of_native']} of the {t['native_passing']} scripts packetdrill "
                f"passes here ({t['passed']} of {t['ran']} run, {t['retried']} on a retry); "
                f"rawtcp {wall.get(variant, 0):.0f} s")
        if variant in native_wall:
            line += f", packetdrill {native_wall[variant]:.0f} s"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
