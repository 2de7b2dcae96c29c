"""How records look on a terminal: one line per segment, state change or event; or JSON lines."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from rawtcp.core.segment import segment_words

Record = dict[str, Any]


def _num(value: int | None, rel: int | None) -> str:
    if value is None:
        return ""
    return f"{value} (rel {rel})" if rel is not None else str(value)


def peer_word(rec: Record) -> str:
    """Whose state a segment record's ``kernel_state`` is: ``kernel`` for Linux, else the stack's name."""
    from rawtcp.lab.stack import state_label

    return state_label(str(rec.get("stack") or "linux"))


def _peer_state(rec: Record) -> bool:
    """A state change of the stack under test (rawtcp's own are ``who: rawtcp``)."""
    return rec.get("who") not in (None, "rawtcp")


def format_record(rec: Record) -> str | None:
    kind = rec.get("type")
    if kind == "segment":
        arrow = "→" if rec["dir"] == "out" else "←"
        ack = None if rec.get("ack") is None else _num(rec["ack"], rec.get("rel_ack"))
        words = segment_words(rec["flags"], _num(rec["seq"], rec.get("rel_seq")), ack, rec["win"],
                              rec.get("len") or 0, rec.get("options") or "", brackets=True)
        # two spaces between fields: a number with its relative twin has a space of its own
        text = f"{arrow} {rec['t']:.6f} {words.flags:<6} {words.fields('  ')}   {rec['state']}"
        if rec.get("kernel_state"):
            text += f"   {peer_word(rec)}: {rec['kernel_state']}"
        if rec.get("note"):
            text += f"   ({rec['note']})"
        return text
    if kind == "state":
        who = f"{rec['who']} " if _peer_state(rec) else ""
        cause = f"  ({rec['cause']})" if rec.get("cause") else ""
        return f"  {rec['t']:.6f} {who}{rec['old']} → {rec['new']}{cause}"
    if kind == "event":
        fields = " ".join(f"{k}={v}" for k, v in rec.items() if k not in ("type", "t", "event"))
        return f"  {rec['t']:.6f} {rec['event']} {fields}".rstrip()
    return None


def style_line(rec: Record, line: str) -> str:
    if rec.get("type") == "segment":
        return click.style(line, fg="cyan" if rec["dir"] == "out" else "green")
    if rec.get("type") == "state":
        return click.style(line, fg="magenta" if _peer_state(rec) else "yellow")
    if rec.get("type") == "event":
        return click.style(line, fg="red")
    return line


class Printer:
    """Prints records as lines (coloured on a terminal) or as JSON lines with ``--json``."""

    def __init__(self, as_json: bool = False, err: bool = False) -> None:
        self.as_json = as_json
        self.err = err  # records on stderr, when stdout carries data (recv --out -)
        self.color = (sys.stderr if err else sys.stdout).isatty()

    def __call__(self, rec: Record) -> None:
        if self.as_json:
            click.echo(json.dumps(rec), err=self.err)
            return
        line = format_record(rec)
        if line is not None:
            click.echo(style_line(rec, line) if self.color else line, err=self.err)

    def message(self, text: str, **fields: Any) -> None:
        if self.as_json:
            click.echo(json.dumps({"type": "message", "message": text, **fields}))
        else:
            click.echo(text)
