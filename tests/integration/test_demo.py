"""`rawtcp demo` and `rawtcp compare --kernel` against the real kernel, as a user runs them."""

from __future__ import annotations

import shutil

import pytest
from demo_helpers import assert_demo_reproduces_seed, assert_tshark_agrees
from engine_helpers import json_lines, rawtcp, segments

pytestmark = pytest.mark.integration

def test_demo_reproduces_seed_against_the_kernel(tmp_path):
    pcap = tmp_path / "demo.pcap"
    proc = rawtcp("demo", "--pcap", str(pcap), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    segs, _listener = assert_demo_reproduces_seed(json_lines(proc.stdout), pcap)
    assert segs[0]["options"] == "mss 1460"  # SEED.md's SYN: the bare profile, not Linux's options


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_demo_capture_agrees_with_tshark(tmp_path):
    pcap = tmp_path / "demo.pcap"
    proc = rawtcp("demo", "--pcap", str(pcap), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_tshark_agrees(pcap, segments(json_lines(proc.stdout)))


def test_compare_kernel_shows_what_the_kernel_adds(tmp_path):
    crafted, kernel = tmp_path / "crafted.pcap", tmp_path / "kernel.pcap"
    proc = rawtcp("compare", "--kernel", str(crafted), str(kernel), "--json", timeout=120)
    assert proc.returncode == 1, proc.stderr  # they differ
    result = __import__("json").loads(proc.stdout)
    text = proc.stdout
    assert "sackOK" in text and "wscale" in text  # the kernel's SYN options
    assert result["same"] is False
    # Same shape otherwise: flags and relative numbers agree once options and windows are ignored.
    same = rawtcp("compare", str(crafted), str(kernel), "--ignore", "options,window")
    assert same.returncode == 0, same.stdout
