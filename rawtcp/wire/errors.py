"""The wire layer's one error type: a one-line message saying what failed and what to do next."""


class WireError(Exception):
    """Network, privilege or system-tool failure; ``str(err)`` is a single line fit for the CLI.

    ``exit_code`` (rawtcp.errors) when the failure has a documented one other than the CLI's default
    for this type (e.g. a namespace or interface that does not exist is bad input, 2)."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
