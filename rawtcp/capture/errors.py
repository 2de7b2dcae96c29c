"""The one error type of the capture layer: every bad file ends up here with a one-line message."""


class CaptureError(Exception):
    """A capture cannot be read or used: empty, truncated, not pcap/pcapng, unsupported link type…

    The message is one line, fit for ``rawtcp: error: <message>`` at the CLI.
    """

    exit_code = 2  # bad input, as rawtcp/errors.py numbers it
