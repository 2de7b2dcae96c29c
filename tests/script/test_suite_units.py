"""rawtcp.script.suite without root or network: which scripts run in which mode, job names, reports,
JUnit XML, and the job runner's verdicts, time limit and retries (with stand-in child commands)."""

from __future__ import annotations

import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rawtcp.script import suite
from rawtcp.script.errors import ScriptError
from rawtcp.script.suite import (
    IP_VERSIONS,
    VARIANT_DEFINES,
    Job,
    JobResult,
    SuiteOptions,
    find_scripts,
    plan,
    progress_line,
    run_job,
    run_suite,
    summary_table,
    variant_applies,
    write_junit,
)

# -- variant_applies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "runs_in"), [
    ("close.pkt", {"ipv4", "ipv4-mapped-ipv6", "ipv6"}),
    ("ipv6-only-in-name.pkt", {"ipv4", "ipv4-mapped-ipv6", "ipv6"}),  # only the end of the name counts
    ("v6-prefix.pkt", {"ipv4", "ipv4-mapped-ipv6", "ipv6"}),
    ("mtu-probe-v6.pkt", {"ipv6"}),
    ("v6.pkt", {"ipv6"}),
    ("icmp-v4.pkt", {"ipv4", "ipv4-mapped-ipv6"}),
    ("fragv4.pkt", {"ipv4", "ipv4-mapped-ipv6"}),
    ("x-v4.pkt.orig", {"ipv4", "ipv4-mapped-ipv6", "ipv6"}),
])
def test_variant_applies_by_name(name: str, runs_in: set[str]) -> None:
    assert {v for v in IP_VERSIONS if variant_applies(Path("/s/dir") / name, v)} == runs_in


def test_variant_applies_looks_at_the_name_not_the_directory() -> None:
    assert variant_applies(Path("/s/tests-v6.pkt/close.pkt"), "ipv4")
    assert variant_applies(Path("/s/v4.pkt/close.pkt"), "ipv6")


# -- find_scripts --------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in ("b.pkt", "a.pkt", "sub/c.pkt", "sub/deeper/d-v6.pkt", "notes.txt", "sub/e.pkt.bak", "other/z.pkt"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    return tmp_path


def test_find_scripts_walks_directories_recursively_sorted_pkt_only(tree: Path) -> None:
    found = find_scripts([tree / "sub", tree / "b.pkt"])
    assert found == [(tree / "sub/c.pkt").resolve(), (tree / "sub/deeper/d-v6.pkt").resolve(),
                     (tree / "b.pkt").resolve()]


def test_find_scripts_keeps_order_of_arguments_and_drops_duplicates(tree: Path) -> None:
    found = find_scripts([str(tree / "b.pkt"), str(tree), str(tree / "sub" / ".." / "a.pkt")])
    assert found[0] == (tree / "b.pkt").resolve()
    assert len(found) == len(set(found)) == 5
    assert set(found) == {(tree / rel).resolve() for rel in ("a.pkt", "b.pkt", "sub/c.pkt", "sub/deeper/d-v6.pkt",
                                                                "other/z.pkt")}
    assert all(p.is_absolute() for p in found)


def test_find_scripts_takes_a_named_file_whatever_its_suffix(tree: Path) -> None:
    assert find_scripts([tree / "notes.txt"]) == [(tree / "notes.txt").resolve()]


def test_find_scripts_empty_directory_gives_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert find_scripts([tmp_path / "empty"]) == []


def test_find_scripts_missing_path_is_a_script_error(tree: Path) -> None:
    missing = tree / "nope.pkt"
    with pytest.raises(ScriptError) as info:
        find_scripts([tree / "a.pkt", missing])
    assert str(missing) in str(info.value)
    assert "no such file or directory" in str(info.value)


# -- plan --------------------------------------------------------------------------------------------


