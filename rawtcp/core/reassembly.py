"""Out-of-order receive queue: byte ranges keyed by absolute stream position, never overlapping."""

from __future__ import annotations


class Reassembly:
    """Holds data that arrived ahead of RCV.NXT (RFC 9293 §3.10.7.4 seventh: segments may be queued).

    Positions are unbounded integers (not mod 2**32), so ordering is plain ``<``. Bytes already held win
    over later copies of the same range: overlaps are trimmed, never stored twice.
    """

    def __init__(self) -> None:
        self._blocks: list[tuple[int, bytes]] = []  # sorted by start, disjoint, non-empty

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(len(data) for _, data in self._blocks)

    def blocks(self) -> list[tuple[int, int]]:
        """The held ranges as (start, end) pairs, end exclusive (what a SACK block would report)."""
        return [(start, start + len(data)) for start, data in self._blocks]

    def overlap(self, start: int, end: int) -> tuple[int, int] | None:
        """The first part of [start, end) already held, if any (a duplicate, for D-SACK)."""
        for bstart, bdata in self._blocks:
            lo, hi = max(start, bstart), min(end, bstart + len(bdata))
            if lo < hi:
                return lo, hi
        return None

    def add(self, start: int, data: bytes) -> None:
        """Store ``data`` at ``start``, keeping only the parts not already held."""
        pieces: list[tuple[int, bytes]] = []
        pos, rest = start, data
        for bstart, bdata in self._blocks:
            if not rest:
                break
            bend = bstart + len(bdata)
            if bend <= pos:
                continue
            if bstart >= pos + len(rest):
                break
            if bstart > pos:
                pieces.append((pos, rest[: bstart - pos]))
            cut = min(len(rest), bend - pos)
            rest = rest[cut:]
            pos += cut
        if rest:
            pieces.append((pos, rest))
        if pieces:
            self._blocks = sorted(self._blocks + pieces)
            self._coalesce()

    def _coalesce(self) -> None:
        merged: list[tuple[int, bytes]] = []
        for start, data in self._blocks:
            if merged and merged[-1][0] + len(merged[-1][1]) == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + data)
            else:
                merged.append((start, data))
        self._blocks = merged

    def pop(self, pos: int) -> bytes:
        """Remove and return the bytes that continue the stream at ``pos``; drop anything before it."""
        out = bytearray()
        while self._blocks:
            start, data = self._blocks[0]
            end = start + len(data)
            if end <= pos:
                self._blocks.pop(0)
                continue
            if start > pos:
                break
            out += data[pos - start:]
            pos = end
            self._blocks.pop(0)
        return bytes(out)

    def clear(self) -> None:
        self._blocks.clear()
