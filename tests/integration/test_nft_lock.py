"""The RST-suppression table's lock: per network namespace, shared by element adds, exclusive only for
creating or dropping the table. So rawtcp processes in different namespaces, or adding their own
connections' entries in one namespace, proceed side by side; an add still waits for a drop.

Needs root: two plain namespaces ``rawtcp-nftlock-<pid>-a``/``-b`` (no links: an entry needs none),
removed in a finally. "Another process" is a helper holding the namespace's lock as that process would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from rawtcp.wire import netns
from rawtcp.wire.nft import RstGuard

pytestmark = pytest.mark.integration

HOLD = r"""
import fcntl, os, sys
from rawtcp.wire.nft import open_netns_lock
fd = open_netns_lock()
fcntl.flock(fd, fcntl.LOCK_EX if sys.argv[1] == "exclusive" else fcntl.LOCK_SH)
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    names = (f"rawtcp-nftlock-{os.getpid()}-a", f"rawtcp-nftlock-{os.getpid()}-b")
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=30)
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


class Holder:
    """Another process in ``ns`` holding that namespace's table lock until ``release()``."""

    def __init__(self, ns: str, mode: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOLD, mode],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _add_in_background(ns: str, guard_box: list[RstGuard], port: int) -> threading.Thread:
    """An add_conn in ``ns`` from a thread of this process (setns moves only that thread)."""

    def work() -> None:
        with netns.inside(ns):
            guard = RstGuard()
            guard_box.append(guard)
            guard.add_conn("198.19.9.1", port, "198.19.9.2", 8080)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _close_in(ns: str, guards: list[RstGuard]) -> None:
    def work() -> None:
        with netns.inside(ns):
            for guard in guards:
                guard.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)


def test_another_namespace_does_not_wait(namespaces: tuple[str, str]) -> None:
    a, b = namespaces
    holder = Holder(a, "exclusive")  # a drop in progress in namespace A
    guards: list[RstGuard] = []
    try:
        adding = _add_in_background(b, guards, 41000)
        adding.join(timeout=10)
        assert not adding.is_alive(), "an add in namespace B waited for namespace A's lock"
    finally:
        holder.release()
        _close_in(b, guards)


def test_adds_in_one_namespace_run_side_by_side(namespaces: tuple[str, str]) -> None:
    a, _b = namespaces
    guards: list[RstGuard] = []
    first = _add_in_background(a, guards, 41001)  # makes the table (exclusively, once)
    first.join(timeout=10)
    assert not first.is_alive()
    holder = Holder(a, "shared")  # another process in the middle of its own add
    try:
        adding = _add_in_background(a, guards, 41002)
        adding.join(timeout=10)
        assert not adding.is_alive(), "an add waited for another process's add"
    finally:
        holder.release()
        _close_in(a, guards)


def test_an_add_still_waits_for_a_drop(namespaces: tuple[str, str]) -> None:
    a, _b = namespaces
    holder = Holder(a, "exclusive")  # creating or dropping the table
    guards: list[RstGuard] = []
    try:
        adding = _add_in_background(a, guards, 41003)
        adding.join(timeout=1.0)
        assert adding.is_alive(), "an add went ahead while the table was being created or dropped"
        holder.release()
        adding.join(timeout=10)
        assert not adding.is_alive()
    finally:
        holder.release()
        _close_in(a, guards)


def _files_under_run() -> set[str]:
    return {os.path.join(root, name) for root, _dirs, names in os.walk("/run/rawtcp") for name in names}


def test_the_lock_leaves_no_file_behind(namespaces: tuple[str, str]) -> None:
    # The lock is the namespace's own inode: a guard's whole life writes nothing to disk, so a run
    # that makes many labs leaves no lock files behind them.
    a, _b = namespaces
    before = _files_under_run()
    guards: list[RstGuard] = []
    _add_in_background(a, guards, 41004).join(timeout=10)
    _close_in(a, guards)
    assert guards and _files_under_run() <= before
