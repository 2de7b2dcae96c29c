"""Every state change of the endpoint, in one table (RFC 9293 §3.3.2, Figure 5).

The table decides: ``Endpoint._set_state(cause, now)`` looks the next state up by (current state, cause),
and a pair the table does not define is a bug. The state diagram (``rawtcp states``) is rendered from
this same table, so the picture cannot drift from the code.
"""

from __future__ import annotations

import enum

from rawtcp.core.state import State


@enum.unique
class Cause(enum.Enum):
    """An event that changes state; the value is its label on the diagram's edge ("event / action").

    Where RFC 9293 branches on how the connection was opened, the cause says which, so the table stays
    a function of (state, cause).
    """

    OPEN_ACTIVE = "active OPEN / snd SYN"  # §3.10.1
    OPEN_PASSIVE = "passive OPEN"  # §3.10.1
    RCV_SYN = "rcv SYN / snd SYN,ACK"  # §3.10.7.2 third; §3.10.7.3 fourth (simultaneous open)
    RCV_SYN_ACK = "rcv SYN,ACK / snd ACK"  # §3.10.7.3 fourth
    RCV_ACK_OF_SYN = "rcv ACK of SYN"  # §3.10.7.4 fifth, SYN-RECEIVED
    RCV_FIN = "rcv FIN / snd ACK"  # §3.10.7.4 eighth
    RCV_ACK_OF_FIN = "rcv ACK of FIN"  # §3.10.7.4 fifth, FIN-WAIT-1 / CLOSING / LAST-ACK
    RCV_RST = "rcv RST"  # §3.10.7.3 second (refused), §3.10.7.4 second (reset, or active SYN-RECEIVED)
    RCV_RST_PASSIVE = "rcv RST (passive OPEN)"  # §3.10.7.4 second: SYN-RECEIVED from LISTEN goes back
    RCV_SYN_PASSIVE = "rcv SYN (passive OPEN)"  # §3.10.7.4 fourth: SYN-RECEIVED from LISTEN goes back
    CLOSE = "CLOSE"  # §3.10.4: a FIN after queued data once synchronized, nothing before
    ABORT = "ABORT"  # §3.10.5: a RST if the peer knows us
    TIMEOUT = "retransmissions exhausted"  # §3.8.3 R2 / §3.10.8 user timeout (also window probes)
    KEEPALIVE_TIMEOUT = "keep-alives unanswered / snd RST"  # §3.8.4, RFC 1122 §4.2.3.6
    TIME_WAIT_EXPIRED = "timeout=2MSL"  # §3.10.8 time-wait timeout

    __hash__ = object.__hash__  # identity, as State's: members are singletons

    @property
    def label(self) -> str:
        return self.value

    def __str__(self) -> str:
        return self.value


class TransitionError(AssertionError):
    """A (state, cause) pair the table does not define: a bug in the endpoint, never the peer's doing."""


S = State
C = Cause

