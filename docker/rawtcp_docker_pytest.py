"""pytest plugin for the compose `tests` service: proves the integration tests ran, not skipped.

Loaded with ``-p rawtcp_docker_pytest`` (PYTHONPATH=/opt/rawtcp-docker in the image). It prints one line
``rawtcp-docker: integration tests: N passed, N failed, N skipped, N kernel-skipped`` and, with
RAWTCP_REQUIRE_INTEGRATION=1, fails the session when none ran or any was skipped: inside the container
they have every capability they need, so a skip there means the lab is broken, not absent. The exception
is a skip whose reason matches RAWTCP_KERNEL_SKIPS (a regex): a feature the shared kernel lacks (netem
on a kernel built without it) is missing on the host too, so it is counted and shown, not failed.
"""

from __future__ import annotations

import os
import re

import pytest

# Reasons the integration tests give when the kernel itself lacks a feature (same in every container).
DEFAULT_KERNEL_SKIPS = r"kernel has no|CONFIG_[A-Z0-9_]+ is (off|not set)"
# Tests of an optional extra the image does not carry (PyTCP needs a TAP device the container lacks):
# they run on the host, where CI installs the extra.
OPTIONAL_SKIPS = r"needs rawtcp\[[a-z]+\]"

_integration: set[str] = set()
_outcome: dict[str, str] = {}
_kernel_skips: list[str] = []


def _required() -> bool:
    return os.environ.get("RAWTCP_REQUIRE_INTEGRATION", "") == "1"


def pytest_collection_finish(session: pytest.Session) -> None:
    # session.items is final here (after -m/-k deselection); docker tests drive an engine from outside.
    _integration.clear()
    _integration.update(
        item.nodeid
        for item in session.items
        if item.get_closest_marker("integration") is not None and item.get_closest_marker("docker") is None
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _integration:
        return
    if report.failed:
        _outcome[report.nodeid] = "failed"
    elif report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        pattern = os.environ.get("RAWTCP_KERNEL_SKIPS", DEFAULT_KERNEL_SKIPS)
        if re.search(OPTIONAL_SKIPS, reason):
            _outcome.setdefault(report.nodeid, "optional-skipped")
        elif pattern and re.search(pattern, reason):
            _outcome.setdefault(report.nodeid, "kernel-skipped")
            _kernel_skips.append(f"{report.nodeid}: {reason}")
        else:
            _outcome.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _outcome.setdefault(report.nodeid, "passed")


def _counts() -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0, "kernel-skipped": 0, "optional-skipped": 0}
    for outcome in _outcome.values():
        counts[outcome] += 1
    return counts


def _problem() -> str | None:
    counts = _counts()
    if not _integration:
        return "no integration test was collected"
    if counts["skipped"]:
        return f"{counts['skipped']} integration test(s) skipped"
    if counts["passed"] + counts["failed"] == 0:
        return "no integration test ran"
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _required() and _problem() is not None and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = _counts()
    terminalreporter.write_line(
        f"rawtcp-docker: integration tests: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['kernel-skipped']} kernel-skipped, "
        f"{counts['optional-skipped']} optional-skipped (of {len(_integration)} collected)"
    )
    for line in _kernel_skips:
        terminalreporter.write_line(f"rawtcp-docker: kernel-skipped (the host kernel lacks it too): {line}")
    problem = _problem()
    if problem is not None and _required():
        terminalreporter.write_line(f"rawtcp-docker: FAIL: {problem} (RAWTCP_REQUIRE_INTEGRATION=1)", red=True)
