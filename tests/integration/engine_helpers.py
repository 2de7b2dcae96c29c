"""Helpers for the engine's integration tests: a private lab, the CLI as a user runs it, leftovers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from rawtcp.proc import pids_matching


def rawtcp(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0,
           check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the CLI exactly as a user would (a separate process per command)."""
    proc = subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"rawtcp {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def segments(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "segment"]


def ns_exec(netns: str, *cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, timeout=timeout)


def nft_tables(netns: str) -> str:
    return ns_exec(netns, "nft", "list", "tables").stdout


def keeper_pids(runtime_dir: str | None = None) -> list[int]:
    """Session keepers alive on this machine (only those using ``runtime_dir`` when given, so that
    other runs — a user's sessions, a container's tests — do not count)."""
    pids = pids_matching("rawtcp.session.keeper")
    if runtime_dir is None:
        return pids
    mine = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if f"RAWTCP_RUNTIME_DIR={runtime_dir}".encode() in fh.read().split(b"\0"):
                    mine.append(pid)
        except OSError:
            continue
    return mine


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll a condition the test cannot be notified of (a process exiting, a file appearing)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def rst_entries(netns: str | None) -> str:
    """The `inet rawtcp` table in ``netns`` (None: the root namespace), or "" when there is none."""
    cmd = ["nft", "list", "table", "inet", "rawtcp"]
    proc = ns_exec(netns, *cmd) if netns else subprocess.run(cmd, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""