def test_plan_names_relative_to_the_common_root_and_filters_variants(tree: Path) -> None:
    scripts = find_scripts([tree])
    jobs = plan(scripts, list(IP_VERSIONS))
    pairs = [(j.name, j.variant) for j in jobs]
    assert pairs == [
        ("a.pkt", "ipv4"), ("a.pkt", "ipv4-mapped-ipv6"), ("a.pkt", "ipv6"),
        ("b.pkt", "ipv4"), ("b.pkt", "ipv4-mapped-ipv6"), ("b.pkt", "ipv6"),
        ("other/z.pkt", "ipv4"), ("other/z.pkt", "ipv4-mapped-ipv6"), ("other/z.pkt", "ipv6"),
        ("sub/c.pkt", "ipv4"), ("sub/c.pkt", "ipv4-mapped-ipv6"), ("sub/c.pkt", "ipv6"),
        ("sub/deeper/d-v6.pkt", "ipv6"),
    ]
    assert all(j.script.is_absolute() and j.script.name == Path(j.name).name for j in jobs)


def test_plan_single_directory_root_and_only_ipv4(tree: Path) -> None:
    jobs = plan(find_scripts([tree / "sub"]), ["ipv4"])
    assert [(j.name, j.variant) for j in jobs] == [("c.pkt", "ipv4")]  # d-v6.pkt never runs over IPv4
    assert plan([], ["ipv4"]) == []


def test_plan_v4_script_in_ipv6_only_is_no_job(tree: Path) -> None:
    v4 = tree / "x-v4.pkt"
    v4.write_text("")
    assert plan([v4.resolve()], ["ipv6"]) == []
    assert [j.variant for j in plan([v4.resolve()], list(IP_VERSIONS))] == ["ipv4", "ipv4-mapped-ipv6"]


# -- reports -----------------------------------------------------------------------------------------


def _result(name: str, variant: str, outcome: str, seconds: float, error: str | None = None,
            attempts: int = 1) -> JobResult:
    job = Job(Path("/suite") / name, variant, name)
    return JobResult(job, outcome, seconds, error, 0 if outcome == "pass" else 1, attempts,
                     ["earlier"] * (attempts - 1))


RESULTS = [
    _result("a.pkt", "ipv4", "pass", 1.23),
    _result("a.pkt", "ipv6", "fail", 3.44, "a.pkt:7: error handling packet: live packet field tcp_ack"),
    _result("b-v4.pkt", "ipv4", "timeout", 10.0, "still running after 10 s"),
    _result("long/name-of-script.pkt", "ipv4", "pass", 0.5, attempts=2),
    _result("long/name-of-script.pkt", "ipv6", "error", 0.1, "bad flags 'Q'"),
]


def test_summary_table_rows_cells_and_totals() -> None:
    text = summary_table(RESULTS, ["ipv4", "ipv4-mapped-ipv6", "ipv6"])
    lines = text.splitlines()
    assert lines[0].split() == ["script", "ipv4", "ipv4-mapped-ipv6", "ipv6"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:4]}
    assert rows["a.pkt"] == ["pass", "1.2s", "-", "FAIL", "3.4s"]
    assert rows["b-v4.pkt"] == ["TIMEOUT", "10.0s", "-", "-"]
    assert rows["long/name-of-script.pkt"] == ["pass", "0.5s", "-", "ERROR", "0.1s"]
    # columns line up under their headings
    ipv6_col = lines[0].rindex("ipv6")
    assert lines[1][ipv6_col:].startswith("FAIL")
    assert lines[4] == ""
    totals = lines[5:]
    assert totals[0].startswith("ipv4: 2 of 3 passed (12 s of script time); 1 passed only on a retry")
    assert totals[1].startswith("ipv6: 0 of 2 passed")
    assert not any(t.startswith("ipv4-mapped-ipv6") for t in totals)  # no job in that mode: no total line
    assert len(totals) == 2


def test_summary_table_all_pass_has_no_retry_note() -> None:
    text = summary_table([_result("a.pkt", "ipv4", "pass", 0.2)], ["ipv4"])
    assert text.splitlines()[-1] == "ipv4: 1 of 1 passed (0 s of script time)"


def test_progress_line_words_tries_and_error() -> None:
    assert progress_line(RESULTS[0]) == "ok      a.pkt (ipv4) 1.2 s"
    assert progress_line(RESULTS[1]).startswith("FAIL    a.pkt (ipv6) 3.4 s: a.pkt:7: error handling packet")
    assert progress_line(RESULTS[2]).startswith("TIMEOUT b-v4.pkt (ipv4) 10.0 s: still running")
    assert progress_line(RESULTS[3]) == "ok      long/name-of-script.pkt (ipv4) 0.5 s (try 2)"
    assert progress_line(RESULTS[4]).startswith("ERROR   long/name-of-script.pkt (ipv6)")


