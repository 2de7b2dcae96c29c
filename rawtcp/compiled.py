"""The hot path compiled to C, and the sources whenever that build cannot be trusted.

The modules in :data:`MODULES` (the TCP core, the hub, the shared receive path, the nftables elements,
the flood) are compiled by mypyc when rawtcp is installed and a C compiler is there (``setup.py``): the
same typed Python, three to five times faster. Everything else, and every machine without a compiler, runs
as plain Python.

A compiled module sits beside its source, and Python prefers it. After a source is edited in a checkout
(an editable install), the build would silently run the old code, so :func:`select` (called when rawtcp is
imported) compares each source with the digest the build recorded (:data:`STAMP`) and, when any differs,
has Python load every module of the set from its source instead, with a warning. ``RAWTCP_PURE=1`` asks
for the sources, both at build time (nothing compiled) and at run time (a build present is not used).

This module runs before everything else in the package: it imports only the standard library.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType

# Compiled as one group: a module of the group calls another's functions and classes natively.
MODULES = (
    "rawtcp.core.seq",
    "rawtcp.core.segment",
    "rawtcp.core.events",
    "rawtcp.core.tcb",
    "rawtcp.core.rto",
    "rawtcp.core.sack",
    "rawtcp.core.reassembly",
    "rawtcp.core.recovery",
    "rawtcp.core.endpoint",
    "rawtcp.wire.packet",
    "rawtcp.wire.link",
    "rawtcp.wire.shared",
    "rawtcp.wire.nft",
    "rawtcp.session.hub",
    "rawtcp.craft.flood",
)
GROUP = "rawtcp._native"  # the shared library of the group: rawtcp/_native__mypyc.*.so
STAMP = "compiled-sources.sha256"  # "<sha256>  <module>" per line, written by the build
PURE_ENV = "RAWTCP_PURE"

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_status = "pure Python (not selected yet)"


def source_path(module: str, package_dir: str = PACKAGE_DIR) -> str:
    """The .py file of ``module`` (a name in :data:`MODULES`) under ``package_dir`` (rawtcp/)."""
    return os.path.join(package_dir, *module.split(".")[1:]) + ".py"


def source_digests(package_dir: str = PACKAGE_DIR, modules: Sequence[str] = MODULES) -> dict[str, str]:
    """SHA-256 of each module's source, as the build records them (a module whose source is not there,
    as in an install that ships only the compiled build, has none: nothing can shadow it)."""
    digests = {}
    for module in modules:
        try:
            with open(source_path(module, package_dir), "rb") as f:
                digests[module] = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            continue
    return digests


def stamp_text(digests: dict[str, str]) -> str:
    return "".join(f"{digest}  {module}\n" for module, digest in sorted(digests.items()))


def read_stamp(package_dir: str = PACKAGE_DIR) -> dict[str, str] | None:
    """The digests the build recorded, or None when there is no (readable) stamp."""
    try:
        with open(os.path.join(package_dir, STAMP), encoding="ascii") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    recorded = {}
    for line in lines:
        digest, _, module = line.partition("  ")
        if module:
            recorded[module] = digest
    return recorded


def built_modules(package_dir: str = PACKAGE_DIR, modules: Sequence[str] = MODULES) -> list[str]:
    """The modules that have a compiled extension beside their source."""
    found = []
    for module in modules:
        base = source_path(module, package_dir)[:-3]
        if any(os.path.exists(base + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            found.append(module)
    return found


def changed_sources(package_dir: str = PACKAGE_DIR, modules: Sequence[str] = MODULES) -> list[str] | None:
    """The modules whose source differs from what the build compiled ([] when none does); None when the
    build recorded nothing (a build without its stamp cannot be trusted either)."""
    recorded = read_stamp(package_dir)
    if recorded is None:
        return None
    changed = []
    for module, digest in source_digests(package_dir, modules).items():
        if recorded.get(module) != digest:
            changed.append(module)
    return changed


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the modules of the compiled set from their .py files, ahead of the extensions beside them."""

    def __init__(self, package_dir: str, modules: Sequence[str]) -> None:
        self.package_dir = package_dir
        self.modules = frozenset(modules)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname, self.package_dir))


def why_sources(package_dir: str = PACKAGE_DIR, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the compiled build under ``package_dir`` must not be used, or None when it may."""
    built = built_modules(package_dir)
    if not built:
        return "no compiled build"
    if environ.get(PURE_ENV) == "1":
        return f"{PURE_ENV}=1"
    changed = changed_sources(package_dir)
    if changed is None:
        return f"the compiled build has no {STAMP}"
    if changed:
        return "sources changed since the build: " + ", ".join(changed)
    if len(built) < len(MODULES):
        return "the compiled build is incomplete: " + ", ".join(sorted(set(MODULES) - set(built)))
    return None


def select(package_dir: str = PACKAGE_DIR) -> str:
    """Decide, before any module of the set is imported, whether the compiled build is used; returns the
    decision in words (also :func:`status`)."""
    global _status
    reason = why_sources(package_dir)
    if reason is None:
        _status = "compiled (mypyc)"
        return _status
    if reason.startswith("sources changed"):
        warnings.warn(f"rawtcp: {reason}; running the sources (rebuild: bash scripts/setup.sh)",
                      RuntimeWarning, stacklevel=2)
    if reason != "no compiled build" and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(package_dir, MODULES))
    _status = f"pure Python ({reason})"
    return _status


def status() -> str:
    """``compiled (mypyc)``, or ``pure Python (why)``."""
    return _status


def active() -> bool:
    """Whether the compiled modules are the ones running."""
    return _status == "compiled (mypyc)"
