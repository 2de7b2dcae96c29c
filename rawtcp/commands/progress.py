"""A long `send` or `recv` on a terminal: one status line on stderr, rewritten as the keeper reports.

The keeper sends ``{"type": "progress", "done", "total", "elapsed"}`` records a few times a second when
the command asks for them (only on a terminal, never with --json); everything else passes through
to the record printer, the status line cleared before and redrawn after it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

Record = dict[str, Any]
CLEAR = "\r\x1b[K"  # back to the start of the line and erase it (VT100 EL)


def _rate(bytes_per_second: float) -> str:
    for unit, size in (("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if bytes_per_second >= size:
            return f"{bytes_per_second / size:.1f} {unit}"
    return f"{bytes_per_second:.0f} B/s"


def format_progress(verb: str, done: int, total: int, elapsed: float) -> str:
    """``147460 of 262144 bytes acknowledged (56 %), 12.0 KiB/s, 12 s``."""
    share = 100 * done // total if total else 100
    rate = done / elapsed if elapsed > 0 else 0.0
    seconds = f"{elapsed:.1f}" if elapsed < 10 else f"{elapsed:.0f}"
    return f"{done} of {total} bytes {verb} ({share} %), {_rate(rate)}, {seconds} s"


class ProgressLine:
    """The record callback for `send`/`recv`: draws progress records, hands the rest to ``printer``.

    ``enabled`` (False with --json) and a terminal on ``stream`` (stderr) are both needed to draw
    anything; otherwise progress records are dropped, and the command should not ask for them.
    """

    def __init__(self, printer: Callable[[Record], None], verb: str, *, stream: IO[str] | None = None,
                 enabled: bool = True) -> None:
        self.printer = printer
        self.verb = verb
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.shown = ""

    def _draw(self, text: str) -> None:
        self.stream.write(CLEAR + text)
        self.stream.flush()

    def __call__(self, rec: Record) -> None:
        if rec.get("type") == "progress":
            if self.enabled:
                self.shown = format_progress(self.verb, int(rec["done"]), int(rec["total"]),
                                             float(rec["elapsed"]))
                self._draw(self.shown)
            return
        if self.shown:
            self._draw("")  # a record line must not land after the status text
        self.printer(rec)
        if self.shown:
            self._draw(self.shown)

    def close(self) -> None:
        """Erase the status line (the command's own last line says how it ended)."""
        if self.shown:
            self._draw("")
            self.shown = ""