def test_to_dict_is_json_with_attempts() -> None:
    data = json.loads(json.dumps(RESULTS[3].to_dict()))
    assert data == {"script": "long/name-of-script.pkt", "path": "/suite/long/name-of-script.pkt",
                    "variant": "ipv4", "result": "pass", "seconds": 0.5, "error": None, "exit_code": 0,
                    "attempts": 2, "earlier_errors": ["earlier"]}


def test_write_junit_one_testsuite_per_variant(tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    write_junit(RESULTS, str(out))
    assert out.read_bytes().startswith(b"<?xml")
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["ipv4", "ipv6"]
    v4, v6 = suites["ipv4"], suites["ipv6"]
    assert (v4.get("tests"), v4.get("failures"), v4.get("errors")) == ("3", "0", "1")
    assert (v6.get("tests"), v6.get("failures"), v6.get("errors")) == ("2", "1", "1")
    assert float(v4.get("time") or 0) == pytest.approx(11.73)
    cases = {c.get("name"): c for c in v6.findall("testcase")}
    assert set(cases) == {"a.pkt", "long/name-of-script.pkt"}
    assert all(c.get("classname") == "ipv6" for c in cases.values())
    failure = cases["a.pkt"].find("failure")
    assert failure is not None
    assert failure.get("message") == failure.text == "a.pkt:7: error handling packet: live packet field tcp_ack"
    error = cases["long/name-of-script.pkt"].find("error")
    assert error is not None and error.get("type") == "error" and error.get("message") == "bad flags 'Q'"
    timeout = v4.find("testcase[@name='b-v4.pkt']/error")
    assert timeout is not None and timeout.get("type") == "timeout"
    passed = v4.find("testcase[@name='a.pkt']")
    assert passed is not None and list(passed) == []


def test_write_junit_escapes_markup_in_errors(tmp_path: Path) -> None:
    out = tmp_path / "r.xml"
    message = 'expected: <mss 1460> vs actual: <mss 1000> & "more"'
    write_junit([_result("x.pkt", "ipv4", "fail", 1.0, message)], str(out))
    failure = ET.parse(out).getroot().find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == message and failure.text == message


# -- run_job / run_suite with stand-in children ----------------------------------------------------------


def test_child_command_has_the_variant_defines_and_the_users_win() -> None:
    job = Job(Path("/s/dir/x.pkt"), "ipv6", "x.pkt")
    cmd = suite._child_command(job, SuiteOptions(defines={"TFO_COOKIE": "00", "MINE": "1"}, tolerance_usecs=7000))
    assert cmd[-1] == "x.pkt"  # run from the script's own directory
    assert cmd[cmd.index("--ip-version") + 1] == "ipv6"
    defines = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "-D")
    assert defines == {**VARIANT_DEFINES["ipv6"], "TFO_COOKIE": "00", "MINE": "1"}
    assert cmd[cmd.index("--tolerance-usecs") + 1] == "7000"
    assert "--json" in cmd


