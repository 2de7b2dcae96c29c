"""`rawtcp run DIR|FILE...` as a suite: variants, -j, summary, --json, --junit, --timeout, --retries,
-D and --check, against the real kernel (the project's own scripts in tests/script/pkt/suite etc.).

Root for everything but --check, which runs as uid 65534. Other rawtcp runs may share the machine:
what is "left behind" is judged by the processes this test's command started (seen while it ran).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PKT = ROOT / "tests" / "script" / "pkt"
SUITE = PKT / "suite"
HANG = PKT / "hang"
CHECK = PKT / "check"
DEFINE = PKT / "define" / "defined-len.pkt"
VARIANTS = ["ipv4", "ipv4-mapped-ipv6", "ipv6"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
WRONG_ACK = "wrong-ack.pkt:7: error handling packet: live packet field tcp_ack: expected: 5 vs actual: 1"

# what each fixture in SUITE does in each mode: pass, fail, or not run (v4/v6 names)
EXPECTED = {
    "active.pkt": {"ipv4": "pass", "ipv4-mapped-ipv6": "pass", "ipv6": "pass"},
    "handshake-v4.pkt": {"ipv4": "pass", "ipv4-mapped-ipv6": "pass"},
    "handshake-v6.pkt": {"ipv6": "pass"},
    "passive.pkt": {"ipv4": "pass", "ipv4-mapped-ipv6": "pass", "ipv6": "pass"},
    "wrong-ack.pkt": {"ipv4": "fail", "ipv4-mapped-ipv6": "fail", "ipv6": "fail"},
}
PASSING = [SUITE / name for name in ("active.pkt", "handshake-v4.pkt", "handshake-v6.pkt", "passive.pkt")]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


class Tracked:
    """A finished ``rawtcp`` run, with every descendant process and namespace seen while it ran."""

    def __init__(self, returncode: int, stdout: str, stderr: str, pid: int, cmdlines: dict[int, str],
                 parents: dict[int, int], max_children: int, namespaces: set[str], seconds: float) -> None:
        self.returncode, self.stdout, self.stderr, self.pid = returncode, stdout, stderr, pid
        self.cmdlines, self.max_children, self.namespaces, self.seconds = cmdlines, max_children, namespaces, seconds
        self.parents = parents
        self.pids = set(cmdlines)

    def started(self, what: str) -> list[int]:
        """Descendants that started a command line containing ``what``. A child seen between its fork and
        its exec still shows its parent's command line: it is the parent's, not a new start."""
        return [pid for pid, cmd in self.cmdlines.items()
                if what in cmd and what not in self.cmdlines.get(self.parents.get(pid, 0), "")]

    @property
    def out(self) -> str:
        return self.stdout + self.stderr


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    out[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return out


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def _netns() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


def rawtcp(*args: str, prefix: tuple[str, ...] = (), timeout: float = 120) -> Tracked:
    started = time.monotonic()
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "rawtcp", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd="/")
    cmdlines: dict[int, str] = {}
    seen_parents: dict[int, int] = {}
    namespaces: set[str] = set()
    max_children = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal max_children
        while not done.is_set():
            parents = _parents()
            for pid in _descendants(proc.pid, parents):
                cmdlines[pid] = _cmdline(pid) or cmdlines.get(pid, "")
                seen_parents.setdefault(pid, parents[pid])
            children = [p for p, pp in parents.items() if pp == proc.pid]
            max_children = max(max_children, len(children))
            namespaces.update(_netns())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        watcher.join()
    return Tracked(proc.returncode, out, err, proc.pid, cmdlines, seen_parents, max_children, namespaces,
                   time.monotonic() - started)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ours(names: set[str], pids: set[int]) -> set[str]:
    return {n for n in names if (m := re.match(r"rtt-run-(\d+)-\d+-[cs]$", n)) and int(m[1]) in pids}


def assert_nothing_left_behind(run: Tracked) -> None:
    pids = run.pids | {run.pid}
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "processes of the run (jobs, helpers) outlived it"
    assert not _ours(_netns(), pids), "namespaces of the run are still there"
    nft = subprocess.run(["nft", "list", "table", "inet", "rawtcp"], capture_output=True, text=True)
    left = {int(p) for p in re.findall(r"pid=(\d+)", nft.stdout)} & pids
    assert not left, f"nft entries of pids {left} left in the root namespace"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def table(stdout: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(header, {script: cells}, total lines) of the summary table after the progress lines."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["script"])
    header = lines[start].split()
    rows: dict[str, list[str]] = {}
    i = start + 1
    while lines[i].strip():
        cells = lines[i].split()
        name, rest = cells[0], cells[1:]
        merged: list[str] = []
        while rest:  # "pass 0.5s" is one cell, "-" another
            if rest[0] == "-":
                merged.append("-")
                rest = rest[1:]
            else:
                merged.append(rest[0])
                rest = rest[2:]
        rows[name] = merged
        i += 1
    totals = []
    for line in lines[i + 1:]:
        if not line.strip():
            break
        totals.append(line)
    return header, rows, totals


# -- the suite: variants, -j, summary, exit status ---------------------------------------------------------


def test_suite_in_all_variants_summary_totals_junit_and_exit_1(tmp_path: Path) -> None:
    junit = tmp_path / "report.xml"
    run = rawtcp("run", str(SUITE), "--variants", "all", "-j", "2", "--junit", str(junit))
    assert run.returncode == 1, run.out
    # progress: one line per job that ran, and no more
    progress = [line for line in run.stdout.splitlines() if re.match(r"(ok|FAIL|ERROR|TIMEOUT) ", line)]
    assert len(progress) == sum(len(v) for v in EXPECTED.values()) == 12
    assert "FAIL    wrong-ack.pkt (ipv6)" in run.stdout
    # the table: scripts down, variants across, "-" where a script does not run
    header, rows, totals = table(run.stdout)
    assert header == ["script", *VARIANTS]
    assert set(rows) == set(EXPECTED)
    for name, cells in rows.items():
        want = [{"pass": "pass", "fail": "FAIL"}.get(EXPECTED[name].get(v, "-"), "-") for v in VARIANTS]
        assert cells == want, (name, cells)
    assert [t.split(" (")[0] for t in totals] == ["ipv4: 3 of 4 passed", "ipv4-mapped-ipv6: 3 of 4 passed",
                                                 "ipv6: 3 of 4 passed"]
    # first errors listed after the table
    tail = run.stdout.split("failures (first error):", 1)[1]
    assert sum(WRONG_ACK in line for line in tail.splitlines()) == 3
    # -j 2: two jobs at a time, never more
    assert run.max_children == 2
    # JUnit: one testsuite per variant, the failing script's first error
    tree = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in tree.iter("testsuite")}
    assert list(suites) == VARIANTS
    for variant, suite in suites.items():
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        assert set(cases) == {n for n, modes in EXPECTED.items() if variant in modes}
        assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "0"
        failure = cases["wrong-ack.pkt"].find("failure")
        assert failure is not None and failure.get("message", "").endswith(WRONG_ACK)
        assert all(c.find("failure") is None for n, c in cases.items() if n != "wrong-ack.pkt")
    assert_nothing_left_behind(run)


def test_suite_all_passing_exits_0() -> None:
    run = rawtcp("run", *map(str, PASSING), "--variants", "all", "-j", "2")
    assert run.returncode == 0, run.out
    _header, rows, totals = table(run.stdout)
    assert rows["handshake-v6.pkt"] == ["-", "-", "pass"]
    assert rows["handshake-v4.pkt"] == ["pass", "pass", "-"]
    assert [t.split(" (")[0] for t in totals] == ["ipv4: 3 of 3 passed", "ipv4-mapped-ipv6: 3 of 3 passed",
                                                 "ipv6: 3 of 3 passed"]
    assert "failures" not in run.stdout


def test_suite_json_one_object_per_script_and_variant_then_summary() -> None:
    run = rawtcp("run", str(SUITE), "--variants", "ipv4,ipv6", "-j", "2", "--json")
    assert run.returncode == 1, run.out
    objects = json_lines(run.stdout)
    *jobs, summary = objects
    got = {(o["script"], o["variant"]): o for o in jobs}
    assert len(got) == len(jobs)  # one object each
    want = {(n, v): r for n, modes in EXPECTED.items() for v, r in modes.items() if v in ("ipv4", "ipv6")}
    assert {k: o["result"] for k, o in got.items()} == want
    assert all(o["attempts"] == 1 and o["path"] == str(SUITE / o["script"]) for o in jobs)
    assert got[("wrong-ack.pkt", "ipv4")]["error"].endswith(WRONG_ACK)
    assert got[("wrong-ack.pkt", "ipv4")]["exit_code"] == 1
    assert summary == {"summary": {"ipv4": _counts(3, 4, fail=1), "ipv6": _counts(3, 4, fail=1)},
                       "failed": 2, "stack": "linux"}


def _counts(passed: int, total: int, *, fail: int = 0, unsupported: int = 0, error: int = 0,
            timeout: int = 0) -> dict[str, int]:
    """One variant's line of the JSON summary: the totals, and each outcome counted apart."""
    return {"passed": passed, "total": total, "pass": passed, "fail": fail, "unsupported": unsupported,
            "error": error, "timeout": timeout}


