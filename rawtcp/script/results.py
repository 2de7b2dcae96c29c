"""What a script run produced: the ladder of segments (with the kernel's states) and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rawtcp.core.segment import Flags, Segment, flags_str, format_options, segment_line

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

_FLAG_LETTERS = {"F": Flags.FIN, "S": Flags.SYN, "R": Flags.RST, "P": Flags.PSH, ".": Flags.ACK,
                 "A": Flags.ACK, "U": Flags.URG, "E": Flags.ECE, "W": Flags.CWR}


class ScriptFailure(Exception):
    """The kernel did not do what the script says: a packetdrill-style ``path:line: ...`` message."""


def flags_value(text: str) -> int:
    value = 0
    for letter in text:
        if letter == "-":
            continue
        value |= _FLAG_LETTERS[letter]
    return value


def script_flags_text(text: str) -> str:
    return flags_str(flags_value(text)) if text != "-" else "none"


@dataclass
class LadderEntry:
    time: float  # seconds since the script's time 0
    direction: str  # "<" peer -> kernel, ">" kernel -> peer
    segment: Segment
    rel_seq: int
    rel_ack: int
    line: int | None = None
    kstate: str | None = None
    label: str | None = None  # which connection, when a lab has several (the peer's port)
    icmp: str | None = None  # an ICMP message, as the script writes it; ``segment`` is the one it quotes
    who: str = "kernel"  # whose state ``kstate`` is: rawtcp.lab.stack.state_label of the stack under test

    def text(self) -> str:
        if self.icmp is not None:
            line = f"{self.time:9.6f} {self.direction} icmp {self.icmp}"
            return f"{line:<72} {self.who}: {self.kstate}" if self.kstate else line
        seg = self.segment
        where = f"[{self.label}] {self.direction}" if self.label else self.direction
        # the script's own syntax (``S. 0:0(0) ack 1``), relative numbers, so a line can go back into one
        text = segment_line(seg.flags, self.rel_seq, self.rel_ack, seg.window, len(seg.payload), seg.options,
                            flags_width=5, packetdrill=True)
        line = f"{self.time:9.6f} {where} {text}"
        if self.kstate:
            line = f"{line:<72} {self.who}: {self.kstate}"
        return line

    def to_dict(self) -> dict[str, Any]:
        from rawtcp.lab.stack import label_stack

        seg = self.segment
        return {"time": round(self.time, 6), "dir": self.direction, "flags": flags_str(int(seg.flags)),
                "seq": self.rel_seq, "ack": self.rel_ack if seg.flags & Flags.ACK else None,
                "abs_seq": seg.seq, "abs_ack": seg.ack, "sport": seg.sport, "dport": seg.dport,
                "win": seg.window, "len": len(seg.payload),
                "options": format_options(seg.options), "line": self.line, "kernel_state": self.kstate,
                "stack": label_stack(self.who),
                **({"icmp": self.icmp} if self.icmp is not None else {})}


@dataclass
class RunResult:
    path: str
    exit_code: int
    error: str | None = None
    ladder: list[LadderEntry] = field(default_factory=list)
    duration: float = 0.0
    events: int = 0
    kernel_isn: int | None = None
    notes: list[str] = field(default_factory=list)
    stack: str = "linux"  # the stack under test (rawtcp.lab.stack.STACKS)

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_PASS

    def ladder_text(self) -> str:
        return "\n".join(entry.text() for entry in self.ladder)

    def to_dict(self) -> dict[str, Any]:
        return {"script": self.path, "stack": self.stack, "result": "pass" if self.passed else "fail",
                "exit_code": self.exit_code,
                "error": self.error, "events": self.events, "duration": round(self.duration, 3),
                "kernel_isn": self.kernel_isn, "notes": self.notes, "ladder": [e.to_dict() for e in self.ladder]}


