"""Integration tests run against a real kernel, in private network namespaces.

Root: every test marked ``integration`` needs root and nftables. Without them it is skipped here, at
collection, with one message, so no fixture tries to make a lab first. A test that needs neither (bad
input refused before anything privileged runs) is marked ``unprivileged``.

Labs: the fixtures below make the private labs tests share, named after the test module
(``rtt-<module>-<pid>-<n>-c``/``-s``), dual-stack unless asked otherwise, and always removed:
``echo_lab``, ``seed_lab``, ``sink_lab`` (one per test, with that listener), ``module_lab`` (one echo lab
for a whole module), and ``make_lab`` for the other variants (IPv4-only, no listener, impaired, another
port; ``engine_helpers.IPV4_ONLY``). Each yields a ``Lab`` (``cfg, info = lab``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from engine_helpers import Lab, lab_prefix, private_lab

NO_ROOT = "needs root: network namespaces, raw sockets and nftables (run the suite with sudo)"
NO_NFT = "needs nftables (apt-get install nftables)"


def _missing() -> str | None:
    """Why this machine cannot run integration tests, or None."""
    if os.geteuid() != 0:
        return NO_ROOT
    if shutil.which("nft") is None:
        return NO_NFT
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("integration") and not item.get_closest_marker("unprivileged"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def require_root() -> None:
    """The same check, for a test outside the ``integration`` marker."""
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def env(tmp_path):
    """The environment for CLI runs: a private runtime directory, so sessions never mix with a user's."""
    return dict(os.environ, RAWTCP_RUNTIME_DIR=str(tmp_path / "run"))


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> str:
    """A private runtime directory for this process (sessions never mix with a user's); keepers inherit it."""
    run_dir = str(tmp_path / "run")
    monkeypatch.setenv("RAWTCP_RUNTIME_DIR", run_dir)
    return run_dir


# -- labs --------------------------------------------------------------------------------------------


def _lab(request: pytest.FixtureRequest, listener: str | None, **kw: Any):
    return private_lab(lab_prefix(request.module.__name__), listener, **kw)


@pytest.fixture
def make_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """``make_lab(listener="echo", impaired=None, **LabConfig fields)``: labs removed after the test."""
    with ExitStack() as stack:
        yield lambda listener="echo", **kw: stack.enter_context(_lab(request, listener, **kw))


@pytest.fixture
def echo_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with _lab(request, "echo") as lab:
        yield lab


@pytest.fixture
def seed_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with _lab(request, "seed") as lab:
        yield lab


@pytest.fixture
def sink_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with _lab(request, "sink") as lab:
        yield lab


@pytest.fixture(scope="module")
def module_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """One echo lab for the whole module, for tests that only probe it (in file order)."""
    with _lab(request, "echo") as lab:
        yield lab