def test_single_variant_over_a_v6_script_runs_nothing_for_ipv4() -> None:
    run = rawtcp("run", str(SUITE / "handshake-v6.pkt"), str(SUITE / "handshake-v4.pkt"), "--variants", "ipv6",
                 "--json")
    assert run.returncode == 0, run.out
    *jobs, summary = json_lines(run.stdout)
    assert [(o["script"], o["variant"], o["result"]) for o in jobs] == [("handshake-v6.pkt", "ipv6", "pass")]
    assert summary["summary"] == {"ipv6": _counts(1, 1)}


# -- time limit, retries ---------------------------------------------------------------------------------


def test_hanging_scripts_are_stopped_reported_as_timeout_and_cleaned_up() -> None:
    run = rawtcp("run", str(HANG), "-j", "2", "--timeout", "2", "--json")
    assert run.returncode == 1, run.out
    *jobs, summary = json_lines(run.stdout)
    assert {o["script"]: o["result"] for o in jobs} == {"wait-any.pkt": "timeout", "blocked-read.pkt": "timeout"}
    assert all(o["error"].startswith("still running after 2 s") for o in jobs)
    assert summary["failed"] == 2
    assert run.seconds < 15, "the jobs were not stopped at their time limit"
    # the jobs did make labs and helpers, and none of it is left
    assert _ours(run.namespaces, run.pids), "no lab was seen: the check below would prove nothing"
    assert len(run.started("rawtcp.script.syscall_helper")) == 2  # one helper per job
    assert_nothing_left_behind(run)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_timeout_in_the_text_report() -> None:
    run = rawtcp("run", str(HANG / "blocked-read.pkt"), "--variants", "ipv4,ipv6", "--timeout", "1.5", "-j", "2")
    assert run.returncode == 1, run.out
    _header, rows, totals = table(run.stdout)
    assert rows["blocked-read.pkt"] == ["TIMEOUT", "TIMEOUT"]
    assert totals[0].startswith("ipv4: 0 of 1 passed")
    assert "blocked-read.pkt (ipv6): timeout: still running after 1.5 s" in run.stdout
    assert_nothing_left_behind(run)


