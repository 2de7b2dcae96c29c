"""Process facts every layer needs: leftovers are found by their owner's pid being dead."""

from __future__ import annotations


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
