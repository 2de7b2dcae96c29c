"""A suite against another stack (`rawtcp run DIR --stack pytcp`) without root or network: each job's child
is told the stack, a script whose calls the stack cannot express is `unsupported` (not a failure of the
stack) in the progress line, the totals, JUnit (skipped) and the JSON counts."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rawtcp.script import suite
from rawtcp.script.suite import Job, JobResult, SuiteOptions, outcome_counts, progress_line, run_job, summary_table

UNSUP = ("rawtcp: error: /s/x.pkt:7: unsupported on stack pytcp: fcntl() has no counterpart in PyTCP's "
         "socket API")


def _fake_child(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(suite, "_child_command", lambda job, opts: [sys.executable, "-c", code, job.script.name])


def test_the_child_is_told_the_stack() -> None:
    job = Job(Path("/s/x.pkt"), "ipv4", "x.pkt")
    cmd = suite._child_command(job, SuiteOptions(stack="pytcp"))
    assert cmd[cmd.index("--stack") + 1] == "pytcp" and cmd[-1] == "x.pkt"
    assert "--stack" not in suite._child_command(job, SuiteOptions())  # Linux: as before


def test_an_unsupported_call_is_its_own_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "x.pkt"
    script.write_text("")
    _fake_child(monkeypatch, f"import sys; sys.stderr.write({UNSUP + chr(10)!r}); sys.exit(2)")
    result = run_job(Job(script, "ipv4", "x.pkt"), SuiteOptions(stack="pytcp"))
    assert result.outcome == "unsupported" and result.exit_code == 2 and not result.passed
    assert result.error == UNSUP.removeprefix("rawtcp: error: ")
    assert progress_line(result).startswith("UNSUP   x.pkt (ipv4)")


def test_other_exit_2_errors_stay_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "x.pkt"
    script.write_text("")
    _fake_child(monkeypatch, "import sys; sys.stderr.write('rawtcp: error: x.pkt:2: bad flags\\n'); sys.exit(2)")
    assert run_job(Job(script, "ipv4", "x.pkt"), SuiteOptions(stack="pytcp")).outcome == "error"


def _results() -> list[JobResult]:
    def one(name: str, outcome: str) -> JobResult:
        return JobResult(Job(Path("/s") / name, "ipv4", name), outcome, 1.0, f"{name}: {outcome}",
                         {"pass": 0, "fail": 1}.get(outcome, 2))
    return [one("a.pkt", "pass"), one("b.pkt", "fail"), one("c.pkt", "unsupported"), one("d.pkt", "unsupported"),
            one("e.pkt", "timeout")]


def test_totals_count_each_outcome() -> None:
    results = _results()
    assert outcome_counts(results) == {"pass": 1, "fail": 1, "unsupported": 2, "error": 0, "timeout": 1}
    last = summary_table(results, ["ipv4"]).splitlines()[-1]
    assert last == "ipv4: 1 of 5 passed (5 s of script time); 1 fail, 2 unsupported, 1 timeout"


def test_junit_marks_unsupported_as_skipped(tmp_path: Path) -> None:
    out = tmp_path / "r.xml"
    suite.write_junit(_results(), str(out))
    root = ET.parse(out).getroot().find("testsuite")
    assert root is not None and root.get("skipped") == "2" and root.get("failures") == "1"
    skipped = root.find("testcase[@name='c.pkt']/skipped")
    assert skipped is not None and skipped.get("message") == "c.pkt: unsupported"
