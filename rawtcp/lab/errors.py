"""Errors raised by the lab layer: one-line messages that say what to do next."""

from __future__ import annotations

from rawtcp.errors import NO_LAB, RawtcpError


class LabError(RawtcpError):
    """A lab operation failed, or the lab is not there; ``str(err)`` is one line meant for the user."""

    exit_code = NO_LAB
