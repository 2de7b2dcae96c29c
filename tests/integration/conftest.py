"""Integration tests need root (namespaces, raw sockets, nftables); without it they skip, saying why."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, raw sockets and nftables (run the suite with sudo)")
    if shutil.which("nft") is None:
        pytest.skip("needs nftables (apt-get install nftables)")


@pytest.fixture
def env(tmp_path):
    """The environment for CLI runs: a private runtime directory, so sessions never mix with a user's."""
    return dict(os.environ, RAWTCP_RUNTIME_DIR=str(tmp_path / "run"))
