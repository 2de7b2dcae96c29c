"""`rawtcp compare --stacks S1,S2 LAB|SCRIPT` as a user meets it without root: what it refuses (one line,
exit 2, before any namespace), and the earlier spelling `compare-stacks` kept as a hidden alias."""

from __future__ import annotations

import subprocess
import sys

import pytest


def rawtcp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "words"), [
    (["--stacks", "linux,linux", "seed-exchange"], "two different stacks"),
    (["--stacks", "linux,bsd", "seed-exchange"], "unknown stack 'bsd'"),
    (["--stacks", "linux", "seed-exchange"], "two different stacks"),
    (["--stacks", "linux,pytcp", "a.pcap", "b.pcap"], "takes one LAB or SCRIPT"),
    (["--stacks", "linux,pytcp"], "takes one LAB or SCRIPT"),
    (["--stacks", "linux,pytcp", "--kernel", "seed-exchange"], "--stacks and --kernel"),
    (["--pcap-prefix", "/tmp/x", "a.pcap", "b.pcap"], "--pcap-prefix goes with --stacks"),
])
def test_compare_stacks_refuses_bad_input_in_one_line(args: list[str], words: str) -> None:
    proc = rawtcp("compare", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rawtcp: error: ")
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_compare_help_names_the_stacks_form() -> None:
    proc = rawtcp("compare", "--help")
    assert proc.returncode == 0 and "--stacks" in proc.stdout and "--pcap-prefix" in proc.stdout


def test_compare_stacks_alias_runs_but_is_not_listed() -> None:
    top = rawtcp("--help")
    assert "compare-stacks" not in top.stdout and "compare " in top.stdout
    alias = rawtcp("compare-stacks", "--help")
    assert alias.returncode == 0 and "rawtcp compare --stacks" in alias.stdout
    bad = rawtcp("compare-stacks", "--stacks", "pytcp,pytcp", "seed-exchange")
    assert bad.returncode == 2 and "two different stacks" in bad.stderr
