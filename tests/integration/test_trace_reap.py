"""Trace instances are one set for the whole kernel: a container's and the host's rawtcp see each other's.
Each reaps only the dead processes' instances of its own pid namespace."""

from __future__ import annotations

import pytest

from rawtcp.lab import kstate

pytestmark = pytest.mark.integration

DEAD_PID = 4_194_303  # pid_max's ceiling: no process has it


def test_reap_removes_our_dead_instances_and_leaves_another_namespaces():
    root = kstate.ensure_tracefs() / "instances"
    ours = root / f"rawtcp-p{kstate.pid_namespace()}-{DEAD_PID}-1"
    theirs = root / f"rawtcp-p{kstate.pid_namespace() + 1}-{DEAD_PID}-1"
    for path in (ours, theirs):
        path.mkdir()
    try:
        removed = kstate.reap_trace_instances()
        assert ours.name in removed and not ours.exists()
        assert theirs.name not in removed and theirs.exists()
    finally:
        for path in (ours, theirs):
            if path.exists():
                path.rmdir()
