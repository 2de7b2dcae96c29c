"""The one error type of the capture layer: every bad file ends up here with a one-line message."""

from __future__ import annotations

from rawtcp.errors import BAD_INPUT, RawtcpError


class CaptureError(RawtcpError):
    """A capture cannot be read or used: empty, truncated, not pcap/pcapng, unsupported link type…

    The message is one line, fit for ``rawtcp: error: <message>`` at the CLI.
    """

    exit_code = BAD_INPUT
