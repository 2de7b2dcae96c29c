"""Dataclasses whose ``__init__`` is written out (so that mypyc compiles it: a generated one stays
interpreted) still take exactly their fields: the names, order, annotations and defaults the generated one
would take, each field set from its parameter, and a default_factory field from a fresh value."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from rawtcp import compiled
from rawtcp.core import tcb
from rawtcp.core.events import StateChanged
from rawtcp.core.recovery import AckSummary, Sent
from rawtcp.core.rto import Timer, TimerKind
from rawtcp.core.segment import Flags, Segment
from rawtcp.core.state import State
from rawtcp.core.transitions import Cause
from rawtcp.wire.shared import Route

TCB_GROUPS = [tcb.SendSequence, tcb.SendQueue, tcb.ReceiveSequence, tcb.ReceiveQueue, tcb.Negotiated, tcb.Congestion,
              tcb.LossProbe, tcb.Rtt, tcb.Timers, tcb.AckState]

WRITTEN_OUT = [Segment, Timer, StateChanged, Route, Sent, AckSummary, *TCB_GROUPS]


def _class_node(cls: type) -> ast.ClassDef:
    """The class as written in its source (a compiled class has no signature to inspect)."""
    for node in ast.walk(ast.parse(Path(compiled.source_path(cls.__module__)).read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    raise AssertionError(f"no class {cls.__name__} in {cls.__module__}")


def _text(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def _factory(value: ast.expr | None) -> str | None:
    """``X`` for a ``field(default_factory=X)`` default, else None."""
    if isinstance(value, ast.Call) and ast.unparse(value.func) == "field":
        return next((ast.unparse(k.value) for k in value.keywords if k.arg == "default_factory"), None)
    return None


def _assigned(statement: ast.stmt) -> tuple[str, str] | None:
    """(field, value) of ``self.f = v`` or ``object.__setattr__(self, "f", v)``."""
    if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Attribute)):
        return statement.targets[0].attr, ast.unparse(statement.value)
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call) \
            and ast.unparse(statement.value.func) == "object.__setattr__":
        return ast.literal_eval(statement.value.args[1]), ast.unparse(statement.value.args[2])
    return None


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_the_written_out_init_takes_the_fields(cls: type) -> None:
    node = _class_node(cls)
    fields = [(f.target.id, _text(f.annotation), f.value)  # inherited fields first
              for base in reversed(cls.__mro__) if dataclasses.is_dataclass(base)
              for f in _class_node(base).body if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)]
    assert [name for name, _, _ in fields] == [f.name for f in dataclasses.fields(cls)]
    (init,) = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
    params = init.args.args[1:]
    defaults = [None] * (len(params) - len(init.args.defaults)) + [_text(d) for d in init.args.defaults]
    # a parameter per field, as the generated __init__ has, but none for a default_factory field
    want = [(name, annotation, _text(value)) for name, annotation, value in fields if _factory(value) is None]
    assert [(p.arg, _text(p.annotation), d) for p, d in zip(params, defaults, strict=True)] == want
    # every field set once, in order: from its parameter, or a fresh value from its factory
    fresh = {"list": "[]"}
    sets = [found for statement in init.body if (found := _assigned(statement)) is not None]
    assert sets == [(name, name if (factory := _factory(value)) is None else fresh.get(factory, f"{factory}()"))
                    for name, _, value in fields]


def test_they_are_still_frozen_values() -> None:
    seg = Segment(1, 2, 3, 4, Flags.ACK, 100, (("NOP", None),), b"x", 0)
    assert seg == Segment(1, 2, 3, 4, Flags.ACK, 100, (("NOP", None),), b"x") and hash(seg) == hash(
        Segment(1, 2, 3, 4, Flags.ACK, 100, (("NOP", None),), b"x"))
    assert dataclasses.replace(seg, seq=9).seq == 9 and seg.seq == 3
    for value, field in ((seg, "seq"), (Timer(TimerKind.RETRANSMIT, 1.0), "deadline"),
                         (StateChanged(0.0, State.CLOSED, State.SYN_SENT, Cause.OPEN_ACTIVE), "time")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 1)

