"""Classes whose ``__init__`` is written out (so that mypyc compiles it) still take exactly their
dataclass fields: the same names, order, annotations and defaults as the generated one would."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from rawtcp import compiled
from rawtcp.core.events import StateChanged
from rawtcp.core.rto import Timer, TimerKind
from rawtcp.core.segment import Flags, Segment
from rawtcp.core.state import State
from rawtcp.core.transitions import Cause

WRITTEN_OUT = [Segment, Timer, StateChanged]


def _class_node(cls: type) -> ast.ClassDef:
    """The class as written in its source (a compiled class has no signature to inspect)."""
    for node in ast.walk(ast.parse(Path(compiled.source_path(cls.__module__)).read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    raise AssertionError(f"no class {cls.__name__} in {cls.__module__}")


def _text(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_the_written_out_init_takes_the_fields(cls: type) -> None:
    node = _class_node(cls)
    fields = [(f.target.id, _text(f.annotation), _text(f.value))
              for base in reversed(cls.__mro__) if dataclasses.is_dataclass(base)  # inherited fields first
              for f in _class_node(base).body if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)]
    assert [name for name, _, _ in fields] == [f.name for f in dataclasses.fields(cls)]
    (init,) = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
    params = init.args.args[1:]
    defaults = [None] * (len(params) - len(init.args.defaults)) + [_text(d) for d in init.args.defaults]
    assert [(p.arg, _text(p.annotation), d) for p, d in zip(params, defaults, strict=True)] == fields
    # every field set once, in order, from the parameter of its name
    sets = [c.value for c in init.body if isinstance(c, ast.Expr) and isinstance(c.value, ast.Call)]
    assert [(ast.literal_eval(c.args[1]), _text(c.args[2])) for c in sets] == [(n, n) for n, _, _ in fields]


def test_they_are_still_frozen_values() -> None:
    seg = Segment(1, 2, 3, 4, Flags.ACK, 100, (("NOP", None),), b"x", 0)
    assert seg == Segment(1, 2, 3, 4, Flags.ACK, 100, (("NOP", None),), b"x") and hash(seg) == hash(
        Segment(1, 2, 3, 4, Flags.ACK, 100, (("NOP", None),), b"x"))
    assert dataclasses.replace(seg, seq=9).seq == 9 and seg.seq == 3
    for value, field in ((seg, "seq"), (Timer(TimerKind.RETRANSMIT, 1.0), "deadline"),
                         (StateChanged(0.0, State.CLOSED, State.SYN_SENT, Cause.OPEN_ACTIVE), "time")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 1)

