"""The state changes of a run, saved beside its pcap so a ladder drawn later can show them."""

from __future__ import annotations

from typing import Any


def write_states(pcap: str, records: list[dict[str, Any]], wall0: float, rawtcp_addr: str,
                 kernel_addr: str) -> str:
    """Write rawtcp's and the peer stack's state records (times made absolute with ``wall0``); the
    stack's keep their ``who`` (``kernel`` for Linux, else the stack's name), which the ladder shows."""
    from rawtcp.capture.sidecar import write_sidecar

    states = []
    for rec in records:
        if rec.get("type") != "state":
            continue
        kernel = rec.get("who") not in (None, "rawtcp")
        states.append({
            "time": wall0 + rec["t"], "who": str(rec["who"]) if kernel else "rawtcp",
            "addr": kernel_addr if kernel else rawtcp_addr, "peer": rawtcp_addr if kernel else kernel_addr,
            "old": rec["old"], "new": rec["new"],
        })
    return write_sidecar(pcap, states)
