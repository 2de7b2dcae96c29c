"""Where live sessions are found: one control socket and one description file per session.

The directory is private to the user (0700) and every control socket is 0600, so one user's command
cannot drive another user's session (security).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rawtcp.errors import BAD_INPUT
from rawtcp.proc import pid_alive
from rawtcp.session.errors import ProtocolError, SessionError, UnknownSession
from rawtcp.session.jsonrecord import build, fields_from_json, parse_object

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def runtime_dir() -> Path:
    """/run/rawtcp-<uid>/sessions (RAWTCP_RUNTIME_DIR overrides the parent, for tests)."""
    base = Path(os.environ.get("RAWTCP_RUNTIME_DIR") or f"/run/rawtcp-{os.getuid()}")
    path = base / "sessions"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in (base, path):
        st = p.stat()
        if st.st_uid != os.getuid():
            raise SessionError(f"{p} belongs to another user; refusing to use it")
        if st.st_mode & 0o077:
            os.chmod(p, 0o700)
    return path


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise SessionError(f"bad session name {name!r}: use letters, digits, '.', '_' or '-' (max 64)", BAD_INPUT)
    return name


@dataclass(frozen=True)
class SessionInfo:
    """A live session's description file, written by its keeper once the connection is set up."""

    name: str
    pid: int
    netns: str | None = None
    local: str = ""  # "198.18.0.1:40000", "[2001:db8::1]:40000"
    remote: str = ""  # "*:*" while a passive open waits for its SYN
    role: Literal["client", "server"] = "client"
    iface: str | None = None
    started: float | None = None  # wall-clock seconds
    pcap: str | None = None

    @property
    def socket_path(self) -> Path:
        return runtime_dir() / f"{self.name}.sock"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionInfo:
        what = "session file"
        return build(cls, fields_from_json(cls, parse_object(text, what), what), what)


def write_info(info: SessionInfo) -> None:
    path = runtime_dir() / f"{info.name}.json"
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(info.to_json())
    os.replace(tmp, path)


def remove(name: str) -> None:
    for suffix in (".json", ".sock", ".json.tmp"):
        with contextlib.suppress(FileNotFoundError):
            (runtime_dir() / f"{name}{suffix}").unlink()


def _load(path: Path) -> SessionInfo | None:
    try:
        return SessionInfo.from_json(path.read_text())
    except (OSError, ProtocolError):  # half-written or foreign: not a session we can drive
        return None


def all_sessions(include_dead: bool = False) -> Iterator[SessionInfo]:
    for path in sorted(runtime_dir().glob("*.json")):
        info = _load(path)
        if info is None:
            continue
        if include_dead or pid_alive(info.pid):
            yield info


def dead_sessions() -> list[SessionInfo]:
    return [s for s in all_sessions(include_dead=True) if not pid_alive(s.pid)]


def find(name: str) -> SessionInfo:
    check_name(name)
    path = runtime_dir() / f"{name}.json"
    info = _load(path) if path.exists() else None
    if info is None or not pid_alive(info.pid):
        live = ", ".join(s.name for s in all_sessions()) or "none"
        raise UnknownSession(f"no session named {name!r} (live sessions: {live})")
    return info


def name_taken(name: str) -> bool:
    try:
        find(name)
    except UnknownSession:
        return False
    return True


def bind_control_socket(name: str) -> socket.socket:
    """The keeper's control socket, 0600 from birth (umask) so no other user can connect."""
    path = runtime_dir() / f"{name}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(8)
    return sock
