"""`send`/`recv` progress: one status line on a terminal's stderr, redrawn in place; nothing otherwise."""

from __future__ import annotations

import io

from rawtcp.commands.progress import ProgressLine, format_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Recorder:
    """Stands in for the Printer: keeps the records it is given."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def __call__(self, rec: dict) -> None:
        self.records.append(rec)


def _progress(done: int, total: int = 262144, elapsed: float = 2.0) -> dict:
    return {"type": "progress", "op": "send", "done": done, "total": total, "elapsed": elapsed}


def test_format_names_bytes_share_rate_and_time():
    assert format_progress("acknowledged", 147460, 262144, 12.0) == \
        "147460 of 262144 bytes acknowledged (56 %), 12.0 KiB/s, 12 s"
    assert format_progress("received", 0, 1000, 0.0) == "0 of 1000 bytes received (0 %), 0 B/s, 0.0 s"
    assert format_progress("received", 3 << 20, 4 << 20, 1.5) == \
        "3145728 of 4194304 bytes received (75 %), 2.0 MiB/s, 1.5 s"


def test_progress_is_redrawn_in_place_on_a_terminal_and_cleared_at_the_end():
    term, printer = Terminal(), Recorder()
    line = ProgressLine(printer, "acknowledged", stream=term)
    assert line.enabled
    line(_progress(1000))
    line(_progress(2000))
    segment = {"type": "segment", "dir": "out"}
    line(segment)
    line.close()
    out = term.getvalue()
    assert out.startswith("\r\x1b[K1000 of 262144 bytes acknowledged")
    assert "\r\x1b[K2000 of 262144 bytes acknowledged" in out
    assert out.endswith("\r\x1b[K") and "\n" not in out  # one line, rewritten, gone at the end
    assert printer.records == [segment]  # other records still go to the printer; progress does not


def test_no_progress_when_stderr_is_not_a_terminal_or_with_json():
    for stream, enabled in ((io.StringIO(), True), (Terminal(), False)):
        printer = Recorder()
        line = ProgressLine(printer, "received", stream=stream, enabled=enabled)
        assert not line.enabled
        line(_progress(5))
        line.close()
        assert stream.getvalue() == "" and printer.records == []
