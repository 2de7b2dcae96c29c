"""Every legal state change of the endpoint, in one table (RFC 9293 §3.3.2, Figure 5).

``Endpoint._set_state`` refuses any (old, new) pair that is not listed here, and the state diagram is
rendered from this same table, so the picture cannot drift from the code.
"""

from __future__ import annotations

from rawtcp.core.state import State

S = State

# (old, new) -> what causes it (the label on the diagram's edge).
TRANSITIONS: dict[tuple[State, State], str] = {
    (S.CLOSED, S.SYN_SENT): "open_active / snd SYN",
    (S.CLOSED, S.LISTEN): "open_passive",
    (S.LISTEN, S.SYN_RECEIVED): "rcv SYN / snd SYN,ACK",
    (S.LISTEN, S.CLOSED): "close / abort",
    (S.SYN_SENT, S.ESTABLISHED): "rcv SYN,ACK / snd ACK",
    (S.SYN_SENT, S.SYN_RECEIVED): "rcv SYN (simultaneous open) / snd SYN,ACK",
    (S.SYN_SENT, S.CLOSED): "close / abort / rcv RST,ACK (refused) / SYN timeout",
    (S.SYN_RECEIVED, S.ESTABLISHED): "rcv ACK of SYN",
    (S.SYN_RECEIVED, S.FIN_WAIT_1): "close / snd FIN",
    (S.SYN_RECEIVED, S.LISTEN): "rcv RST or SYN (passive open)",
    (S.SYN_RECEIVED, S.CLOSED): "rcv RST (active open) / abort / SYN,ACK timeout",
    (S.ESTABLISHED, S.FIN_WAIT_1): "close / snd FIN",
    (S.ESTABLISHED, S.CLOSE_WAIT): "rcv FIN / snd ACK",
    (S.ESTABLISHED, S.CLOSED): "rcv RST / abort / timeout",
    (S.FIN_WAIT_1, S.FIN_WAIT_2): "rcv ACK of FIN",
    (S.FIN_WAIT_1, S.CLOSING): "rcv FIN / snd ACK",
    (S.FIN_WAIT_1, S.CLOSED): "rcv RST / abort / timeout",
    (S.FIN_WAIT_2, S.TIME_WAIT): "rcv FIN / snd ACK",
    (S.FIN_WAIT_2, S.CLOSED): "rcv RST / abort",
    (S.CLOSE_WAIT, S.LAST_ACK): "close / snd FIN",
    (S.CLOSE_WAIT, S.CLOSED): "rcv RST / abort / timeout",
    (S.CLOSING, S.TIME_WAIT): "rcv ACK of FIN",
    (S.CLOSING, S.CLOSED): "rcv RST / abort / timeout",
    (S.LAST_ACK, S.CLOSED): "rcv ACK of FIN / rcv RST / abort / timeout",
    (S.TIME_WAIT, S.CLOSED): "2MSL timeout / rcv RST / abort",
}


def allowed(old: State, new: State) -> bool:
    return (old, new) in TRANSITIONS


def state_diagram_dot() -> str:
    """The transition table as a Graphviz digraph (``dot -Tsvg``)."""
    lines = ["digraph tcp {", "  rankdir=TB;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for state in State:
        lines.append(f'  "{state}";')
    for (old, new), label in TRANSITIONS.items():
        lines.append(f'  "{old}" -> "{new}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def state_diagram_mermaid() -> str:
    """The transition table as a mermaid ``stateDiagram-v2`` (renders on GitHub)."""
    def ident(state: State) -> str:
        return state.name

    lines = ["stateDiagram-v2", f"  [*] --> {ident(State.CLOSED)}"]
    for (old, new), label in TRANSITIONS.items():
        lines.append(f"  {ident(old)} --> {ident(new)}: {label.replace(':', ' ')}")
    return "\n".join(lines) + "\n"


def state_diagram_text() -> str:
    """One line per transition, RFC names: ``CLOSED -> SYN-SENT  (open_active / snd SYN)``."""
    width = max(len(f"{old} -> {new}") for old, new in TRANSITIONS)
    return "".join(f"{f'{old} -> {new}':<{width}}  ({label})\n" for (old, new), label in TRANSITIONS.items())

