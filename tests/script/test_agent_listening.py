"""The agent protocol's ``listening`` request, as the Linux agent answers it: the namespace kernel's
listening sockets read from /proc/net/tcp and tcp6 (a fake /proc/net here: no root, no network)."""

from __future__ import annotations

import json
from pathlib import Path

from rawtcp.script.syscall_helper import Helper, proc_net_listeners
from rawtcp.script.syscalls import Addresses, Executor

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _fake_proc(tmp_path: Path) -> Path:
    # 198.18.0.2:8080 listening, an established 198.18.0.2:8080 <- 198.18.0.1:40000, ::1... and
    # 2001:db8::2:8080 listening; the kernel prints each 32-bit word little-endian
    (tmp_path / "tcp").write_text(
        HEADER
        + "   0: 020012C6:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 1 1\n"
        + "   1: 020012C6:1F90 010012C6:9C40 01 00000000:00000000 00:00000000 00000000     0 0 2 1\n")
    (tmp_path / "tcp6").write_text(
        HEADER
        + "   0: B80D0120000000000000000002000000:1F90 00000000000000000000000000000000:0000 0A "
          "00000000:00000000 00:00000000 00000000     0 0 3 1\n")
    return tmp_path


def test_listening_sockets_come_from_proc_net(tmp_path: Path) -> None:
    found = proc_net_listeners(str(_fake_proc(tmp_path)))
    assert found == [{"addr": "198.18.0.2", "port": 8080}, {"addr": "2001:db8::2", "port": 8080}]


def test_a_kernel_without_ipv6_lists_ipv4_only(tmp_path: Path) -> None:
    root = _fake_proc(tmp_path)
    (root / "tcp6").unlink()
    assert proc_net_listeners(str(root)) == [{"addr": "198.18.0.2", "port": 8080}]


def test_the_helper_answers_a_listening_request() -> None:
    lines: list[str] = []
    helper = Helper(Executor(Addresses("198.18.0.2", "198.18.0.1", 8080, 8080)), lines.append)
    helper.handle({"id": 7, "op": "listening"})
    reply = json.loads(lines[0])
    assert reply["id"] == 7 and isinstance(reply["listening"], list)