def test_retries_rerun_a_failing_script_and_count_attempts() -> None:
    run = rawtcp("run", str(SUITE / "wrong-ack.pkt"), str(SUITE / "passive.pkt"), "--retries", "2", "--json")
    assert run.returncode == 1, run.out
    *jobs, _summary = json_lines(run.stdout)
    by = {o["script"]: o for o in jobs}
    assert by["wrong-ack.pkt"]["result"] == "fail"
    assert by["wrong-ack.pkt"]["attempts"] == 3
    assert len(by["wrong-ack.pkt"]["earlier_errors"]) == 2
    assert all(e.endswith(WRONG_ACK) for e in by["wrong-ack.pkt"]["earlier_errors"])
    assert (by["passive.pkt"]["result"], by["passive.pkt"]["attempts"]) == ("pass", 1)
    # three runs of wrong-ack.pkt, one of passive.pkt, each a child process of its own
    jobs_started = [run.cmdlines[p] for p in run.started("rawtcp.cli run")]
    assert sorted(cmd.split()[-1] for cmd in jobs_started) == ["passive.pkt"] + ["wrong-ack.pkt"] * 3


# -- -D ----------------------------------------------------------------------------------------------


def test_defines_substitute_in_a_single_run() -> None:
    run = rawtcp("run", "-D", "LEN=40", "-D", "PEER_MSS=1000", str(DEFINE))
    assert run.returncode == 0, run.out
    run = rawtcp("run", "-D", "LEN=39", "-D", "PEER_MSS=1000", str(DEFINE))
    assert run.returncode == 1 and "defined-len.pkt:13: runtime error in read call: Expected result 39 but got 40" \
        in run.stderr, run.out
    # PEER_MSS reaches the SYN's MSS option: the kernel's send MSS follows it, and the %{ }% block says so
    run = rawtcp("run", "-D", "LEN=40", "-D", "PEER_MSS=900", str(DEFINE))
    assert run.returncode == 1 and "defined-len.pkt:10: error in Python code: AssertionError: 900" in run.stderr


