"""Capture fixtures: SEED.md's 10-segment exchange and other streams, built with scapy into pcaps."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .builders import seed_packets, write_pcap


@pytest.fixture
def make_pcap(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def make(packets: list[Any], name: str | None = None) -> Path:
        return write_pcap(tmp_path / (name or f"c{next(counter)}.pcap"), packets)

    return make


@pytest.fixture
def seed_pcap(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "seed.pcap", seed_packets())


@pytest.fixture
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (apt-get install tshark): relative seq/ack agreement not checked")
    return path
