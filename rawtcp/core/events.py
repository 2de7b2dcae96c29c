"""Events the core reports to whoever drives it (drained with ``Endpoint.next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass

from rawtcp.core.segment import Segment
from rawtcp.core.state import State
from rawtcp.core.transitions import Cause


@dataclass(frozen=True, slots=True)
class Event:
    time: float


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """One entry of the endpoint's trace: ``cause`` took it from ``old`` to ``new`` (the table's edge)."""

    old: State
    new: State
    cause: Cause

    def __init__(self, time: float, old: State, new: State, cause: Cause) -> None:  # compiled, as Segment's
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "old", old)
        object.__setattr__(self, "new", new)
        object.__setattr__(self, "cause", cause)


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    nbytes: int


@dataclass(frozen=True, slots=True)
class PeerClosed(Event):
    """The peer's FIN arrived in order: no more data will come."""


@dataclass(frozen=True, slots=True)
class ConnectionReset(Event):
    """An acceptable RST arrived in a synchronized state (RFC 9293 §3.10.7.4)."""


@dataclass(frozen=True, slots=True)
class ConnectionRefused(Event):
    """An acceptable RST answered our SYN (RFC 9293 §3.10.7.3)."""


@dataclass(frozen=True, slots=True)
class TimedOut(Event):
    """Retransmissions exhausted the configured count: the connection is given up."""

    what: str
    tries: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class Retransmission(Event):
    segment: Segment
    reason: str  # "rto", "fast" (RFC 5681/6582), "sack" (RACK, RFC 8985 §6), "tlp" (RFC 8985 §7) or "syn"
