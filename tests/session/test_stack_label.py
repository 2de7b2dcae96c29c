"""The stack under test's state, labelled with that stack wherever it is shown: `kernel:` for Linux (the
spelling of every ladder, capture comment and states file), the stack's own name for another
(`pytcp:`); JSON records name the stack in a `stack` field. No root, no network: the watcher is a fake
holding the events an agent would have reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rawtcp.commands.demo import ladder_lines
from rawtcp.commands.output import format_record
from rawtcp.core.segment import Flags, Segment
from rawtcp.lab.kstate import KernelStateEvent, KernelStateWatcher
from rawtcp.lab.stack import label_stack, state_label
from rawtcp.script.results import LadderEntry
from rawtcp.session.kernelview import KernelView
from rawtcp.session.sidecar import write_states

T0 = 1000.0
PEER = ("198.18.0.2", 8080)
US = ("198.18.0.1", 40000)


class FakeWatcher:
    """What KernelView reads of a watcher: the stack's name and its recorded changes."""

    def __init__(self, stack: str, events: list[KernelStateEvent]) -> None:
        self.stack = stack
        self._events = events

    def events_for(self, local: Any, remote: Any) -> list[KernelStateEvent]:
        return [e for e in self._events if (e.saddr, e.sport) == local and (e.daddr, e.dport) == remote]

    def current(self, local: Any, remote: Any) -> str | None:
        events = self.events_for(local, remote)
        return events[-1].new if events else None


def _event(t: float, old: str, new: str) -> KernelStateEvent:
    return KernelStateEvent(T0 + t, PEER[0], PEER[1], US[0], US[1], old, new)


def _segment(t: float, direction: str, flags: str) -> dict[str, Any]:
    return {"type": "segment", "t": t, "dir": direction, "flags": flags, "seq": 1, "ack": 1, "rel_seq": 0,
            "rel_ack": 0, "win": 65535, "len": 0, "options": "", "state": "SYN-SENT"}


def _view_records(stack: str) -> list[dict[str, Any]]:
    view = KernelView(FakeWatcher(stack, [_event(0.001, "LISTEN", "SYN-RECEIVED")]), PEER, US, T0)
    out: list[dict[str, Any]] = []
    view.add(_segment(0.0, "out", "S"), T0)
    view.add(_segment(0.002, "in", "S."), T0 + 0.002)
    view.release(T0 + 1.0, out.append, force=True)
    return out


def test_the_label_is_kernel_for_linux_and_the_stack_name_otherwise() -> None:
    assert state_label("linux") == "kernel" and state_label("pytcp") == "pytcp"
    assert label_stack("kernel") == "linux" and label_stack("pytcp") == "pytcp"
    assert KernelStateWatcher.stack == "linux"


@pytest.mark.parametrize(("stack", "word"), [("linux", "kernel"), ("pytcp", "pytcp")])
def test_session_records_name_the_stack(stack: str, word: str) -> None:
    records = _view_records(stack)
    synack = next(r for r in records if r["type"] == "segment" and r["flags"] == "S.")
    assert synack["kernel_state"] == "SYN-RECEIVED" and synack["stack"] == stack
    change = next(r for r in records if r["type"] == "state")
    assert change["who"] == word and change["stack"] == stack
    # the text lines: beside the segment, and the change itself
    assert format_record(synack).endswith(f"SYN-SENT   {word}: SYN-RECEIVED")  # type: ignore[union-attr]
    assert f"{word} LISTEN → SYN-RECEIVED" in (format_record(change) or "")


def test_a_user_space_stack_is_given_time_to_react() -> None:
    """PyTCP handles a segment in milliseconds: the SYN we sent shows the state it led to 10 ms later."""
    view = KernelView(FakeWatcher("pytcp", [_event(0.010, "LISTEN", "SYN-RECEIVED")]), PEER, US, T0)
    out: list[dict[str, Any]] = []
    view.add(_segment(0.0, "out", "S"), T0)
    view.release(T0 + 1.0, out.append, force=True)
    assert next(r for r in out if r["type"] == "segment")["kernel_state"] == "SYN-RECEIVED"


def test_rawtcps_own_changes_carry_no_stack_word() -> None:
    rec = {"type": "state", "t": 0.5, "who": "rawtcp", "old": "SYN-SENT", "new": "ESTABLISHED", "cause": ""}
    assert (format_record(rec) or "").strip().startswith("0.500000 SYN-SENT → ESTABLISHED")


def test_the_states_file_keeps_whose_states_they_are(tmp_path: Path) -> None:
    pcap = str(tmp_path / "run.pcap")
    ours = {"type": "state", "t": 0.0, "who": "rawtcp", "old": "CLOSED", "new": "SYN-SENT"}
    records = [*_view_records("pytcp"), ours]
    path = write_states(pcap, records, 1_700_000_000.0, "198.18.0.1:40000", "198.18.0.2:8080")
    states = json.loads(Path(path).read_text())["states"]
    assert {s["who"] for s in states} == {"pytcp", "rawtcp"}


def test_the_demo_ladder_is_headed_by_the_stack() -> None:
    rec = {**_segment(0.0, "in", "S."), "rel_ack": 1, "kernel_state": "SYN-RECEIVED", "stack": "pytcp"}
    lines = ladder_lines([rec], None, "pytcp")
    assert lines[0].endswith("PyTCP") and lines[1].endswith("SYN-RECEIVED")
    narrow = ladder_lines([rec], 30, "pytcp")
    assert "pytcp: SYN-RECEIVED" in "\n".join(narrow) and "PyTCP's state below each" in narrow[0]
    assert ladder_lines([rec], None)[0].endswith("Linux kernel")


def test_a_script_ladder_entry_names_its_stack() -> None:
    seg = Segment(8080, 40000, 0, 1, Flags.SYN | Flags.ACK, 65535, (), b"")
    entry = LadderEntry(0.001, ">", seg, 0, 1, kstate="SYN-RECEIVED", who=state_label("pytcp"))
    assert entry.text().endswith("pytcp: SYN-RECEIVED") and entry.to_dict()["stack"] == "pytcp"
    linux = LadderEntry(0.001, ">", seg, 0, 1, kstate="SYN-RECEIVED")
    assert linux.text().endswith("kernel: SYN-RECEIVED") and linux.to_dict()["stack"] == "linux"
