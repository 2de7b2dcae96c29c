"""The wire layer's one error type: a one-line message saying what failed and what to do next."""


class WireError(Exception):
    """Network, privilege or system-tool failure; ``str(err)`` is a single line fit for the CLI."""
