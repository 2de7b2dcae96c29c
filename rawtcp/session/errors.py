"""Errors the session layer reports to the CLI as one line."""


class SessionError(Exception):
    """A session could not be created, found or driven; the message is the whole story."""

    exit_code = 1


class UnknownSession(SessionError):
    exit_code = 3


class PeerRefused(SessionError):
    exit_code = 4


class PeerSilent(SessionError):
    exit_code = 5