def test_defines_reach_suite_jobs() -> None:
    run = rawtcp("run", str(DEFINE.parent), "--variants", "all", "-D", "LEN=40", "-D", "PEER_MSS=1000", "--json")
    assert run.returncode == 0, run.out
    *jobs, summary = json_lines(run.stdout)
    assert [o["result"] for o in jobs] == ["pass"] * 3 and summary["failed"] == 0
    run = rawtcp("run", str(DEFINE.parent), "--variants", "all", "-D", "LEN=7", "-D", "PEER_MSS=1000", "--json")
    assert run.returncode == 1
    *jobs, _summary = json_lines(run.stdout)
    assert all("Expected result 7 but got 40" in o["error"] for o in jobs)


@pytest.mark.parametrize("target", [str(DEFINE), str(DEFINE.parent)], ids=["single", "suite"])
@pytest.mark.parametrize("bad", ["LEN", "=40", ""])
@pytest.mark.unprivileged
def test_bad_define_is_one_line_exit_2(bad: str, target: str) -> None:
    # no root needed to refuse it, and nothing runs
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "run", "-D", bad, target], capture_output=True,
                          text=True, env=_env(), timeout=60, cwd="/")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rawtcp: error: ") and "-D" in lines[0] and "NAME=VALUE" in lines[0]
    assert proc.stdout == ""


# -- --check as nobody ---------------------------------------------------------------------------------


def _nobody_can_run() -> None:
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import rawtcp"], capture_output=True, cwd="/",
                           env=_env())
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot read the interpreter or the package: {probe.stderr.decode()[-200:]}")


MODES = ("ipv4", "ipv4-mapped-ipv6", "ipv6")  # --variants all, in this order; --check names each


def test_check_as_nobody_reports_problems_one_line_each_exit_2() -> None:
    _nobody_can_run()
    run = rawtcp("run", "--check", "--variants", "all", str(CHECK), prefix=tuple(NOBODY))
    assert run.returncode == 2, run.out
    assert "needs root" not in run.out and "Traceback" not in run.out
    problems = [line for line in run.stderr.splitlines() if line.strip()]
    by_script: dict[str, list[str]] = {}
    for line in problems:
        assert line.startswith(str(CHECK) + "/"), line
        name, lineno, text = line[len(str(CHECK)) + 1:].split(":", 2)
        assert lineno.isdigit() and text.strip(), line
        by_script.setdefault(name, []).append(f"{lineno}:{text.strip()}")
    assert "good.pkt" not in by_script
    assert by_script["late-start.pkt"] == [f"2:first event should be at time 0 [{mode}]" for mode in MODES]
    assert by_script["unsupported-call.pkt"] == [f"3:system call 'mmap' is not supported [{mode}]" for mode in MODES]
    assert len(by_script["backward.pkt"]) == 3 and "time goes backward" in by_script["backward.pkt"][0]
    assert len(by_script["bad-option.pkt"]) == 3 and "tolerance_usecs" in by_script["bad-option.pkt"][0]
    # an ICMPv6 name: a problem in ipv4 and ipv4-mapped-ipv6 only
    assert by_script["ptb-icmp.pkt"] == [f"7:bad ICMP type packet_too_big [{mode}]" for mode in MODES[:2]]
    assert run.stdout.strip() == "14 script run(s) have problems"
    assert not _ours(run.namespaces, run.pids | {run.pid}), "--check made a lab"


def test_check_json_per_variant_as_nobody() -> None:
    _nobody_can_run()
    run = rawtcp("run", "--check", "--json", "--variants", "all", str(CHECK / "ptb-icmp.pkt"),
                 str(CHECK / "good.pkt"), prefix=tuple(NOBODY))
    assert run.returncode == 2, run.out
    got = {(Path(o["script"]).name, o["variant"]): (o["ok"], len(o["problems"])) for o in json_lines(run.stdout)}
    assert got == {("ptb-icmp.pkt", "ipv4"): (False, 1), ("ptb-icmp.pkt", "ipv4-mapped-ipv6"): (False, 1),
                   ("ptb-icmp.pkt", "ipv6"): (True, 0), ("good.pkt", "ipv4"): (True, 0),
                   ("good.pkt", "ipv4-mapped-ipv6"): (True, 0), ("good.pkt", "ipv6"): (True, 0)}


