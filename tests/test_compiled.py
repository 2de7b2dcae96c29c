"""The compiled hot path (rawtcp/compiled.py, setup.py): used only while it matches its sources.

The decision is tested on a package tree made here (no build needed); what Python then loads is tested in
child interpreters against the build of this checkout, when there is one. RAWTCP_EXPECT_COMPILED=1 (CI)
turns a missing build into a failure: the benchmark's figures are the compiled ones only if it exists.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rawtcp import compiled

PACKAGE = Path(compiled.PACKAGE_DIR)
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def fake_tree(root: Path, *, built: tuple[str, ...] = compiled.MODULES, stamp: bool = True) -> Path:
    """A rawtcp/ with every compiled module's source, an (empty) extension for those in ``built`` and,
    with ``stamp``, the build's digests of the sources as they are now."""
    package = root / "rawtcp"
    for module in compiled.MODULES:
        src = Path(compiled.source_path(module, str(package)))
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {module}\n")
        if module in built:
            Path(str(src)[:-3] + SUFFIX).write_bytes(b"")
    if stamp:
        (package / compiled.STAMP).write_text(compiled.stamp_text(compiled.source_digests(str(package))))
    return package


def test_a_build_that_matches_its_sources_is_used(tmp_path: Path) -> None:
    assert compiled.why_sources(str(fake_tree(tmp_path)), {}) is None


def test_an_edited_source_sends_every_module_back_to_its_source(tmp_path: Path) -> None:
    package = fake_tree(tmp_path)
    Path(compiled.source_path("rawtcp.core.endpoint", str(package))).write_text("# edited\n")
    assert compiled.why_sources(str(package), {}) == "sources changed since the build: rawtcp.core.endpoint"


def test_a_build_without_its_stamp_is_not_trusted(tmp_path: Path) -> None:
    assert "has no compiled-sources.sha256" in (compiled.why_sources(str(fake_tree(tmp_path, stamp=False)), {})
                                               or "")


def test_an_incomplete_build_is_not_used(tmp_path: Path) -> None:
    package = fake_tree(tmp_path, built=compiled.MODULES[:-1])
    assert compiled.why_sources(str(package), {}) == f"the compiled build is incomplete: {compiled.MODULES[-1]}"


def test_rawtcp_pure_asks_for_the_sources_and_no_build_means_sources(tmp_path: Path) -> None:
    assert compiled.why_sources(str(fake_tree(tmp_path / "a")), {"RAWTCP_PURE": "1"}) == "RAWTCP_PURE=1"
    assert compiled.why_sources(str(fake_tree(tmp_path / "b", built=())), {}) == "no compiled build"


def test_the_stamp_reads_back_what_was_written(tmp_path: Path) -> None:
    package = fake_tree(tmp_path)
    assert compiled.read_stamp(str(package)) == compiled.source_digests(str(package))
    (package / compiled.STAMP).write_bytes(b"\xff\xfe")
    assert compiled.read_stamp(str(package)) is None


# ---------------------------------------------------------------- what a child interpreter loads
def _load(code: str, *, pythonpath: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if k not in ("RAWTCP_PURE", "PYTHONPATH")}
    child_env.update(env)
    if pythonpath is not None:
        child_env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env,
                          cwd=str(pythonpath or PACKAGE.parent), timeout=60)


def _need_build() -> None:
    if compiled.built_modules() != list(compiled.MODULES) or compiled.read_stamp() is None:
        if os.environ.get("RAWTCP_EXPECT_COMPILED") == "1":
            pytest.fail(f"RAWTCP_EXPECT_COMPILED=1 but this checkout has no complete build: {compiled.status()}")
        pytest.skip(f"no compiled build here ({compiled.status()})")


SHOW = ("import rawtcp, rawtcp.core.endpoint as e, rawtcp.session.hub as h; "
        "print(rawtcp.compiled.status()); print(e.__file__); print(h.__file__); "
        "print(getattr(e, 'EDITED', None))")


def test_the_build_of_this_checkout_is_what_runs() -> None:
    _need_build()
    status, endpoint, hub, _ = _load(SHOW).stdout.splitlines()
    assert status == "compiled (mypyc)"
    assert endpoint.endswith(SUFFIX) and hub.endswith(SUFFIX)


def test_rawtcp_pure_runs_the_sources_of_a_build() -> None:
    _need_build()
    status, endpoint, hub, _ = _load(SHOW, RAWTCP_PURE="1").stdout.splitlines()
    assert status == "pure Python (RAWTCP_PURE=1)"
    assert endpoint.endswith("endpoint.py") and hub.endswith("hub.py")


def test_an_edited_source_is_what_runs_not_the_old_build(tmp_path: Path) -> None:
    _need_build()
    copy = tmp_path / "rawtcp"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "core" / "endpoint.py", "a") as f:
        f.write("\nEDITED = 'yes'\n")
    run = _load(SHOW, pythonpath=tmp_path)
    status, endpoint, hub, edited = run.stdout.splitlines()
    assert status == "pure Python (sources changed since the build: rawtcp.core.endpoint)"
    assert edited == "yes"
    assert endpoint == str(copy / "core" / "endpoint.py") and hub == str(copy / "session" / "hub.py")
    assert "RuntimeWarning: rawtcp: sources changed since the build" in run.stderr


def test_a_build_installed_without_its_sources_is_used(tmp_path: Path) -> None:
    package = fake_tree(tmp_path)
    os.remove(compiled.source_path("rawtcp.core.endpoint", str(package)))
    assert compiled.why_sources(str(package), {}) is None


def test_the_compiled_core_recovers_from_loss_exactly_as_its_source_does() -> None:
    """scripts/loss_sim.py runs two cores over a seeded lossy, reordering, duplicating path in simulated
    time: every run's duration and retransmission count must come out the same from both builds."""
    _need_build()
    sim = [sys.executable, str(PACKAGE.parent / "scripts" / "loss_sim.py"), "--runs", "8", "--loss", "20"]
    env = {k: v for k, v in os.environ.items() if k != "RAWTCP_PURE"}
    runs = [subprocess.run(sim, capture_output=True, text=True, timeout=120, env={**env, **extra}, check=True).stdout
            for extra in ({}, {"RAWTCP_PURE": "1"})]
    assert "8 runs" in runs[0] and "retransmissions" in runs[0]
    assert runs[0] == runs[1]
