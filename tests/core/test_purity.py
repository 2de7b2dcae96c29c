"""The core stays sans-IO, and its state diagram is generated from the transition table."""

import ast
from pathlib import Path

import rawtcp.core
from rawtcp.core import State
from rawtcp.core.transitions import TRANSITIONS, state_diagram_dot, state_diagram_mermaid, state_diagram_text

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
        # struct packs bytes (the TFO cookie's text) and does no I/O.
        roots = imported_roots(path) - {"__future__", "rawtcp", "dataclasses", "enum", "typing",
                                        "collections", "struct"}
        assert not roots, f"{path.name} imports unexpected modules {sorted(roots)}"


def test_every_state_appears_in_the_table():
    in_table = {s for pair in TRANSITIONS for s in pair}
    assert in_table == set(State)


def test_dot_diagram_from_table():
    dot = state_diagram_dot()
    assert dot.startswith("digraph tcp {") and dot.rstrip().endswith("}")
    for (old, new), label in TRANSITIONS.items():
        assert f'"{old}" -> "{new}" [label="{label}"];' in dot
    assert dot.count("->") == len(TRANSITIONS)


def test_mermaid_and_text_diagrams_from_table():
    mermaid = state_diagram_mermaid()
    assert mermaid.startswith("stateDiagram-v2")
    assert mermaid.count("-->") == len(TRANSITIONS) + 1
    text = state_diagram_text()
    assert len(text.splitlines()) == len(TRANSITIONS)
    assert "FIN-WAIT-1 -> CLOSING" in text
