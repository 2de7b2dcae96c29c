"""`rawtcp lab run NAME --compare-kernel`: the lab, then a kernel client doing the same exchange, and
the two captures compared; both captures are kept in a private directory and named."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from engine_helpers import rawtcp

pytestmark = pytest.mark.integration


def test_compare_kernel_keeps_both_captures_in_a_private_directory():
    proc = rawtcp("lab", "run", "handshake", "--compare-kernel", timeout=180)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the captures differ (the kernel adds options)
    match = re.search(r"captures: (\S+) \(lab\) and (\S+) \(kernel client\)", proc.stdout)
    assert match, proc.stdout
    lab, kernel = Path(match.group(1)), Path(match.group(2))
    try:
        assert lab.parent == kernel.parent and lab.stat().st_size > 24 and kernel.stat().st_size > 24
        mode = stat.S_IMODE(os.stat(lab.parent).st_mode)
        assert mode == 0o700, oct(mode)  # mkdtemp's: no other user can plant or read these files
        assert "C→S [S]" in proc.stdout  # the compare named the SYN's differences
    finally:
        for path in (lab, kernel):
            path.unlink(missing_ok=True)
            Path(str(path) + ".states.json").unlink(missing_ok=True)
        lab.parent.rmdir()
