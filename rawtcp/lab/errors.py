"""Errors raised by the lab layer: one-line messages that say what to do next."""


class LabError(Exception):
    """A lab operation failed; ``str(err)`` is one line meant for the user."""
