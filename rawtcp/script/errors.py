"""The one error type of rawtcp.script: a located, one-line complaint about a script."""

from __future__ import annotations

from rawtcp.errors import BAD_INPUT, RawtcpError


class ScriptError(RawtcpError):
    """A problem in a script, reported as packetdrill does: ``path:line: message``.

    ``line`` is 1-based; it is None only for problems with the file as a whole (unreadable).
    """

    exit_code = BAD_INPUT

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.args = (path, line, message)  # what pickling rebuilds it from (suite children)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"
