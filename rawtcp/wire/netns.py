"""Entering named network namespaces (``ip netns`` names) from Python 3.11, which has no ``os.setns``.

``setns(CLONE_NEWNET)`` moves only the calling thread, so call :func:`enter` before starting threads
(threads started later inherit it). Sockets keep the namespace they were created in, so a socket
opened inside :func:`inside` stays there after the block ends.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from rawtcp.wire.errors import WireError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"  # where `ip netns add` bind-mounts namespaces
_SELF_NS = "/proc/thread-self/ns/net"  # this thread's, not the process leader's (/proc/self)
NEEDS_ROOT = "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW): run it with sudo"

_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise WireError(f"bad network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def current_inode() -> int:
    """Inode of this thread's network namespace: equal inodes mean the same namespace."""
    return os.stat(_SELF_NS).st_ino


def inode(name: str) -> int:
    return os.stat(path(name)).st_ino


def _open(name: str) -> int:
    try:
        return os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise WireError(f"no network namespace {name!r} (see `ip netns list`)", 2) from None
    except PermissionError:
        raise WireError(f"entering network namespace {name!r} {NEEDS_ROOT}") from None


def enter(name: str) -> None:
    """Move this thread into the named namespace for good."""
    fd = _open(name)
    try:
        _setns(fd)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise WireError(f"entering network namespace {name!r} {NEEDS_ROOT}") from None
        raise WireError(f"cannot enter network namespace {name!r}: {exc.strerror}") from None
    finally:
        os.close(fd)


@contextmanager
def inside(name: str) -> Iterator[None]:
    """Run a block inside the named namespace, then return to the one this thread was in."""
    home = os.open(_SELF_NS, os.O_RDONLY | os.O_CLOEXEC)  # opened first: the way back
    try:
        enter(name)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
