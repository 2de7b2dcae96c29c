"""Pure TCP (RFC 9293): no sockets, clocks, randomness, threads or scapy.

Inputs are segments and ``now`` (seconds, any monotonic origin); outputs are segments and events.
"""

from rawtcp.core.endpoint import Endpoint, EndpointConfig, TcpError
from rawtcp.core.events import (
    ConnectionRefused,
    ConnectionReset,
    DataReceived,
    Event,
    PeerClosed,
    Retransmission,
    StateChanged,
    TimedOut,
)
from rawtcp.core.segment import Flags, Segment
from rawtcp.core.state import State
from rawtcp.core.transitions import Cause

__all__ = [
    "Cause",
    "ConnectionRefused",
    "ConnectionReset",
    "DataReceived",
    "Endpoint",
    "EndpointConfig",
    "Event",
    "Flags",
    "PeerClosed",
    "Retransmission",
    "Segment",
    "State",
    "StateChanged",
    "TcpError",
    "TimedOut",
]
