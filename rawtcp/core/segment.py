"""The TCP segment as an immutable value: what the core consumes and produces.

Options use scapy's names and value shapes so the wire layer can hand them over unchanged:
``("MSS", 1460)``, ``("WScale", 7)``, ``("SAckOK", b"")``, ``("Timestamp", (val, ecr))``,
``("SAck", (left1, right1, ...))``, ``("NOP", None)``, ``("EOL", None)``, and ``(kind, bytes)`` for
any other kind.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

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
        for entry in self.options:
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
        return any(isinstance(e, tuple) and len(e) == 2 and e[0] == "SAckOK" for e in self.options)

    def summary(self) -> str:
        text = f"[{flags_str(int(self.flags))}] seq={self.seq}"
        if self.flags & Flags.ACK:
            text += f" ack={self.ack}"
        text += f" win={self.window} len={len(self.payload)}"
        if self.options:
            text += " <" + format_options(self.options) + ">"
        return text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_options(options: tuple[Option, ...] | list[Option]) -> str:
    """tcpdump-like option text: ``mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7``."""
    parts = []
    for key, value in options:
        if key == "MSS":
            parts.append(f"mss {value}")
        elif key == "WScale":
            parts.append(f"wscale {value}")
        elif key == "SAckOK":
            parts.append("sackOK")
        elif key == "Timestamp":
            parts.append(f"TS val {value[0]} ecr {value[1]}")
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
