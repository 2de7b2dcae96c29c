"""Every spelling of the TCP states rawtcp meets, mapped to :class:`State` in one table.

Linux numbers its states in include/net/tcp_states.h and the sock:inet_sock_set_state tracepoint
prints those names (``TCP_SYN_RECV``); ss(8) abbreviates them (``ESTAB``, ``SYN-RECV``); BSD says
``SYN_RCVD``; RFC 9293 spells them ``SYN-RECEIVED``. Linux's TCP_NEW_SYN_RECV is a request socket
in SYN-RECEIVED, so it reads as SYN-RECEIVED.
"""

from __future__ import annotations

from rawtcp.core.state import State

S = State

# include/net/tcp_states.h: name -> (number, RFC 9293 state)
LINUX_STATES: dict[str, tuple[int, State]] = {
    "TCP_ESTABLISHED": (1, S.ESTABLISHED),
    "TCP_SYN_SENT": (2, S.SYN_SENT),
    "TCP_SYN_RECV": (3, S.SYN_RECEIVED),
    "TCP_FIN_WAIT1": (4, S.FIN_WAIT_1),
    "TCP_FIN_WAIT2": (5, S.FIN_WAIT_2),
    "TCP_TIME_WAIT": (6, S.TIME_WAIT),
    "TCP_CLOSE": (7, S.CLOSED),
    "TCP_CLOSE_WAIT": (8, S.CLOSE_WAIT),
    "TCP_LAST_ACK": (9, S.LAST_ACK),
    "TCP_LISTEN": (10, S.LISTEN),
    "TCP_CLOSING": (11, S.CLOSING),
    "TCP_NEW_SYN_RECV": (12, S.SYN_RECEIVED),
}

# ss(8)'s abbreviations that differ from the RFC's spelling, and BSD's SYN_RCVD.
_OTHER_SPELLINGS = {"ESTAB": S.ESTABLISHED, "SYN-RECV": S.SYN_RECEIVED, "UNCONN": S.CLOSED,
                    "SYN_RCVD": S.SYN_RECEIVED}

_BY_NUMBER: dict[int, State] = {number: state for number, state in LINUX_STATES.values()}
_BY_NAME: dict[str, State] = {**_OTHER_SPELLINGS}
for _name, (_number, _state) in LINUX_STATES.items():
    _BY_NAME[_name] = _BY_NAME[_name.removeprefix("TCP_")] = _state
for _state in State:
    _BY_NAME[_state.value] = _BY_NAME[_state.name] = _state


def state_from_linux(number: int) -> State | None:
    """The state of Linux's ``tcpi_state`` / ``sk_state`` number (None for one this table lacks)."""
    return _BY_NUMBER.get(number)


def state_from_name(name: str) -> State | None:
    """Any spelling: ``TCP_SYN_RECV``, ``SYN_RECV``, ``SYN-RECV``, ``ESTAB``, ``syn-received``… (None if
    unknown)."""
    return _BY_NAME.get(name.strip().upper())


def rfc_name(name: str) -> str:
    """RFC 9293's spelling of any spelling; an unknown name comes back as it was."""
    state = state_from_name(name)
    return state.value if state is not None else name


def rfc_name_of_number(number: int) -> str:
    """RFC 9293's spelling of Linux's state number; an unknown one as ``UNKNOWN(n)``."""
    state = state_from_linux(number)
    return state.value if state is not None else f"UNKNOWN({number})"
