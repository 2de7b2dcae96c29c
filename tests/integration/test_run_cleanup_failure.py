"""packetdrill runs a script's cleanup command whatever happened; when the script already failed, that
failure stays the one reported, and a cleanup that fails too (undoing what the script never got to do)
is a note beside it, not the verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces"),
]

SCRIPT = """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1000>
+0  > S. 0:0(0) ack 1 <mss 1234>
+0  `touch {marker}`

`test -e {marker}`
"""


def test_the_first_failure_is_reported_not_the_cleanup_that_followed(tmp_path: Path) -> None:
    script = tmp_path / "fails.pkt"
    marker = tmp_path / "never-made"
    script.write_text(SCRIPT.format(marker=marker))
    proc = subprocess.run([sys.executable, "-m", "rawtcp", "run", str(script), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert "bad outbound TCP options" in result["error"] and ":5:" in result["error"]
    assert any("line 8: after the failure, error executing cleanup command" in n for n in result["notes"])
    assert not marker.exists()
