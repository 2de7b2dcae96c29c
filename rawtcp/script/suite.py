"""``rawtcp run DIR|FILE…``: many scripts, in several address modes, in parallel, with a summary.

Each (script, variant) job runs in a child ``rawtcp run --json`` of its own, started from the script's
own directory as packetdrill's run_all.py does (scripts reach ``../common/defaults.sh`` that way),
with the variant's ``-D`` defines. A child makes and removes its own pair of namespaces, so jobs run
side by side without sharing anything; one that outlives its time limit is stopped (SIGTERM first, so
it removes its namespaces and firewall entries, then SIGKILL) and reported as timed out. Against another
stack than Linux (``--stack pytcp``), a script asking for what that stack's socket API cannot express
is reported as ``unsupported`` (its child's one line, exit 2), apart from failures of the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rawtcp.script.errors import ScriptError

IP_VERSIONS = ("ipv4", "ipv4-mapped-ipv6", "ipv6")

# run_all.py's -D defines per variant. TFO_COOKIE is the cookie packetdrill's own addresses get under
# defaults.sh's key; the runner translates it (and any literal equal to it) to the lab's cookie.
VARIANT_DEFINES: dict[str, dict[str, str]] = {
    "ipv4": {"TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable", "CMSG_LEVEL_IP": "SOL_IP",
             "CMSG_TYPE_RECVERR": "IP_RECVERR"},
    "ipv4-mapped-ipv6": {"TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable",
                         "CMSG_LEVEL_IP": "SOL_IPV6", "CMSG_TYPE_RECVERR": "IPV6_RECVERR"},
    "ipv6": {"TFO_COOKIE": "c1d1e9742a47a9bc", "CMSG_LEVEL_IP": "SOL_IPV6", "CMSG_TYPE_RECVERR": "IPV6_RECVERR"},
}

UNSUPPORTED = "unsupported on stack "  # how the runner words an agent's "unsupported" (runner.unsupported)
DEFAULT_JOB_TIMEOUT = 180.0  # run_all.py's max_runtime: a backstop, the runner's own deadlines come first
_TERM_GRACE = 15.0  # seconds a stopped job gets to remove its namespaces before SIGKILL


def variant_applies(script: Path, variant: str) -> bool:
    """run_all.py's rule: ``*v6.pkt`` runs only over IPv6, ``*v4.pkt`` never over IPv6."""
    if script.name.endswith("v6.pkt"):
        return variant == "ipv6"
    if script.name.endswith("v4.pkt"):
        return variant != "ipv6"
    return True


def find_scripts(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``*.pkt`` under the given directories, and the given files, sorted, without duplicates."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for script in sorted(path.rglob("*.pkt")):
                found.setdefault(script.resolve(), None)
        elif path.is_file():
            found.setdefault(path.resolve(), None)
        else:
            raise ScriptError(str(raw), None, "cannot read script: no such file or directory")
    return list(found)


@dataclass(frozen=True)
class Job:
    script: Path
    variant: str
    name: str  # as shown: relative to the common root of the run


@dataclass
class JobResult:
    job: Job
    outcome: str  # pass | fail | error | timeout | unsupported (the stack's API cannot express a call)
    seconds: float
    error: str | None = None  # the first error, one line
    exit_code: int | None = None
    attempts: int = 1  # > 1: earlier tries failed (their first error is in ``retried``)
    retried: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"script": self.job.name, "path": str(self.job.script), "variant": self.job.variant,
                "result": self.outcome, "seconds": round(self.seconds, 3), "error": self.error,
                "exit_code": self.exit_code, "attempts": self.attempts, "earlier_errors": self.retried}


@dataclass
class SuiteOptions:
    variants: Sequence[str] = ("ipv4",)
    jobs: int = 1
    defines: dict[str, str] = field(default_factory=dict)  # the user's -D, over the variant's
    tolerance_usecs: int | None = None
    timeout: float = DEFAULT_JOB_TIMEOUT
    extra_args: Sequence[str] = ()
    stack: str = "linux"  # the stack under test, for every job (rawtcp.lab.stack.STACKS)
    # A failed or timed-out script is run again up to this many times (a shared machine's timing
    # noise; packetdrill's own baseline here was measured with up to three tries). Scripts that
    # needed a retry are reported as such.
    retries: int = 0


def plan(scripts: Sequence[Path], variants: Sequence[str]) -> list[Job]:
    root = Path(os.path.commonpath([str(s.parent) for s in scripts])) if scripts else Path(".")
    jobs = []
    for script in scripts:
        name = str(script.relative_to(root)) if script.is_relative_to(root) else str(script)
        jobs.extend(Job(script, variant, name) for variant in variants if variant_applies(script, variant))
    return jobs


def _child_command(job: Job, opts: SuiteOptions) -> list[str]:
    cmd = [sys.executable, "-m", "rawtcp.cli", "run", "--json", "--ip-version", job.variant]
    for name, value in {**VARIANT_DEFINES.get(job.variant, {}), **opts.defines}.items():
        cmd += ["-D", f"{name}={value}"]
    if opts.tolerance_usecs is not None:
        cmd += ["--tolerance-usecs", str(opts.tolerance_usecs)]
    if opts.stack != "linux":
        cmd += ["--stack", opts.stack]
    cmd += [*opts.extra_args, job.script.name]
    return cmd


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("rawtcp: error: ")
    return ""


