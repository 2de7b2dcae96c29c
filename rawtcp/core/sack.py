"""Selective acknowledgment, the receiver's side: which blocks go into an ACK, in what order (RFC 2018 §4),
and D-SACK (RFC 2883 §4). The sender's side is core/recovery.py.

Positions are the endpoint's unbounded integers (not mod 2**32); the endpoint maps them to sequence
numbers on the wire. Ranges are ``(start, end)`` with ``end`` exclusive.
"""

from __future__ import annotations

Range = tuple[int, int]

# RFC 2018 §3: 40 bytes of option space hold four blocks, three beside the 12 bytes of TSopt.
MAX_BLOCKS = 4
MAX_BLOCKS_WITH_TS = 3
# How many recently reported positions the receiver remembers for the order of its blocks.
_RECENT = 16


def _containing(blocks: list[Range], pos: int) -> Range | None:
    for block in blocks:
        if block[0] <= pos < block[1]:
            return block
    return None


class SackReporter:
    """The receiver's side (RFC 2018 §4): which held blocks go into the next ACK, and in what order."""

    def __init__(self) -> None:
        self._recent: list[int] = []  # where recent out-of-order segments began, newest first
        self.dsack: Range | None = None  # RFC 2883: a duplicate to report once, in the first block

    def note(self, pos: int) -> None:
        """An out-of-order segment starting at ``pos`` was just stored."""
        self._recent = [pos, *[p for p in self._recent if p != pos][:_RECENT - 1]]

    def note_duplicate(self, start: int, end: int) -> None:
        """RFC 2883 §4: bytes [start, end) arrived again; the next ACK reports them first."""
        if start < end:
            self.dsack = (start, end)

    def clear(self) -> None:
        self._recent.clear()
        self.dsack = None

    def blocks(self, held: list[Range], limit: int) -> list[Range]:
        """RFC 2018 §4: the block holding the most recent segment first, then the most recently
        reported others; a D-SACK block (RFC 2883 §4) goes before them all, followed by the held block
        that contains it, if any. Takes the pending D-SACK (it is reported once)."""
        out: list[Range] = []
        if self.dsack is not None:
            out.append(self.dsack)
            around = _containing(held, self.dsack[0])
            if around is not None and around != self.dsack:
                out.append(around)
            self.dsack = None
        kept: list[int] = []
        for pos in self._recent:
            block = _containing(held, pos)
            if block is None:
                continue  # delivered since, or merged away
            kept.append(pos)
            if block not in out:
                out.append(block)
        self._recent = kept
        for block in reversed(held):  # never happens unless a block came without note(); still report it
            if block not in out:
                out.append(block)
        return out[:limit]
