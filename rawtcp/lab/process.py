"""Running the lab's tools and helper processes: iproute2 commands with one-line errors, helpers started
inside a namespace that announce "ready", and stopping them (SIGTERM, then SIGKILL, always reaped).

Shared by the lab, the stacks under test and the script runner's set-up.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

from rawtcp.lab.errors import LabError
from rawtcp.proc import pid_alive

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL

INSTALL_HINTS = {
    "ip": "install iproute2 (apt-get install iproute2)",
    "tc": "install iproute2 (apt-get install iproute2)",
    "ss": "install iproute2 (apt-get install iproute2)",
    "ethtool": "install it (apt-get install ethtool)",
}


def run(args: list[str], *, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run a tool; on failure raise LabError with the command and the tool's first error line."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        hint = INSTALL_HINTS.get(args[0], "install it")
        raise LabError(f"{args[0]} not found: {hint}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(args)}` did not finish in {timeout:g} s") from None
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = lines[0] if lines else f"exit status {proc.returncode}"
        raise LabError(f"`{' '.join(args)}` failed: {reason}")
    return proc


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# Popen objects of listeners this process started, so stopping them also reaps them (no zombies).
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def terminate(pids: list[int], grace: float = KILL_GRACE) -> list[int]:
    """SIGTERM, wait up to `grace` s, then SIGKILL; returns the pids that were signalled."""
    signalled = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for pid in signalled:
            child = CHILDREN.get(pid)
            if child is not None:
                child.poll()
        if not any(pid_alive(pid) for pid in signalled):
            break
        time.sleep(0.01)
    for pid in signalled:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for pid in signalled:
        child = CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=grace)
    return signalled


def child_env() -> dict[str, str]:
    # `python -m rawtcp...` must find this very package even when it is not installed (a source tree).
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn_ready(cmd: list[str], what: str, stderr_path: Path | None,
                 timeout: float) -> tuple[subprocess.Popen[bytes], list[bytes]]:
    """Start a helper and wait for its "ready ..." line; returns the process and that line's words."""
    err_fh = open(stderr_path, "wb") if stderr_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        # A new session: a Ctrl-C meant for the CLI must not take a persistent lab's helpers with it.
        popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_fh,
                                 env=child_env(), start_new_session=True)
    except FileNotFoundError:
        raise LabError(f"{cmd[0]} not found: {INSTALL_HINTS.get(cmd[0], 'install it')}") from None
    finally:
        if stderr_path is not None:
            err_fh.close()  # type: ignore[union-attr]
    CHILDREN[popen.pid] = popen
    assert popen.stdout is not None
    fd = popen.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            for line in buf.split(b"\n")[:-1]:
                words = line.split()
                if words and words[0] == b"ready":
                    return popen, words
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"{what} did not start within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                popen.wait(timeout=5)
                reason = last_line(stderr_path) or f"exit status {popen.returncode}"
                raise LabError(f"{what} failed to start: {reason}")
            buf += chunk
    except BaseException:
        terminate([popen.pid])
        raise
    finally:
        popen.stdout.close()


def last_line(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
