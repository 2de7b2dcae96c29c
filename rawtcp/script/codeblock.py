"""``%{ ... }%`` Python blocks, run with packetdrill's semantics (its code.c).

What packetdrill does, and so what this module reproduces:

* At the block's time it snapshots the socket under test: getsockopt TCP_INFO, TCP_CC_INFO and SO_MEMINFO.
* Every block becomes part of ONE Python program, run by ``python3`` after the script's last event
  (after the cleanup command). For each block the program first assigns the names of that snapshot
  (TCP_ESTABLISHED ..., TCP_CA_Open ..., TCPI_OPT_* and every ``tcpi_*`` field, then the congestion
  control's and SK_MEMINFO_* names), then ``_file``/``_line``, then the block's text followed by two
  newlines. So names a block defines (``TCP_INFINITE_SSTHRESH = 0x7fffffff``) are visible to later
  blocks, and a block ending in a backslash continuation still compiles.
* The text is the block with spaces and tabs stripped from both ends (the lexer does that), so a
  multi-line block is module-level code: its lines must not be indented.
* A syntax error anywhere stops the program before any block runs; a failing block stops it there, and
  packetdrill reports ``<script>:<line>: error in Python code`` with the traceback.

``run_code`` runs one block at once (with an optional namespace carried from block to block);
``CodeProgram`` collects blocks and runs them at the end, as packetdrill does. Both return the complaint
(one line) or None.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from rawtcp.script.tcpinfo import TCP_CA_STATES, TCP_STATES, TCPI_OPTS

# The names code.c's write_symbols() defines before every block's tcp_info values.
CODE_SYMBOLS: dict[str, int] = {**TCP_STATES, **TCP_CA_STATES, **TCPI_OPTS}


def code_variables(info: dict[str, int]) -> dict[str, int]:
    """Everything a block sees from one snapshot: the symbols, then the snapshot's values."""
    return {**CODE_SYMBOLS, **info}


def new_namespace(path: str) -> dict[str, Any]:
    """The globals of packetdrill's generated program before its first block (its preamble imports sys
    and traceback, so scripts may use them)."""
    return {"__name__": "__main__", "__builtins__": __builtins__, "sys": sys, "traceback": traceback,
            "_file": path, "_line": 0}


def _compile(code: str, path: str, line: int) -> Any:
    # Leading newlines put the block's first line on its script line, so a traceback or a SyntaxError
    # names the script's own line numbers. The two trailing newlines are packetdrill's.
    return compile("\n" * max(line - 1, 0) + code + "\n\n", path, "exec")


def _syntax_text(exc: SyntaxError) -> str:
    where = f" (line {exc.lineno})" if exc.lineno else ""
    return f"Python code does not compile: SyntaxError: {exc.msg}{where}"


def _runtime_text(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.lineno]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"error in Python code: {last}{where}"


def run_code(code: str, info: dict[str, int], path: str, line: int,
             namespace: dict[str, Any] | None = None) -> str | None:
    """Run one block now against snapshot ``info``; the complaint, or None when it ran to the end.

    Pass the same ``namespace`` (from ``new_namespace``) for every block of a script so that names
    defined by one block reach the next, as in packetdrill's single program.
    """
    env = namespace if namespace is not None else new_namespace(path)
    try:
        compiled = _compile(code, path, line)
    except SyntaxError as exc:
        return _syntax_text(exc)
    except ValueError as exc:  # a NUL byte in the source
        return f"Python code does not compile: {exc}"
    env.update(code_variables(info))
    env["_file"], env["_line"] = path, line
    try:
        exec(compiled, env)  # running the script's own code is the point of a %{ }% block
    except SystemExit as exc:
        if exc.code not in (None, 0):
            return f"error in Python code: SystemExit: {exc.code}"
        return None
    except Exception as exc:  # noqa: BLE001 (any error in the script's code is the script's failure)
        return _runtime_text(exc)
    return None


@dataclass
class _Block:
    code: str
    info: dict[str, int]
    line: int


@dataclass
class CodeProgram:
    """The blocks of one script, run together after the script's events, as packetdrill runs them."""

    path: str
    blocks: list[_Block] = field(default_factory=list)

    def add(self, code: str, info: dict[str, int], line: int) -> None:
        """Record a block with the snapshot taken at its time."""
        self.blocks.append(_Block(code, dict(info), line))

    def run(self) -> tuple[int, str] | None:
        """Run every block in order in one namespace; (line of the failing block, complaint) or None.

        Like python3 on packetdrill's generated file, nothing runs when any block does not compile.
        """
        for block in self.blocks:
            try:
                _compile(block.code, self.path, block.line)
            except (SyntaxError, ValueError) as exc:
                text = _syntax_text(exc) if isinstance(exc, SyntaxError) else f"Python code does not compile: {exc}"
                return block.line, text
        env = new_namespace(self.path)
        for block in self.blocks:
            error = run_code(block.code, block.info, self.path, block.line, env)
            if error is not None:
                return block.line, error
        return None