def run_job(job: Job, opts: SuiteOptions) -> JobResult:
    """One script in one variant, in a child process started from the script's directory."""
    started = time.monotonic()
    proc = subprocess.Popen(_child_command(job, opts), cwd=job.script.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        out, err = _stop(proc)
        last = _first_line(err) or "no output"
        return JobResult(job, "timeout", time.monotonic() - started,
                         f"still running after {opts.timeout:g} s (stopped; last message: {last})")
    seconds = time.monotonic() - started
    verdict: dict[str, Any] = {}
    for line in out.splitlines():
        with contextlib.suppress(ValueError):
            candidate = json.loads(line)
            if isinstance(candidate, dict) and "result" in candidate:
                verdict = candidate
    if proc.returncode == 0 and verdict.get("result") == "pass":
        return JobResult(job, "pass", seconds, exit_code=0)
    error = _first_line(str(verdict.get("error") or _first_line(err) or f"exit status {proc.returncode}"))
    outcome = "fail" if proc.returncode == 1 else "error"
    if proc.returncode == 2 and UNSUPPORTED in error:
        outcome = "unsupported"  # what the stack cannot be asked, not what it did wrong
    return JobResult(job, outcome, seconds, error, proc.returncode)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the job's process group (the CLI unwinds and removes its lab), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=_TERM_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()


def run_suite(jobs: Sequence[Job], opts: SuiteOptions,
              on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run ``jobs`` ``opts.jobs`` at a time; results in the jobs' order, ``on_result`` as each ends."""
    lock = threading.Lock()

    def one(job: Job) -> JobResult:
        result = run_job(job, opts)
        earlier: list[str] = []
        while result.outcome in ("fail", "timeout") and len(earlier) < opts.retries:
            earlier.append(result.error or result.outcome)
            result = run_job(job, opts)
        result.attempts, result.retried = len(earlier) + 1, earlier
        if on_result is not None:
            with lock:
                on_result(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        return list(pool.map(one, jobs))


# ---------------------------------------------------------------------------------------------------
# reports


def progress_line(result: JobResult) -> str:
    word = {"pass": "ok", "fail": "FAIL", "error": "ERROR", "timeout": "TIMEOUT",
            "unsupported": "UNSUP"}[result.outcome]
    line = f"{word:<7} {result.job.name} ({result.job.variant}) {result.seconds:.1f} s"
    if result.attempts > 1:
        line += f" (try {result.attempts})"
    if result.error and not result.passed:
        line += f": {result.error}"
    return line


def summary_table(results: Sequence[JobResult], variants: Sequence[str]) -> str:
    """Scripts down, variants across (``pass 1.2`` / ``FAIL 3.4`` / ``-`` when not run), then totals."""
    by_script: dict[str, dict[str, JobResult]] = {}
    for result in results:
        by_script.setdefault(result.job.name, {})[result.job.variant] = result
    width = max([len("script"), *(len(name) for name in by_script)])
    cols = [max(len(v), 12) for v in variants]
    lines = ["  ".join([f"{'script':<{width}}", *(f"{v:<{c}}" for v, c in zip(variants, cols, strict=True))])]
    for name, row in by_script.items():
        cells = []
        for variant, col in zip(variants, cols, strict=True):
            res = row.get(variant)
            cell = "-" if res is None else f"{'pass' if res.passed else res.outcome.upper()} {res.seconds:.1f}s"
            cells.append(f"{cell:<{col}}")
        lines.append("  ".join([f"{name:<{width}}", *cells]).rstrip())
    lines.append("")
    for variant in variants:
        mine = [r for r in results if r.job.variant == variant]
        if not mine:
            continue
        passed = sum(r.passed for r in mine)
        wall = sum(r.seconds for r in mine)
        retried = sum(r.passed and r.attempts > 1 for r in mine)
        line = f"{variant}: {passed} of {len(mine)} passed ({wall:.0f} s of script time)"
        counts = outcome_counts(mine)
        if counts["unsupported"]:
            line += "; " + ", ".join(f"{counts[o]} {o}" for o in ("fail", "unsupported", "error", "timeout")
                                     if counts[o])
        lines.append(line + (f"; {retried} passed only on a retry" if retried else ""))
    return "\n".join(lines)


OUTCOMES = ("pass", "fail", "unsupported", "error", "timeout")


def outcome_counts(results: Sequence[JobResult]) -> dict[str, int]:
    """How many results had each outcome (every outcome present, zeros included)."""
    return {o: sum(r.outcome == o for r in results) for o in OUTCOMES}


def failures_text(results: Sequence[JobResult]) -> str:
    return "\n".join(f"{r.job.name} ({r.job.variant}): {r.outcome}: {r.error}" for r in results if not r.passed)


def write_junit(results: Sequence[JobResult], path: str) -> None:
    """JUnit XML, one testsuite per variant, so CI systems show each script and its first error."""
    root = ET.Element("testsuites", name="rawtcp run")
    for variant in dict.fromkeys(r.job.variant for r in results):
        mine = [r for r in results if r.job.variant == variant]
        suite = ET.SubElement(root, "testsuite", name=variant, tests=str(len(mine)),
                              failures=str(sum(r.outcome == "fail" for r in mine)),
                              errors=str(sum(r.outcome in ("error", "timeout") for r in mine)),
                              skipped=str(sum(r.outcome == "unsupported" for r in mine)),
                              time=f"{sum(r.seconds for r in mine):.3f}")
        for result in mine:
            case = ET.SubElement(suite, "testcase", classname=variant, name=result.job.name,
                                 time=f"{result.seconds:.3f}")
            if result.outcome == "fail":
                ET.SubElement(case, "failure", message=result.error or "").text = result.error
            elif result.outcome == "unsupported":  # not run to the end: nothing the stack did wrong
                ET.SubElement(case, "skipped", message=result.error or "").text = result.error
            elif not result.passed:
                ET.SubElement(case, "error", message=result.error or "", type=result.outcome).text = result.error
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
