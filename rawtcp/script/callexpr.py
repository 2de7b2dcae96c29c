"""System-call arguments as they travel from the runner to the helper: tagged JSON, and the readers that
turn them back into integers, strings and structs with packetdrill's checks and wording.

The runner parses a script into rawtcp.script.ast expressions; ``encode_expr`` writes each as a small
tagged dict (``{"int": 3}``, ``{"word": "SOL_TCP"}``, ``{"struct": [...]}`` ...) so the helper process, in
another network namespace, can evaluate it against the live kernel.
"""

from __future__ import annotations

from typing import Any

from rawtcp.errors import BAD_INPUT, RawtcpError
from rawtcp.script import ast
from rawtcp.script.symbols import CONSTANTS


class CallScriptError(RawtcpError):
    """The script asks for something this runner cannot do (unknown symbol, bad argument shape)."""

    exit_code = BAD_INPUT


def encode_expr(expr: ast.Expr) -> Any:
    """A parsed expression as plain JSON (tagged dicts)."""
    if isinstance(expr, ast.Int):
        return {"int": expr.value}
    if isinstance(expr, ast.Str):
        return {"str": expr.value, "trunc": expr.truncated}
    if isinstance(expr, ast.EllipsisExpr):
        return {"ell": True}
    if isinstance(expr, ast.Word):
        return {"word": expr.name}
    if isinstance(expr, ast.Call):
        return {"call": expr.name, "args": [encode_expr(a) for a in expr.args]}
    if isinstance(expr, ast.Binary):
        return {"or": [encode_expr(expr.lhs), encode_expr(expr.rhs)]}
    if isinstance(expr, ast.Assign):
        encoded = {"assign": expr.name, "value": encode_expr(expr.value)}
        if isinstance(expr.target, ast.Call):  # msg_iov(2)=[...]: the count is part of the shape
            encoded["targs"] = [encode_expr(a) for a in expr.target.args]
        return encoded
    if isinstance(expr, ast.ListExpr):
        return {"list": [encode_expr(i) for i in expr.items]}
    if isinstance(expr, ast.Struct):
        return {"struct": [encode_expr(i) for i in expr.items]}
    raise TypeError(f"unknown expression {expr!r}")


def is_tag(expr: Any, tag: str) -> bool:
    return isinstance(expr, dict) and tag in expr


def type_name(expr: Any) -> str:
    """packetdrill's expression type names, for "Bad type; actual: X expected: Y"."""
    for tag, name in (("int", "INTEGER"), ("word", "INTEGER"), ("or", "INTEGER"), ("str", "STRING"),
                      ("ell", "ELLIPSIS"), ("list", "LIST"), ("struct", "STRUCT"), ("call", "CALL"),
                      ("assign", "BINARY")):
        if is_tag(expr, tag):
            return name
    return "UNKNOWN_TYPE"


def int_value(expr: Any, what: str = "value") -> int:
    """An integer argument: a literal, a symbol, ``a|b``, ``htons(n)``/``inet_addr("a.b.c.d")``, ``[n]``."""
    if is_tag(expr, "int"):
        return int(expr["int"])
    if is_tag(expr, "word"):
        name = expr["word"]
        value = CONSTANTS.get(name)
        if value is None:
            raise CallScriptError(f"unknown symbol '{name}' for {what}")
        return value
    if is_tag(expr, "or"):
        lhs, rhs = expr["or"]
        return int_value(lhs, what) | int_value(rhs, what)
    if is_tag(expr, "call") and len(expr["args"]) == 1:
        name = expr["call"]
        if name in ("htons", "ntohs"):
            return int_value(expr["args"][0], what) & 0xFFFF
        if name in ("htonl", "ntohl"):
            return int_value(expr["args"][0], what) & 0xFFFFFFFF
    if is_tag(expr, "list") and len(expr["list"]) == 1:
        return int_value(expr["list"][0], what)
    raise CallScriptError(f"Bad type for {what}; actual: {type_name(expr)} expected: INTEGER")


def s32_value(expr: Any, what: str) -> int:
    """int_value within packetdrill's get_s32() range (INT_MIN..UINT_MAX), as a C int would hold it
    (``expr`` may also be an int already read, e.g. by bracketed_int)."""
    value = expr if isinstance(expr, int) else int_value(expr, what)
    if value > 0xFFFFFFFF or value < -0x80000000:
        raise CallScriptError(f"Value out of range for 32-bit integer: {value}")
    return value - (1 << 32) if value > 0x7FFFFFFF else value


def u8_value(expr: Any, what: str) -> int:
    """packetdrill's get_s8(): CHAR_MIN..UCHAR_MAX, stored in a byte."""
    value = int_value(expr, what)
    if value > 0xFF or value < -0x80:
        raise CallScriptError(f"Value out of range for 8-bit integer: {value}")
    return value & 0xFF


def bracketed_int(expr: Any, what: str) -> int:
    """``[n]``: an integer passed by pointer (getsockopt's optlen, ioctl's value, sendfile's offset)."""
    if not is_tag(expr, "list"):
        raise CallScriptError(f"Bad type for {what}; actual: {type_name(expr)} expected: LIST")
    if len(expr["list"]) != 1:
        raise CallScriptError("Expected [<element>] but got multiple elements")
    return int_value(expr["list"][0], what)


def struct_fields(expr: Any) -> dict[str, Any]:
    """The ``name=value`` members of a ``{...}`` struct, by name."""
    return {item["assign"]: item for item in expr.get("struct", []) if is_tag(item, "assign")}


def unescape(text: str) -> bytes:
    """A script string as packetdrill's unescape_cstring_expression() turns it into bytes.

    Faithful to its switch, whose ``\\\\`` and ``\\"`` cases fall through to ``\\f``: a script relying on
    either gets the byte packetdrill would send.
    """
    out = bytearray()
    i = 0
    simple = {"\\": "\f", '"': "\f", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("latin-1", "replace")
            i += 1
            continue
        code = text[i + 1] if i + 1 < len(text) else ""
        if code in simple:
            out += simple[code].encode()
            i += 2
        elif code == "x":
            digits = text[i + 2:i + 4]
            try:
                if len(digits) != 2:
                    raise ValueError
                out.append(int(digits, 16))
            except ValueError:
                raise CallScriptError(f"invalid hex escape (\\xhh): '\\x{text[i + 2:]}'") from None
            i += 4
        else:
            raise CallScriptError(f"unsupported escape code: '{code}'")
    return bytes(out)
