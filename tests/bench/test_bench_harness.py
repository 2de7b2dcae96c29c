"""The benchmark harness as a whole: outside the package, on rawtcp's public names only, its command line."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_is_not_in_the_installed_package() -> None:
    from rawtcp.cli import COMMANDS

    assert "bench" not in COMMANDS
    assert importlib.util.find_spec("rawtcp.craft.bench") is None
    assert not list((ROOT / "rawtcp").rglob("bench*.py"))


def test_the_harness_uses_only_public_names_of_rawtcp(tmp_path: Path) -> None:
    layers = _load(ROOT / "tests" / "test_layers.py", "rawtcp_test_layers_for_bench")  # its import checker
    (tmp_path / "bench.py").write_text((SCRIPTS / "bench.py").read_text())  # the checker walks folders
    found = layers.violations(SCRIPTS / "benchmark", outside=True) + layers.violations(tmp_path, outside=True)
    assert found == []


def test_only_takes_known_sections() -> None:
    bench = _load(SCRIPTS / "bench.py", "rawtcp_bench_entry")
    assert bench._sections("lab") == ("lab",)
    assert bench._sections("lab, compare,lab") == ("lab", "compare")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown section nope: choose from cold-start"):
        bench._sections("lab,nope")
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--only SECTIONS" in out.stdout and "handshake latency" in out.stdout
