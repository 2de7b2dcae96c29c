"""Pure parsing and arithmetic for probes: flag letters, option arguments, RTT summaries.

No sockets and no clock here, so the CLI's argument handling and the summary maths are unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rawtcp.core.segment import Flags, Option, flags_str
from rawtcp.craft.errors import CraftError

# hping3/nping letters: F S R P A U, plus E (ECE) and C (CWR) (RFC 3168 §6.1)
FLAG_LETTERS: dict[str, Flags] = {
    "F": Flags.FIN, "S": Flags.SYN, "R": Flags.RST, "P": Flags.PSH,
    "A": Flags.ACK, "U": Flags.URG, "E": Flags.ECE, "C": Flags.CWR,
}


def parse_flags(text: str) -> Flags:
    """``"SA"`` -> SYN|ACK. Letters from FSRPAUEC, any order, case-insensitive; ``""``/``"none"``: no flags."""
    if text.strip().lower() in ("", "none", "0"):
        return Flags(0)
    value = Flags(0)
    for ch in text.strip().upper():
        flag = FLAG_LETTERS.get(ch)
        if flag is None:
            raise CraftError(f"unknown TCP flag {ch!r} in {text!r}: use letters from FSRPAUEC")
        value |= flag
    return value


def flag_text(value: int) -> str:
    """tcpdump's spelling (``S``, ``S.``, ``R.``); ``"none"`` when no flag is set."""
    return flags_str(int(value))


def parse_ts(text: str) -> Option:
    """``--ts VAL,ECR`` -> ("Timestamp", (VAL, ECR)) (RFC 7323 §3)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise CraftError(f"--ts wants VAL,ECR (two numbers), not {text!r}")
    try:
        val, ecr = (int(p.strip(), 0) for p in parts)
    except ValueError:
        raise CraftError(f"--ts wants VAL,ECR (two numbers), not {text!r}") from None
    if not (0 <= val < 2**32 and 0 <= ecr < 2**32):
        raise CraftError(f"--ts values must fit 32 bits: {text!r}")
    return ("Timestamp", (val, ecr))


def parse_raw_option(text: str) -> Option:
    """``--opt KIND:HEX`` -> (KIND, bytes): any option, sent as given (kind byte, length byte, data).

    Kinds 0 (EOL) and 1 (NOP) are single bytes and take no data.
    """
    kind_text, sep, hex_text = text.partition(":")
    try:
        kind = int(kind_text.strip(), 0)
    except ValueError:
        raise CraftError(f"--opt wants KIND:HEX (e.g. 30:0102), not {text!r}") from None
    if not 0 <= kind <= 255:
        raise CraftError(f"--opt kind {kind} outside 0-255")
    try:
        data = bytes.fromhex(hex_text.replace(" ", "")) if sep else b""
    except ValueError:
        raise CraftError(f"--opt data must be hex digits, not {hex_text!r}") from None
    if kind in (0, 1):
        if data:
            raise CraftError(f"--opt {kind} (EOL/NOP) is one byte and carries no data")
        return ("EOL" if kind == 0 else "NOP", None)
    if len(data) > 38:
        raise CraftError(f"--opt {kind}: {len(data)} data bytes do not fit in 40 bytes of TCP options")
    return (kind, data)


def build_options(mss: int | None = None, wscale: int | None = None, sackok: bool = False,
                  ts: str | None = None, raw: Sequence[str] = ()) -> tuple[Option, ...]:
    """Options in the order Linux puts them in a SYN (MSS, SACK-permitted, timestamps, window scale),
    then the raw ones; checked to fit the 40 option bytes (RFC 9293 §3.1)."""
    from rawtcp.wire.packet import encode_options

    opts: list[Option] = []
    if mss is not None:
        if not 0 <= mss <= 65535:
            raise CraftError(f"--mss {mss} outside 0-65535")
        opts.append(("MSS", mss))
    if sackok:
        opts.append(("SAckOK", b""))
    if ts is not None:
        opts.append(parse_ts(ts))
    if wscale is not None:
        if not 0 <= wscale <= 255:
            raise CraftError(f"--wscale {wscale} outside 0-255")
        opts.append(("WScale", wscale))
    opts.extend(parse_raw_option(r) for r in raw)
    try:
        encode_options(opts)
    except ValueError as exc:
        raise CraftError(f"TCP options: {exc}") from None
    return tuple(opts)


def build_payload(data: str | None, data_len: int | None) -> bytes:
    """``--data TEXT`` (``0x…`` for hex) or ``--data-len N`` zero bytes, not both."""
    if data is not None and data_len is not None:
        raise CraftError("give --data or --data-len, not both")
    if data_len is not None:
        if not 0 <= data_len <= 1460:
            raise CraftError(f"--data-len {data_len} outside 0-1460")
        return bytes(data_len)
    if data is None:
        return b""
    if data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            raise CraftError(f"--data 0x… must be hex digits: {data!r}") from None
    return data.encode()


def parse_port_range(text: str) -> tuple[int, int]:
    """``--sport-range LO-HI`` (inclusive)."""
    lo_text, sep, hi_text = text.partition("-")
    try:
        lo, hi = int(lo_text), int(hi_text if sep else lo_text)
    except ValueError:
        raise CraftError(f"--sport-range wants LO-HI, not {text!r}") from None
    if not 1 <= lo <= hi <= 65535:
        raise CraftError(f"--sport-range {text!r}: need 1 <= LO <= HI <= 65535")
    return lo, hi


def rtt_summary(sent: int, rtts_ms: Sequence[float]) -> dict[str, Any]:
    """ping's statistics: sent, received, lost, loss %, min/avg/max/mdev of the RTTs (ms).

    mdev is ping's: sqrt(mean(rtt²) - mean(rtt)²), the population standard deviation.
    """
    received = len(rtts_ms)
    out: dict[str, Any] = {
        "sent": sent, "received": received, "lost": sent - received,
        "loss_pct": round(100.0 * (sent - received) / sent, 1) if sent else 0.0,
        "rtt_min_ms": None, "rtt_avg_ms": None, "rtt_max_ms": None, "rtt_mdev_ms": None,
    }
    if received:
        avg = sum(rtts_ms) / received
        var = max(0.0, sum(r * r for r in rtts_ms) / received - avg * avg)
        out.update(rtt_min_ms=round(min(rtts_ms), 3), rtt_avg_ms=round(avg, 3),
                   rtt_max_ms=round(max(rtts_ms), 3), rtt_mdev_ms=round(math.sqrt(var), 3))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
