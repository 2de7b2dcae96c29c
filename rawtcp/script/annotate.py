"""The kernel socket's state beside each segment of a script's ladder, from the tracepoint's records."""

from __future__ import annotations

from typing import Any

from rawtcp.script.results import LadderEntry

KERNEL_REACTION = 0.0003  # seconds Linux takes to handle a segment on veth (it is done in softirq)


def annotate_states(ladder: list[LadderEntry], events: list[Any], kernel_ip: str, peer_ip: str, start: float,
                    end: float, reaction: float = KERNEL_REACTION) -> None:
    """Write the kernel socket's state beside each segment of ``ladder`` (times relative to ``start``).

    ``events`` are rawtcp.lab.kstate records. The tracepoint sees every namespace, so only this
    run's connections count: kernel address to peer address, the segment's own ports, after start.
    An outbound segment is sent after the state change that caused it (and sniffed just after); an
    inbound one is judged by the change it causes (within ``reaction`` seconds, the stack's processing
    time — 300 us for the kernel, longer for a user-space stack — and before that connection's next
    segment).
    """
    def key(entry: LadderEntry) -> tuple[int, int]:
        seg = entry.segment
        return (seg.dport, seg.sport) if entry.direction == "<" else (seg.sport, seg.dport)

    mine = [e for e in events if e.saddr == kernel_ip and e.daddr == peer_ip and e.time >= start]
    for i, entry in enumerate(ladder):
        kport, pport = key(entry)
        nxt = next((later.time for later in ladder[i + 1:] if key(later) == (kport, pport)), end)
        limit = min(entry.time if entry.direction == ">" else entry.time + reaction, nxt)
        changes = [e for e in mine if e.sport == kport and e.dport == pport and e.time <= start + limit]
        if not changes:
            continue
        last = changes[-1]
        entry.kstate = last.new
        if last.new == "CLOSED" and last.old in ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING"):
            # tcp_time_wait(): a small timewait socket takes over (FIN-WAIT-2 or TIME-WAIT) and the
            # full socket is closed; the tracepoint only sees the full socket.
            entry.kstate = "CLOSED (timewait socket took over)"
