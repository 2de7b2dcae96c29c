"""The package's layers, enforced: each layer imports only the layers beneath it (module level, inside
functions and under TYPE_CHECKING alike), nobody imports a peer package's private names, and only
``wire/`` opens packet sockets or runs nftables.

    core ← wire ← lab, capture ← session, script, craft ← commands ← cli, api

``rawtcp/errors.py``, ``rawtcp/proc.py`` and ``rawtcp/compiled.py`` (which build of the hot path runs)
sit beneath every layer but the core, which imports nothing outside itself. The checker is run on
planted violations too, so it cannot pass by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rawtcp

RANK = {"core": 0, "wire": 1, "lab": 2, "capture": 2, "session": 3, "script": 3, "craft": 3,
        "commands": 4, "cli": 5, "api": 5, "__main__": 6}
BASE = {"errors", "proc", "compiled", "__init__"}  # rawtcp/errors.py, proc.py, compiled.py, the package
NETWORK_NAMES = {"AF_PACKET", "SOCK_RAW", "sendmmsg"}  # packet sockets and batch sends: wire/ only
ROOT = Path(rawtcp.__file__).parent
REPO = Path(__file__).resolve().parents[1]  # the source tree (the package may be installed elsewhere)
AGENT_ROOT = REPO / "rawtcp_pytcp_agent"


def _layer(rel: Path) -> str:
    """The layer of a module path relative to the rawtcp package: its folder, or its own name at the top."""
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _target_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rawtcp":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def violations(root: Path, outside: bool = False) -> list[str]:
    """Every import or name that breaks the layering, as ``file:line: what``. ``outside``: ``root`` is a
    package built on rawtcp (an agent): it may import any layer, but no private name."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        layer = "outside" if outside else _layer(rel)
        tree = ast.parse(path.read_text(), str(path))
        module_aliases: set[str] = set()
        for node in ast.walk(tree):
            imports: list[tuple[str, list[str]]] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imports.append((alias.name, []))
                    if alias.name.startswith("rawtcp."):
                        module_aliases.add(alias.asname or alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imports.append((node.module, [a.name for a in node.names]))
                if node.module.startswith("rawtcp"):
                    module_aliases |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level:
                found.append(f"{rel}:{node.lineno}: relative import (name the layer: `from rawtcp.x import`)")
            for module, names in imports:
                target = _target_layer(module)
                if target is None:
                    continue
                where = f"{rel}:{node.lineno}"
                if not outside and target != layer and target not in BASE:
                    if target not in RANK:
                        found.append(f"{where}: {module} is in no known layer")
                    elif RANK[target] >= RANK[layer]:
                        found.append(f"{where}: {layer} imports {module} (layer {target} is not beneath it)")
                if not outside and layer == "core" and target != "core":
                    found.append(f"{where}: the core imports {module} (it imports nothing outside itself)")
                if outside or target != layer:
                    private = [n for n in names if n.startswith("_")]
                    private += [p for p in module.split(".") if p.startswith("_") and p != "__init__"]
                    if private:
                        found.append(f"{where}: private {', '.join(private)} of {module} used from {layer}")
            # module._private, where module is a rawtcp module bound by an import above
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in module_aliases):
                found.append(f"{rel}:{node.lineno}: private {node.value.id}.{node.attr} used from {layer}")
            if not outside and layer != "wire":
                name = (node.attr if isinstance(node, ast.Attribute)
                        else node.id if isinstance(node, ast.Name) else None)
                if name in NETWORK_NAMES:
                    found.append(f"{rel}:{node.lineno}: {name} outside wire/ (packet sockets live there)")
                if (isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant)
                        and node.elts[0].value == "nft"):
                    found.append(f"{rel}:{node.lineno}: runs nft outside wire/ (nftables lives there)")
    return found


def test_every_module_belongs_to_a_known_layer():
    layers = {_layer(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")}
    assert layers <= set(RANK) | BASE, f"modules outside every layer: {sorted(layers - set(RANK) - BASE)}"


def test_layers_import_only_downward_and_nothing_private():
    assert violations(ROOT) == []


def test_the_pytcp_agent_uses_only_public_names():
    assert violations(AGENT_ROOT, outside=True) == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "expected"), [
    ({"core/a.py": "from rawtcp.session import driver\n"}, "core imports rawtcp.session"),
    ({"wire/a.py": "def f():\n    from rawtcp.lab import topology\n"}, "wire imports rawtcp.lab"),
    ({"lab/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rawtcp.capture.pcap import P\n"},
     "lab imports rawtcp.capture"),
    ({"session/a.py": "import rawtcp.craft.flood\n"}, "session imports rawtcp.craft.flood"),
    ({"script/a.py": "from rawtcp.lab.topology import _run\n"}, "private _run of rawtcp.lab.topology"),
    ({"script/a.py": "from rawtcp.lab import topology\ntopology._child_env()\n"}, "private topology._child_env"),
    ({"craft/a.py": "import socket\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)\n"},
     "AF_PACKET outside wire/"),
    ({"lab/a.py": "import subprocess\nsubprocess.run(['nft', 'list', 'ruleset'])\n"}, "runs nft outside wire/"),
    ({"core/a.py": "from rawtcp.errors import FAILED\n"}, "the core imports rawtcp.errors"),
    ({"session/a.py": "from . import driver\n"}, "relative import"),
])
def test_the_checker_finds_planted_violations(tmp_path, files, expected):
    found = violations(_plant(tmp_path, files))
    assert any(expected in line for line in found), found


def test_the_checker_allows_downward_and_base_imports(tmp_path):
    root = _plant(tmp_path, {
        "commands/a.py": "from rawtcp.session import client\nfrom rawtcp.core import State\n",
        "session/a.py": "def f():\n    from rawtcp.wire.link import PacketLink\n    from rawtcp.errors import FAILED\n",
        "wire/a.py": "import socket\nsocket.AF_PACKET\nfrom rawtcp.wire import _private_helper\n",
        "core/a.py": "from rawtcp.core.seq import seq_lt\n",
    })
    assert violations(root) == []


def _readme_layout() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Layout")
    return readme[start:readme.index("\n## ", start + 1)]


def test_the_readme_layout_names_every_package_and_module():
    """A newcomer checks the README's Layout against the tree: every package and every module is named."""
    layout = _readme_layout()
    missing = []
    for package in sorted(p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        if f"{package.name}/" not in layout:
            missing.append(f"{package.name}/")
        for module in sorted(package.glob("*.py")):
            if module.stem not in ("__init__", "errors") and module.stem not in layout:
                missing.append(f"{package.name}/{module.name}")
    for top in ("cli.py", "api.py", "errors.py", "rawtcp_pytcp_agent/", "scripts/", "tests/", "docker/", "docs/"):
        if top not in layout:
            missing.append(top)
    assert not missing, f"README's Layout does not mention: {', '.join(missing)}"
    assert "core ← wire ← lab, capture ← session, script, craft ← commands" in layout