def test_check_valid_scripts_and_defines_as_nobody() -> None:
    _nobody_can_run()
    run = rawtcp("run", "--check", "--variants", "all", str(SUITE), str(CHECK / "good.pkt"), prefix=tuple(NOBODY))
    assert run.returncode == 0, run.out
    assert run.stdout.strip() == "all scripts are valid" and run.stderr == ""
    # a symbol the script needs: missing is a problem, -D makes it valid
    run = rawtcp("run", "--check", str(DEFINE), prefix=tuple(NOBODY))
    assert run.returncode == 2 and "defined-len.pkt:6:" in run.stderr and "PEER_MSS" in run.stderr, run.out
    run = rawtcp("run", "--check", "-D", "LEN=4", "-D", "PEER_MSS=1000", str(DEFINE), prefix=tuple(NOBODY))
    assert run.returncode == 0, run.out
    run = rawtcp("run", "--check", "-D", "LEN", str(DEFINE), prefix=tuple(NOBODY))
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "NAME=VALUE" in run.stderr


def test_missing_script_is_one_line_exit_2(tmp_path: Path) -> None:
    run = rawtcp("run", str(SUITE), str(tmp_path / "nope.pkt"), "--variants", "all")
    assert run.returncode == 2
    assert run.stderr.strip() == f"rawtcp: error: {tmp_path / 'nope.pkt'}: cannot read script: no such file or " \
                                 "directory"
    assert not _ours(run.namespaces, run.pids | {run.pid})


# -- exit status of a suite with bad scripts; single runs with suite options ---------------------------------


def test_suite_with_a_bad_script_only_errors_exits_2_failures_win() -> None:
    bad = PKT / "bad-syntax.pkt"
    run = rawtcp("run", str(bad), str(SUITE / "passive.pkt"), "--json")
    assert run.returncode == 2, run.out
    *jobs, summary = json_lines(run.stdout)
    by = {o["script"]: o for o in jobs}
    assert by["bad-syntax.pkt"]["result"] == "error" and by["bad-syntax.pkt"]["exit_code"] == 2
    assert by["bad-syntax.pkt"]["error"] == f"{bad}:2: bad flags 'Q'"
    assert by["suite/passive.pkt"]["result"] == "pass"
    assert summary["failed"] == 1
    # a failure and an error together: the failure's exit status
    run = rawtcp("run", str(bad), str(SUITE / "wrong-ack.pkt"), "--json")
    assert run.returncode == 1, run.out


def test_single_run_junit(tmp_path: Path) -> None:
    junit = tmp_path / "one.xml"
    run = rawtcp("run", "--ip-version", "ipv6", "--junit", str(junit), str(SUITE / "wrong-ack.pkt"))
    assert run.returncode == 1, run.out
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [("ipv6", "1", "1")]
    failure = suites[0].find("testcase/failure")
    assert failure is not None and failure.get("message", "").endswith(WRONG_ACK)


def test_suite_where_no_script_applies_runs_nothing() -> None:
    run = rawtcp("run", str(SUITE / "handshake-v4.pkt"), str(PKT / "modes" / "icmp-frag-needed-v4.pkt"),
                 "--variants", "ipv6", "--json")
    assert run.returncode == 0, run.out
    assert json_lines(run.stdout) == [{"summary": {"ipv6": _counts(0, 0)}, "failed": 0, "stack": "linux"}]
    assert not _ours(run.namespaces, run.pids | {run.pid})


def test_v4_script_alone_is_not_run_over_ipv6() -> None:
    run = rawtcp("run", str(SUITE / "handshake-v4.pkt"), "--variants", "ipv6", "--json")
    assert run.returncode == 0, run.out
    assert '"ladder"' not in run.stdout
    assert not _ours(run.namespaces, run.pids | {run.pid}), "a lab was made: the script ran over IPv6"


@pytest.mark.parametrize("variants", ["", "ipv5", "all,ipv4", "ipv4;ipv6"])
@pytest.mark.unprivileged
def test_bad_variants_is_one_line_exit_2(variants: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "run", "--variants", variants, str(SUITE)],
                          capture_output=True, text=True, env=_env(), timeout=60, cwd="/")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rawtcp: error: ") and "--variants" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_a_variant_named_twice_runs_once() -> None:
    run = rawtcp("run", str(SUITE / "passive.pkt"), str(SUITE / "handshake-v4.pkt"), "--variants", "ipv4,ipv4",
                 "--json")
    assert run.returncode == 0, run.out
    *jobs, summary = json_lines(run.stdout)
    assert sorted((o["script"], o["variant"]) for o in jobs) == [("handshake-v4.pkt", "ipv4"), ("passive.pkt", "ipv4")]
    assert summary["summary"] == {"ipv4": _counts(2, 2)}
