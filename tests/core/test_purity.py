"""The core stays sans-IO, and its state diagram is generated from the transition table."""

import ast
from pathlib import Path

import rawtcp.core
from rawtcp.core import State
from rawtcp.core.transitions import (
    TRANSITIONS,
    Cause,
    edges,
    state_diagram_dot,
    state_diagram_mermaid,
    state_diagram_text,
)

FORBIDDEN = {"socket", "time", "random", "threading", "select", "scapy", "asyncio", "os", "subprocess",
             "selectors", "secrets", "multiprocessing"}
CORE_DIR = Path(rawtcp.core.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_no_io_clock_randomness_or_threads():
    files = sorted(CORE_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"endpoint.py", "seq.py", "segment.py", "state.py", "events.py",
                                       "transitions.py", "rto.py", "reassembly.py"}
    for path in files:
        bad = imported_roots(path) & FORBIDDEN
        assert not bad, f"{path.name} imports {sorted(bad)}"
        # struct packs bytes (the TFO cookie's text), bisect searches a list, math has inf: no I/O.
        roots = imported_roots(path) - {"__future__", "rawtcp", "dataclasses", "enum", "typing",
                                        "collections", "struct", "bisect", "math"}
        assert not roots, f"{path.name} imports unexpected modules {sorted(roots)}"


def test_every_state_appears_in_the_table():
    in_table = {old for old, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert in_table == set(State)


def test_every_cause_appears_in_the_table_with_its_own_label():
    assert {cause for _, cause in TRANSITIONS} == set(Cause)
    assert len({cause.label for cause in Cause}) == len(Cause)


def test_dot_diagram_from_table():
    dot = state_diagram_dot()
    assert dot.startswith("digraph tcp {") and dot.rstrip().endswith("}")
    for (old, new), causes in edges().items():
        label = "\\n".join(cause.label for cause in causes)
        assert f'"{old}" -> "{new}" [label="{label}"];' in dot
    assert dot.count("->") == len(edges())
    assert sum(len(causes) for causes in edges().values()) == len(TRANSITIONS)


def test_mermaid_and_text_diagrams_from_table():
    mermaid = state_diagram_mermaid()
    assert mermaid.startswith("stateDiagram-v2")
    assert mermaid.count("-->") == len(TRANSITIONS) + 1
    text = state_diagram_text()
    assert len(text.splitlines()) == len(TRANSITIONS)
    assert "FIN-WAIT-1 -> CLOSING" in text
    assert "SYN-SENT -> ESTABLISHED" in text and "  rcv SYN,ACK / snd ACK\n" in text
