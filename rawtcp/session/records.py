"""What a session reports: one record per segment on the wire and per state change.

Records are plain dicts on the way out (JSON lines between the keeper and the CLI, ``--json`` output,
the demo's ladder), built here in one place so every consumer reads the same fields.
"""

from __future__ import annotations

from typing import Any

from rawtcp.core import seq as sq
from rawtcp.core.segment import Segment, flags_str, format_options
from rawtcp.core.transitions import Cause


def segment_record(
    t: float,
    direction: str,
    seg: Segment,
    *,
    iss: int | None,
    irs: int | None,
    state: str,
    src: str,
    dst: str,
    note: str = "",
) -> dict[str, Any]:
    """A segment as seen on the wire; ``direction`` is "out" (ours) or "in" (the peer's).

    Relative numbers follow tshark: each direction's sequence numbers count from that side's ISN.
    """
    own_base, peer_base = (iss, irs) if direction == "out" else (irs, iss)
    rec: dict[str, Any] = {
        "type": "segment",
        "t": round(t, 6),
        "dir": direction,
        "src": src,
        "dst": dst,
        "flags": flags_str(int(seg.flags)),
        "seq": seg.seq,
        "ack": seg.ack if seg.flags & 0x10 else None,
        "rel_seq": sq.sub(seg.seq, own_base) if own_base is not None else None,
        "rel_ack": sq.sub(seg.ack, peer_base) if (seg.flags & 0x10 and peer_base is not None) else None,
        "win": seg.window,
        "len": len(seg.payload),
        "options": format_options(seg.options),
        "state": state,
    }
    if note:
        rec["note"] = note
    return rec


def state_record(t: float, old: str, new: str, who: str = "rawtcp", cause: Cause | None = None) -> dict[str, Any]:
    """A state change; ``cause`` is written as its edge label in the state diagram (``rawtcp states``)."""
    return {"type": "state", "t": round(t, 6), "who": who, "old": old, "new": new,
            "cause": "" if cause is None else cause.label}


def event_record(t: float, event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "t": round(t, 6), "event": event, **fields}
