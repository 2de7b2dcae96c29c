"""The crafting layer's error: a one-line message and the CLI exit code it maps to."""

from __future__ import annotations

from rawtcp.errors import BAD_INPUT, RawtcpError


class CraftError(RawtcpError):
    """Bad probe/flood input or a crafting failure (``str(err)`` is one line)."""

    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message, code)
