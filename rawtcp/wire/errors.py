"""The wire layer's one error type: a one-line message saying what failed and what to do next."""

from __future__ import annotations

from rawtcp.errors import MISSING_TOOL, RawtcpError


class WireError(RawtcpError):
    """Network, privilege or system-tool failure; ``str(err)`` is a single line fit for the CLI.

    Its usual exit code is "a system tool or facility is missing"; a raise site passes ``exit_code``
    when another documented code fits (e.g. a namespace or interface that does not exist is bad input)."""

    exit_code = MISSING_TOOL

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message, exit_code)