def _fake_child(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Jobs run ``python -c code`` (argv[1] the script's name) instead of ``rawtcp run``."""
    monkeypatch.setattr(suite, "_child_command", lambda job, opts: [sys.executable, "-c", code, job.script.name])


def test_run_job_reads_the_childs_json_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.pkt"
    script.write_text("")
    _fake_child(monkeypatch, "import json, os, sys\n"
                "print('noise'); print(json.dumps({'result': 'fail', 'error': os.getcwd() + ': bad\\nsecond'}))\n"
                "sys.exit(1)")
    result = run_job(Job(script, "ipv4", "s.pkt"), SuiteOptions())
    assert result.outcome == "fail" and result.exit_code == 1
    assert result.error == f"{tmp_path}: bad"  # first line only; the child ran in the script's directory


def test_run_job_exit_2_is_an_error_with_stderrs_first_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.pkt"
    script.write_text("")
    _fake_child(monkeypatch, "import sys; sys.stderr.write('\\nrawtcp: error: s.pkt:2: bad flags\\nmore\\n'); "
                "sys.exit(2)")
    result = run_job(Job(script, "ipv4", "s.pkt"), SuiteOptions())
    assert (result.outcome, result.exit_code, result.error) == ("error", 2, "s.pkt:2: bad flags")


def test_run_job_pass_needs_exit_0_and_a_pass_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.pkt"
    script.write_text("")
    _fake_child(monkeypatch, "print('{\"result\": \"pass\"}')")
    assert run_job(Job(script, "ipv4", "s.pkt"), SuiteOptions()).outcome == "pass"
    _fake_child(monkeypatch, "pass")  # exit 0 but no verdict: not a pass
    assert run_job(Job(script, "ipv4", "s.pkt"), SuiteOptions()).outcome != "pass"


def test_run_job_timeout_stops_the_whole_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.pkt"
    script.write_text("")
    pids = tmp_path / "pids"
    # the child starts a grandchild (as rawtcp run starts its helper), then both sleep
    _fake_child(monkeypatch, "import subprocess, sys, time, os\n"
                f"g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{g.pid}}')\n"
                "print('started', file=sys.stderr, flush=True)\n"
                "time.sleep(60)")
    started = time.monotonic()
    result = run_job(Job(script, "ipv4", "s.pkt"), SuiteOptions(timeout=1.5))
    assert time.monotonic() - started < 10
    assert result.outcome == "timeout" and not result.passed
    assert result.error is not None and result.error.startswith("still running after 1.5 s")
    assert "started" in result.error
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"pid {pid} outlived its job"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_run_suite_retries_failures_and_counts_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flaky, bad, good = tmp_path / "flaky.pkt", tmp_path / "bad.pkt", tmp_path / "good.pkt"
    for path in (flaky, bad, good):
        path.write_text("")
    # flaky.pkt fails twice then passes; bad.pkt always fails; good.pkt passes at once
    _fake_child(monkeypatch, "import json, os, sys\n"
                "name = sys.argv[1]; tries = name + '.tries'\n"
                "n = int(open(tries).read()) + 1 if os.path.exists(tries) else 1\n"
                "open(tries, 'w').write(str(n))\n"
                "ok = name == 'good.pkt' or (name == 'flaky.pkt' and n >= 3)\n"
                "print(json.dumps({'result': 'pass' if ok else 'fail', 'error': None if ok else f'try {n}'}))\n"
                "sys.exit(0 if ok else 1)")
    jobs = plan([flaky, bad, good], ["ipv4"])
    seen: list[str] = []
    results = run_suite(jobs, SuiteOptions(jobs=2, retries=2), lambda r: seen.append(r.job.name))
    by_name = {r.job.name: r for r in results}
    assert [r.job.name for r in results] == ["flaky.pkt", "bad.pkt", "good.pkt"]  # the jobs' order
    assert sorted(seen) == ["bad.pkt", "flaky.pkt", "good.pkt"]
    assert (by_name["flaky.pkt"].outcome, by_name["flaky.pkt"].attempts) == ("pass", 3)
    assert by_name["flaky.pkt"].retried == ["try 1", "try 2"]
    assert (by_name["bad.pkt"].outcome, by_name["bad.pkt"].attempts, by_name["bad.pkt"].error) == ("fail", 3, "try 3")
    assert (by_name["good.pkt"].outcome, by_name["good.pkt"].attempts) == ("pass", 1)
    assert "1 passed only on a retry" in summary_table(results, ["ipv4"])


def test_run_suite_does_not_retry_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "e.pkt"
    script.write_text("")
    count = tmp_path / "count"
    _fake_child(monkeypatch, f"import sys; open({str(count)!r}, 'a').write('x'); sys.exit(2)")
    [result] = run_suite(plan([script], ["ipv4"]), SuiteOptions(retries=3))
    assert result.outcome == "error" and result.attempts == 1
    assert count.read_text() == "x"


def test_run_suite_runs_jobs_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = []
    for i in range(4):
        path = tmp_path / f"p{i}.pkt"
        path.write_text("")
        scripts.append(path)
    _fake_child(monkeypatch, "import time; time.sleep(0.6); print('{\"result\": \"pass\"}')")
    started = time.monotonic()
    results = run_suite(plan(scripts, ["ipv4"]), SuiteOptions(jobs=4))
    assert all(r.passed for r in results)
    assert time.monotonic() - started < 0.6 * 4 - 0.5, "jobs did not run side by side"
    assert os.cpu_count()
