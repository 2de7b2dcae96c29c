"""Finds and removes what a killed rawtcp process left behind, and says what it removed.

Every leftover carries its owner's pid (nftables elements, session files, trace instances, lab state
files), so "left behind" means "its owner is dead". Firewall entries are reaped inside each of the
project's namespaces BEFORE any stale namespace is deleted: deleting a namespace would hide them.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading

from rawtcp.proc import pid_alive
from rawtcp.session import registry


def _rawtcp_namespaces() -> list[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(("rawtcp", "rtt-"))]


def _reap_nft_here(where: str) -> list[str]:
    from rawtcp.wire import nft

    lines: list[str] = []
    if nft.table_exists():
        guard = nft.RstGuard()
        try:
            lines = guard.reap(alive=pid_alive)
            guard.drop_table_if_empty()
        finally:
            guard.close()
    from rawtcp.wire.nft import reap_port_range_tables

    lines += reap_port_range_tables()  # a killed flood's own table (one rule for its source ports)
    return [f"{line} in {where}" for line in lines]


def reap_firewall() -> list[str]:
    removed = _reap_nft_here("the root namespace")
    for name in _rawtcp_namespaces():
        removed += _reap_in(name)
    return removed


def _reap_in(name: str) -> list[str]:
    """Reap inside namespace ``name`` from a short-lived thread: setns moves only the calling thread, so
    the process leader never visits another lab's namespace, where that lab's teardown (which signals
    every process `ip netns pids` lists, and that reads the leader's namespace) would take us for its own."""
    from rawtcp.wire import netns

    found: list[str] = []

    def work() -> None:
        with contextlib.suppress(Exception), netns.inside(name):
            found.extend(_reap_nft_here(f"namespace {name}"))

    worker = threading.Thread(target=work, name=f"reap-{name}", daemon=True)
    worker.start()
    worker.join(timeout=30)
    return found


def reap() -> list[str]:
    removed: list[str] = []
    with contextlib.suppress(Exception):
        removed += reap_firewall()
    for info in registry.dead_sessions():
        registry.remove(info.name)
        removed.append(f"session {info.name} (keeper pid {info.pid} is gone)")
    with contextlib.suppress(Exception):
        from rawtcp.lab.kstate import reap_trace_instances

        removed += [f"trace instance {x}" for x in reap_trace_instances()]
    with contextlib.suppress(Exception):
        from rawtcp.lab.topology import reap_stale_labs

        removed += reap_stale_labs()
    return removed
