"""Selective acknowledgment: the receiver's choice of blocks (RFC 2018 §4, D-SACK RFC 2883 §4) and the
sender's scoreboard (RFC 6675 §3-4: IsLost, SetPipe, NextSeg's candidates).

Positions are the endpoint's unbounded integers (not mod 2**32); the endpoint maps them to sequence
numbers on the wire. Ranges are ``(start, end)`` with ``end`` exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable

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


class Scoreboard:
    """The sender's record of what the peer SACKed above SND.UNA (RFC 6675 §3)."""

    def __init__(self) -> None:
        self.blocks: list[Range] = []  # sorted, disjoint, not touching

    def __len__(self) -> int:
        return len(self.blocks)

    def clear(self) -> None:
        self.blocks.clear()

    @property
    def sacked(self) -> int:
        return sum(end - start for start, end in self.blocks)

    def highest(self) -> int | None:
        """One past the highest SACKed position, None when nothing is SACKed."""
        return self.blocks[-1][1] if self.blocks else None

    def update(self, una: int, high: int, ranges: Iterable[Range]) -> list[Range]:
        """Record SACK blocks, clipped to [una, high) (a D-SACK block below SND.UNA adds nothing);
        returns the newly SACKed ranges."""
        new: list[Range] = []
        for start, end in ranges:
            start, end = max(start, una), min(end, high)
            if start >= end:
                continue
            pos = start
            for bstart, bend in self.blocks:
                if bend <= pos:
                    continue
                if bstart >= end:
                    break
                if bstart > pos:
                    new.append((pos, bstart))
                pos = max(pos, bend)
                if pos >= end:
                    break
            if pos < end:
                new.append((pos, end))
            self._add(start, end)
        return new

    def _add(self, start: int, end: int) -> None:
        merged: list[Range] = []
        for bstart, bend in sorted([*self.blocks, (start, end)]):
            if merged and bstart <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], bend))
            else:
                merged.append((bstart, bend))
        self.blocks = merged

    def advance(self, una: int) -> None:
        """SND.UNA moved: forget what lies below it."""
        self.blocks = [(max(s, una), e) for s, e in self.blocks if e > una]

    def is_sacked(self, pos: int) -> bool:
        return _containing(self.blocks, pos) is not None

    def skip(self, pos: int) -> int:
        """``pos``, or the end of the SACKed block it lies in."""
        block = _containing(self.blocks, pos)
        return pos if block is None else block[1]

    def next_sacked(self, pos: int) -> int | None:
        """Start of the first SACKed block at or after ``pos``."""
        for start, _ in self.blocks:
            if start >= pos:
                return start
        return None

    def sacked_between(self, a: int, b: int) -> int:
        return sum(max(0, min(e, b) - max(s, a)) for s, e in self.blocks)

    def holes(self, una: int, high: int) -> list[Range]:
        """The un-SACKed ranges between SND.UNA and HighData."""
        out: list[Range] = []
        pos = una
        for start, end in self.blocks:
            if start > pos:
                out.append((pos, min(start, high)))
            pos = max(pos, end)
        if pos < high:
            out.append((pos, high))
        return [(s, e) for s, e in out if s < e]

    def lost_edge(self, dupthresh: int, smss: int) -> int | None:
        """RFC 6675 §4 IsLost: an un-SACKed position is lost when DupThresh discontiguous SACKed blocks,
        or more than (DupThresh - 1) * SMSS SACKed bytes, lie above it. Returns the edge L below which
        every un-SACKed position is lost (holes lie between blocks, so L is a block's left edge)."""
        sacked = 0
        for count, (start, end) in enumerate(reversed(self.blocks), 1):
            sacked += end - start
            if count >= dupthresh or sacked > (dupthresh - 1) * smss:
                return start
        return None

    def pipe(self, una: int, high: int, lost_edge: int | None, high_rxt: int) -> int:
        """RFC 6675 §4 SetPipe: each un-SACKed octet counts once if not lost, and once more if it was
        retransmitted (at or below HighRxt)."""
        total = 0
        edge = una if lost_edge is None else lost_edge
        for start, end in self.holes(una, high):
            total += end - max(start, min(end, edge))
            total += max(0, min(end, high_rxt) - start)
        return total
