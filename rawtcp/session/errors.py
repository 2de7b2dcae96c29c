"""Errors the session layer reports to the CLI as one line."""

from __future__ import annotations

from rawtcp.errors import FAILED, NO_ANSWER, REFUSED, UNKNOWN_SESSION, RawtcpError


class SessionError(RawtcpError):
    """A session could not be created, found or driven; the message is the whole story."""

    exit_code = FAILED


class UnknownSession(SessionError):
    exit_code = UNKNOWN_SESSION


class PeerRefused(SessionError):
    exit_code = REFUSED


class PeerSilent(SessionError):
    exit_code = NO_ANSWER


class ProtocolError(SessionError):
    """A message between a command and a keeper (spec, request, reply, session file) that is not
    what the protocol says: the one line names the message and the field."""
