"""Process facts every layer needs: leftovers are found by their owner's pid being dead, processes by
their command line, both from /proc."""

from __future__ import annotations

import os
import select
import time


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie (/proc works for any owner's process)."""
    if not pid or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def pids_matching(fragment: str) -> list[int]:
    """Pids (not ours) whose command line contains ``fragment``, read from /proc: bare machines and slim
    images have no pgrep (procps)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            found.append(int(entry))
    return found


def readline_with_timeout(fd: int, timeout: float) -> bytes:
    """One line from a child's pipe, or what came before ``timeout`` seconds passed (b"" if nothing).

    Byte by byte on the raw fd, so nothing after the line is swallowed into a buffer the caller's
    own reader would then miss.
    """
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf
