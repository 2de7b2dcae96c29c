"""The TCP segment as an immutable value: what the core consumes and produces.

Options use scapy's names and value shapes so the wire layer can hand them over unchanged:
``("MSS", 1460)``, ``("WScale", 7)``, ``("SAckOK", b"")``, ``("Timestamp", (val, ecr))``,
``("SAck", (left1, right1, ...))``, ``("NOP", None)``, ``("EOL", None)``, and ``(kind, bytes)`` for
any other kind.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from rawtcp.core.seq import MASK as SEQ_MASK

Option = tuple[Any, Any]

TFO_KIND = 34  # RFC 7413 §4.1.1: TCP Fast Open cookie
EXP_KIND = 254  # RFC 6994 shared experimental option; TFO's draft used it with magic 0xF989
TFO_EXP_MAGIC = b"\xf9\x89"


class Flags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80

    def short(self) -> str:
        """tcpdump's spelling: ``S``, ``S.``, ``P.``, ``F.``, ``R``, ``.`` …"""
        return flags_str(int(self))


# tcpdump prints the letters in this order and "." for ACK, last.
_TCPDUMP_ORDER = [(Flags.SYN, "S"), (Flags.FIN, "F"), (Flags.PSH, "P"), (Flags.RST, "R"),
                  (Flags.URG, "U"), (Flags.ECE, "E"), (Flags.CWR, "W")]


_int_and = int.__and__
_SYN_FIN = int(Flags.SYN | Flags.FIN)  # SYN is bit 1, FIN bit 0: seg_len adds (bits & 1) + (bits >> 1)


def flags_str(value: int) -> str:
    text = "".join(letter for flag, letter in _TCPDUMP_ORDER if value & flag)
    if value & Flags.ACK:
        text += "."
    return text or "none"


@dataclass(frozen=True, slots=True)
class Segment:
    sport: int
    dport: int
    seq: int
    ack: int = 0
    flags: Flags = Flags(0)  # noqa: RUF009 (an immutable IntFlag value)
    window: int = 0
    options: tuple[Option, ...] = ()
    payload: bytes = b""
    urgent: int = 0

    # Written out, not generated: mypyc compiles this one (a generated __init__ stays interpreted), which
    # makes a segment five times cheaper to build. tests/test_initializers.py holds it to the fields.
    def __init__(self, sport: int, dport: int, seq: int, ack: int = 0, flags: Flags = Flags(0),  # noqa: B008
                 window: int = 0, options: tuple[Option, ...] = (), payload: bytes = b"", urgent: int = 0) -> None:
        object.__setattr__(self, "sport", sport)
        object.__setattr__(self, "dport", dport)
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "ack", ack)
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "urgent", urgent)

    @property
    def seg_len(self) -> int:
        """Sequence space consumed: payload plus one each for SYN and FIN (RFC 9293 §3.4)."""
        bits = _int_and(self.flags, _SYN_FIN)
        return len(self.payload) + (bits & 1) + (bits >> 1)

    def has(self, flag: Flags) -> bool:
        # int's own & on the two values: IntFlag's & would build a new Flags member on every test, and
        # these tests run on every segment in and out (a tenth of a connection's time in the core).
        return _int_and(self.flags, flag) != 0

    def option(self, name: Any) -> Any:
        """Value of the first option called ``name``, or None (malformed entries are skipped)."""
        entries: tuple[object, ...] = self.options  # hand-built segments may hold any shape
        for entry in entries:
            if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == name:
                return entry[1]
        return None

    @property
    def mss(self) -> int | None:
        value = self.option("MSS")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def timestamp(self) -> tuple[int, int] | None:
        """(TSval, TSecr) of a well-formed TSopt (RFC 7323 §3.2), else None."""
        value = self.option("Timestamp")
        if isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) for v in value):
            return value[0] % (1 << 32), value[1] % (1 << 32)
        return None

    @property
    def wscale(self) -> int | None:
        value = self.option("WScale")
        return value if _is_int(value) and value >= 0 else None

    @property
    def sack_blocks(self) -> list[tuple[int, int]]:
        """The (left, right) edges of a well-formed SACK option (RFC 2018 §3), wire values; else []."""
        value = self.option("SAck")
        if not isinstance(value, tuple) or len(value) % 2 or not all(_is_int(v) for v in value):
            return []
        return [(value[i] % (1 << 32), value[i + 1] % (1 << 32)) for i in range(0, len(value), 2)]

    @property
    def sack_permitted(self) -> bool:
        entries: tuple[object, ...] = self.options
        return any(isinstance(e, tuple) and len(e) == 2 and e[0] == "SAckOK" for e in entries)

    def summary(self) -> str:
        """``S. seq 8000 ack 1001 win 65160 len 0 <mss 1024>``: the segment line, absolute numbers."""
        return segment_line(self.flags, self.seq, self.ack, self.window, len(self.payload), self.options)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_options(options: Sequence[Option], *, ts_values: bool = True) -> str:
    """tcpdump-like option text: ``mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7``.

    ``ts_values=False`` writes a timestamp option as bare ``TS``, for text whose timestamps were zeroed
    (a comparison of two runs: the values differ on every run, RFC 7323 §3).
    """
    parts = []
    for key, value in options:
        if key == "MSS":
            parts.append(f"mss {value}")
        elif key == "WScale":
            parts.append(f"wscale {value}")
        elif key == "SAckOK":
            parts.append("sackOK")
        elif key == "Timestamp":
            parts.append(f"TS val {value[0]} ecr {value[1]}" if ts_values else "TS")
        elif key == "SAck":
            blocks = [f"{value[i]}:{value[i + 1]}" for i in range(0, len(value) - 1, 2)]
            parts.append("sack " + " ".join(blocks))
        elif key == "NOP":
            parts.append("nop")
        elif key == "EOL":
            parts.append("eol")
        elif key in ("TFO", TFO_KIND):
            # RFC 7413 §4.1.1, written as packetdrill writes it: FO and the cookie in hex
            cookie = struct.pack(f"!{len(value)}I", *value) if isinstance(value, tuple) else bytes(value or b"")
            parts.append(f"FO {cookie.hex()}" if cookie else "FO")
        elif key == EXP_KIND and isinstance(value, bytes | bytearray) and value[:2] == TFO_EXP_MAGIC:
            # the experimental TFO option (kind 254, magic 0xF989) packetdrill calls FOEXP
            parts.append(f"FOEXP {bytes(value[2:]).hex()}" if len(value) > 2 else "FOEXP")
        else:
            data = value.hex() if isinstance(value, bytes | bytearray) else value
            parts.append(f"opt-{key}:{data}")
    return ",".join(parts)


# --- the segment line ------------------------------------------------------------------------------
# Every text view of a segment (the ladders, a comparison's rows, a script's ladder, the session's
# lines, a probe's SENT/RCVD lines) spells its fields here, so they read the same everywhere. Layout
# around them (arrows, columns, colour, which numbers: absolute or relative) stays with the caller.


def options_word(options: str | Sequence[Option]) -> str:
    """``<mss 1460,nop,wscale 7>``, or "" without options; a str is option text already made by
    :func:`format_options` (a record's field, or options edited first, as SACK edges made relative)."""
    text = options if isinstance(options, str) else format_options(options)
    return f"<{text}>" if text else ""


class SegmentWords(NamedTuple):
    """A segment's fields as words, "" where a field is not shown; ``line`` joins them."""

    flags: str  # "S.", or "[S.]"
    seq: str  # "seq 0"; "0:0(0)" in packetdrill's form, which then has no length word
    ack: str  # "ack 1", "" unless the ACK flag is set
    window: str  # "win 65160"
    length: str  # "len 0"
    options: str  # "<mss 1460>"

    def line(self, flags_width: int = 0, gap: str = " ") -> str:
        """The words in one line: ``S. seq 0 ack 1 win 65160 len 0 <mss 1460>``. ``flags_width`` pads the
        flags word so the rest lines up in a column; ``gap`` goes between the words."""
        return gap.join([self.flags.ljust(flags_width), *self._rest()])

    def fields(self, gap: str = " ") -> str:
        """The words after the flags (``seq 0 ack 1 win 65160 len 0 <mss 1460>``), for a line that puts
        something between the two (nping puts the IP header's fields there)."""
        return gap.join(self._rest())

    def _rest(self) -> list[str]:
        return [w for w in self[1:] if w]


def segment_words(
    flags: int | str,
    seq: int | str,
    ack: int | str | None,
    window: int | None,
    length: int,
    options: str | Sequence[Option] = "",
    *,
    show_ack: bool | None = None,
    brackets: bool = False,
    sep: str = " ",
    packetdrill: bool = False,
) -> SegmentWords:
    """The words of a segment line.

    ``flags`` is the flag bits, or their :func:`flags_str` spelling (a record's field). ``seq`` and
    ``ack`` are numbers, or text the caller made of them (``1000 (rel 0)``): absolute or relative is the
    caller's choice. The ack is shown only with the ACK flag, as tcpdump (``show_ack`` overrides that: a
    crafted segment may carry an ack without the flag); ``ack=None`` never shows it. ``window=None``
    leaves the window out. ``brackets`` writes ``[S.]``; ``sep`` goes between a field's name and value
    (``=`` for nping's ``seq=0``); ``packetdrill`` writes seq and length as a packetdrill script does,
    ``start:end(len)`` (an int ``seq`` then).
    """
    spelled = flags if isinstance(flags, str) else flags_str(int(flags))
    if show_ack is None:
        show_ack = "." in spelled if isinstance(flags, str) else bool(int(flags) & Flags.ACK)
    if packetdrill:
        if not isinstance(seq, int):
            raise TypeError("packetdrill's start:end(len) needs seq as a number")
        seq_word, len_word = f"{seq}:{(seq + length) & SEQ_MASK}({length})", ""
    else:
        seq_word, len_word = f"seq{sep}{seq}", f"len{sep}{length}"
    return SegmentWords(
        flags=f"[{spelled}]" if brackets else spelled,
        seq=seq_word,
        ack=f"ack{sep}{ack}" if show_ack and ack is not None else "",
        window="" if window is None else f"win{sep}{window}",
        length=len_word,
        options=options_word(options),
    )


def segment_line(
    flags: int | str,
    seq: int | str,
    ack: int | str | None,
    window: int | None,
    length: int,
    options: str | Sequence[Option] = "",
    *,
    flags_width: int = 0,
    show_ack: bool | None = None,
    brackets: bool = False,
    sep: str = " ",
    packetdrill: bool = False,
) -> str:
    """One segment as one line: ``S. seq 0 ack 1 win 65160 len 0 <mss 1460>`` (see :func:`segment_words`
    for the arguments, :meth:`SegmentWords.line` for ``flags_width``)."""
    words = segment_words(flags, seq, ack, window, length, options, show_ack=show_ack, brackets=brackets,
                          sep=sep, packetdrill=packetdrill)
    return words.line(flags_width)
