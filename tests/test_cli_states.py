"""`rawtcp states` without root: the state diagram printed from the core's transition table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rawtcp.core.transitions import TRANSITIONS, state_diagram_dot, state_diagram_mermaid, state_diagram_text


def rawtcp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, timeout=60)


def test_states_prints_one_line_per_transition_by_default() -> None:
    proc = rawtcp("states")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == state_diagram_text()
    lines = proc.stdout.splitlines()
    assert len(lines) == len(TRANSITIONS)
    for (old, cause), new in TRANSITIONS.items():
        assert any(line.startswith(f"{old} -> {new} ") and line.endswith(f"  {cause.label}") for line in lines)


@pytest.mark.parametrize(("fmt", "render"), [("text", state_diagram_text), ("dot", state_diagram_dot),
                                             ("mermaid", state_diagram_mermaid)])
def test_states_formats(fmt: str, render: object) -> None:
    proc = rawtcp("states", "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render()  # type: ignore[operator]


def test_states_unknown_format_is_bad_input_in_one_line() -> None:
    proc = rawtcp("states", "--format", "svg")
    assert proc.returncode == 2
    assert proc.stderr.startswith("rawtcp: error: ") and proc.stderr.count("\n") == 1


def test_states_is_listed_in_help() -> None:
    assert "states" in rawtcp("--help").stdout