# (state, cause) -> next state. Causes in the order of RFC 9293 §3.10; states in Figure 5's order.
TRANSITIONS: dict[tuple[State, Cause], State] = {
    (S.CLOSED, C.OPEN_ACTIVE): S.SYN_SENT,
    (S.CLOSED, C.OPEN_PASSIVE): S.LISTEN,

    (S.LISTEN, C.RCV_SYN): S.SYN_RECEIVED,
    (S.LISTEN, C.CLOSE): S.CLOSED,
    (S.LISTEN, C.ABORT): S.CLOSED,

    (S.SYN_SENT, C.RCV_SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, C.RCV_SYN): S.SYN_RECEIVED,  # simultaneous open (§3.5, Figure 8)
    (S.SYN_SENT, C.RCV_RST): S.CLOSED,  # connection refused
    (S.SYN_SENT, C.CLOSE): S.CLOSED,
    (S.SYN_SENT, C.ABORT): S.CLOSED,
    (S.SYN_SENT, C.TIMEOUT): S.CLOSED,

    (S.SYN_RECEIVED, C.RCV_ACK_OF_SYN): S.ESTABLISHED,
    (S.SYN_RECEIVED, C.CLOSE): S.FIN_WAIT_1,
    (S.SYN_RECEIVED, C.RCV_RST_PASSIVE): S.LISTEN,
    (S.SYN_RECEIVED, C.RCV_SYN_PASSIVE): S.LISTEN,
    (S.SYN_RECEIVED, C.RCV_RST): S.CLOSED,  # active (simultaneous) open: refused
    (S.SYN_RECEIVED, C.ABORT): S.CLOSED,
    (S.SYN_RECEIVED, C.TIMEOUT): S.CLOSED,

    (S.ESTABLISHED, C.CLOSE): S.FIN_WAIT_1,
    (S.ESTABLISHED, C.RCV_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, C.RCV_RST): S.CLOSED,
    (S.ESTABLISHED, C.ABORT): S.CLOSED,
    (S.ESTABLISHED, C.TIMEOUT): S.CLOSED,
    (S.ESTABLISHED, C.KEEPALIVE_TIMEOUT): S.CLOSED,

    (S.FIN_WAIT_1, C.RCV_ACK_OF_FIN): S.FIN_WAIT_2,  # a FIN with it then goes on to TIME-WAIT
    (S.FIN_WAIT_1, C.RCV_FIN): S.CLOSING,  # simultaneous close
    (S.FIN_WAIT_1, C.RCV_RST): S.CLOSED,
    (S.FIN_WAIT_1, C.ABORT): S.CLOSED,
    (S.FIN_WAIT_1, C.TIMEOUT): S.CLOSED,

    (S.FIN_WAIT_2, C.RCV_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, C.RCV_RST): S.CLOSED,
    (S.FIN_WAIT_2, C.ABORT): S.CLOSED,
    (S.FIN_WAIT_2, C.KEEPALIVE_TIMEOUT): S.CLOSED,

    (S.CLOSE_WAIT, C.CLOSE): S.LAST_ACK,
    (S.CLOSE_WAIT, C.RCV_RST): S.CLOSED,
    (S.CLOSE_WAIT, C.ABORT): S.CLOSED,
    (S.CLOSE_WAIT, C.TIMEOUT): S.CLOSED,
    (S.CLOSE_WAIT, C.KEEPALIVE_TIMEOUT): S.CLOSED,

    (S.CLOSING, C.RCV_ACK_OF_FIN): S.TIME_WAIT,
    (S.CLOSING, C.RCV_RST): S.CLOSED,
    (S.CLOSING, C.ABORT): S.CLOSED,
    (S.CLOSING, C.TIMEOUT): S.CLOSED,

    (S.LAST_ACK, C.RCV_ACK_OF_FIN): S.CLOSED,
    (S.LAST_ACK, C.RCV_RST): S.CLOSED,
    (S.LAST_ACK, C.ABORT): S.CLOSED,
    (S.LAST_ACK, C.TIMEOUT): S.CLOSED,

    (S.TIME_WAIT, C.TIME_WAIT_EXPIRED): S.CLOSED,
    (S.TIME_WAIT, C.RCV_RST): S.CLOSED,
    (S.TIME_WAIT, C.ABORT): S.CLOSED,
}


def next_state(state: State, cause: Cause) -> State:
    """The state ``cause`` leads to from ``state``; raises TransitionError if the table has no such edge."""
    try:
        return TRANSITIONS[state, cause]
    except KeyError:
        raise TransitionError(f"no TCP transition from {state} on {cause.name} ({cause})") from None


def defined(state: State, cause: Cause) -> bool:
    """Whether ``cause`` changes state in ``state`` (elsewhere the same event changes nothing)."""
    return (state, cause) in TRANSITIONS


def edges() -> dict[tuple[State, State], list[Cause]]:
    """The table grouped by edge: (old, new) -> the causes that take it, in table order."""
    grouped: dict[tuple[State, State], list[Cause]] = {}
    for (old, cause), new in TRANSITIONS.items():
        grouped.setdefault((old, new), []).append(cause)
    return grouped


def state_diagram_dot() -> str:
    """The table as a Graphviz digraph (``dot -Tsvg``): one edge per (old, new), its causes one a line."""
    lines = ["digraph tcp {", "  rankdir=TB;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for state in State:
        lines.append(f'  "{state}";')
    for (old, new), causes in edges().items():
        label = "\\n".join(cause.label for cause in causes)
        lines.append(f'  "{old}" -> "{new}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def state_diagram_mermaid() -> str:
    """The table as a mermaid ``stateDiagram-v2`` (renders on GitHub): one arrow per table entry."""
    lines = ["stateDiagram-v2"]
    lines += [f'  state "{state}" as {state.name}' for state in State]  # ids cannot hold '-'
    lines.append(f"  [*] --> {State.CLOSED.name}")
    for (old, cause), new in TRANSITIONS.items():
        # a ':' would end mermaid's label early
        lines.append(f"  {old.name} --> {new.name}: {cause.label.replace(':', ' ')}")
    return "\n".join(lines) + "\n"


def state_diagram_text() -> str:
    """One line per table entry, RFC names: ``CLOSED -> SYN-SENT  active OPEN / snd SYN``."""
    width = max(len(f"{old} -> {new}") for (old, _), new in TRANSITIONS.items())
    return "".join(f"{f'{old} -> {new}':<{width}}  {cause.label}\n" for (old, cause), new in TRANSITIONS.items())
