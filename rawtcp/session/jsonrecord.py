"""Reading a frozen dataclass back from a JSON object, checked field by field.

Every record that crosses a process boundary in the session layer (the keeper's spec, its requests
and replies, the registry's session files) decodes through :func:`fields_from_json`, so a malformed
message fails the same way everywhere: one line naming the message and the field, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rawtcp.session.errors import ProtocolError

T = TypeVar("T")


def parse_object(text: str | bytes, what: str) -> dict[str, Any]:
    """``text`` as a JSON object, or ProtocolError naming ``what``."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"malformed {what}: not JSON ({exc})") from None
    return require_object(obj, what)


def require_object(obj: object, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ProtocolError(f"malformed {what}: expected a JSON object, got {_kind(obj)}")
    return obj


def _kind(value: object) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _accepts(hint: Any, value: object) -> bool:
    """Whether the JSON ``value`` fits the annotation ``hint`` (scalars, Optional, Literal, list, dict)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)  # JSON 600 is a float field's 600.0
    if hint is str:
        return isinstance(value, str)
    if origin is list or hint is list:
        return isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return False


def _wants_float(hint: Any, value: object) -> bool:
    """A JSON integer for a float field (``"idle": 600``) is read as the float it means."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return hint is float or (float in typing.get_args(hint) and int not in typing.get_args(hint))


def _hint_text(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "").replace("NoneType", "None")


def fields_from_json(cls: type, obj: object, what: str, *,
                     convert: Mapping[str, Callable[[Any], Any]] | None = None,
                     rename: Mapping[str, str] | None = None,
                     ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keyword arguments for dataclass ``cls`` from the JSON object ``obj``.

    ``rename`` maps a JSON key to its field name; ``convert`` decodes a field whose JSON form is not its
    type (a nested record, base64 bytes) and is trusted to raise ProtocolError itself; keys in ``ignore``
    are allowed and dropped (a tag such as "type"). Missing required fields, unknown keys and values of
    the wrong JSON type raise ProtocolError."""
    data = require_object(obj, what)
    rename = rename or {}
    convert = convert or {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in ignore:
            continue
        name = rename.get(key, key)
        if name not in fields:
            raise ProtocolError(f"malformed {what}: unknown field {key!r}")
        if name in convert:
            kwargs[name] = convert[name](value)
            continue
        if not _accepts(hints[name], value):
            raise ProtocolError(f"malformed {what}: field {key!r} must be {_hint_text(hints[name])}, "
                                f"not {_kind(value)}")
        kwargs[name] = float(value) if _wants_float(hints[name], value) else value
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            key = next((k for k, v in rename.items() if v == name), name)
            raise ProtocolError(f"malformed {what}: missing field {key!r}")
    return kwargs


def build(cls: type[T], kwargs: dict[str, Any], what: str) -> T:
    """``cls(**kwargs)``, its own validation (``__post_init__``'s ValueError) reported as ProtocolError."""
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ProtocolError(f"malformed {what}: {exc}") from None
