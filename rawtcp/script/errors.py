"""The one error type of rawtcp.script: a located, one-line complaint about a script."""

from __future__ import annotations


class ScriptError(Exception):
    """A problem in a script, reported as packetdrill does: ``path:line: message``.

    ``line`` is 1-based; it is None only for problems with the file as a whole (unreadable).
    """

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"
