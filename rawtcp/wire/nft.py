"""Keeping the local kernel from resetting connections it does not know about.

A SYN-ACK (or any segment) for a port no kernel socket owns is answered by the local kernel with a
RST (RFC 9293 §3.10.7.1), which would kill every hand-made connection. rawtcp drops exactly those
RSTs in one nftables table it owns, ``inet rawtcp``, in the namespace where that kernel lives:

    set conns { ipv4_addr . inet_service . ipv4_addr . inet_service }   local ip . port . remote ip . port
    set binds { ipv4_addr . inet_service }                              local ip . port (passive open)
    chain output { type filter hook output priority 0; }                drop RSTs matching either set

Elements carry ``comment "pid=N"`` (their owner), so entries left by a killed process are found and
removed by the next rawtcp command (``reap``). Updates are one in-process libnftables call (~80 µs),
not one ``nft`` process per connection. RSTs rawtcp crafts itself leave through an AF_PACKET socket,
which does not traverse the OUTPUT hook, so they still go out.

The guard's netlink socket belongs to the namespace it was created in: create the RstGuard inside
the namespace whose kernel must be silenced.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from rawtcp.wire.errors import WireError

TABLE = "rawtcp"
FAMILY = "inet"
LOCK_DIR = "/run/rawtcp"
LOCK_FILE = os.path.join(LOCK_DIR, "nft.lock")
MISSING = "nftables is missing: apt-get install nftables"
NFT_CTX_OUTPUT_JSON = 1 << 4

_TABLE_DEF = f"""table {FAMILY} {TABLE} {{
  set conns {{ type ipv4_addr . inet_service . ipv4_addr . inet_service; }}
  set binds {{ type ipv4_addr . inet_service; }}
  chain output {{
    type filter hook output priority 0; policy accept;
    tcp flags & rst == rst ip saddr . tcp sport . ip daddr . tcp dport @conns counter drop
    tcp flags & rst == rst ip saddr . tcp sport @binds counter drop
  }}
}}"""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


class _LibNft:
    """Thin ctypes binding of libnftables: one context, output and errors buffered."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        ctx = lib.nft_ctx_new(0)  # opens its netlink socket now, in this thread's namespace
        if not ctx:
            raise WireError("libnftables could not create a context")
        self._ctx: int | None = ctx
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)

    def run(self, cmd: str, json_output: bool = False) -> tuple[int, str, str]:
        lib, ctx = self._lib, self._ctx
        if ctx is None:
            raise WireError("the RST guard is closed")
        if json_output:
            flags = lib.nft_ctx_output_get_flags(ctx)
            lib.nft_ctx_output_set_flags(ctx, flags | NFT_CTX_OUTPUT_JSON)
        try:
            rc = lib.nft_run_cmd_from_buffer(ctx, cmd.encode())
        finally:
            if json_output:
                lib.nft_ctx_output_set_flags(ctx, flags)
        out = lib.nft_ctx_get_output_buffer(ctx) or b""
        err = lib.nft_ctx_get_error_buffer(ctx) or b""
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


class _NftProcess:
    """Fallback when libnftables is not loadable: ``nft -f -`` per call (slow, but correct)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def run(self, cmd: str, json_output: bool = False) -> tuple[int, str, str]:
        argv = [self._path, *(["-j"] if json_output else []), "-f", "-"]
        proc = subprocess.run(argv, input=cmd, capture_output=True, text=True, check=False)
        return (0 if proc.returncode == 0 else -1), proc.stdout, proc.stderr

    def close(self) -> None:
        pass


def _backend() -> _LibNft | _NftProcess:
    for name in ("libnftables.so.1", ctypes.util.find_library("nftables")):
        if not name:
            continue
        try:
            return _LibNft(ctypes.CDLL(name))
        except OSError:
            continue
    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)
    if path is None:
        raise WireError(MISSING)
    return _NftProcess(path)


def _one_line(err: str) -> str:
    first = next((line for line in err.splitlines() if line.strip()), "unknown error")
    return first.removeprefix("Error: ").strip()


def _ip(ip: str) -> str:
    try:
        return socket.inet_ntoa(socket.inet_pton(socket.AF_INET, ip))
    except (OSError, TypeError):
        raise WireError(f"not an IPv4 address: {ip!r}") from None


def _port(port: int) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise WireError(f"port outside 1-65535: {port}")
    return port


class RstGuard:
    """Adds and removes RST-suppression entries in this namespace's ``inet rawtcp`` table.

    Entries added through a guard are remembered and removed by ``close()`` (normal exit, signal
    handlers and ``finally`` blocks call it); ``close()`` also drops the table when it is empty.
    """

    def __init__(self, owner_pid: int | None = None) -> None:
        self.owner_pid = os.getpid() if owner_pid is None else owner_pid
        self._nft = _backend()
        self._mine: set[tuple[str, str]] = set()  # (set name, element key) added by this guard
        self._lock_fd: int | None = None
        self._table_ready = False

    # -- locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive flock shared by every rawtcp process, so creating or dropping the table can't
        interleave with an add (which would otherwise land in a table about to be deleted)."""
        if self._lock_fd is None:
            try:
                os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
                self._lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except PermissionError:
                raise WireError(f"RST suppression needs root (cannot write {LOCK_DIR}): run it with sudo") from None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- commands --------------------------------------------------------------------------

    def _run(self, cmd: str, json_output: bool = False) -> tuple[int, str, str]:
        return self._nft.run(cmd, json_output)

    def _check(self, cmd: str, what: str) -> str:
        rc, out, err = self._run(cmd)
        if rc != 0:
            if "Operation not permitted" in err:
                raise WireError(f"{what} needs root (CAP_NET_ADMIN): run it with sudo")
            raise WireError(f"{what} failed: {_one_line(err)}")
        return out

    def table_exists(self) -> bool:
        rc, _out, _err = self._run(f"list table {FAMILY} {TABLE}")
        return rc == 0

    def _ensure_table(self) -> None:
        # called with the lock held; rules are not idempotent, so create the table only once
        if not self.table_exists():
            self._check(_TABLE_DEF, "creating nftables table inet rawtcp")

    def _add(self, set_name: str, key: str) -> None:
        cmd = f'add element {FAMILY} {TABLE} {set_name} {{ {key} comment "pid={self.owner_pid}" }}'
        with self._locked():
            if not self._table_ready:
                self._ensure_table()
            rc, _out, err = self._run(cmd)
            if rc != 0 and "No such file or directory" in err:
                self._ensure_table()  # another process dropped the table since we last looked
                rc, _out, err = self._run(cmd)
            if rc != 0:
                if "Operation not permitted" in err:
                    raise WireError("RST suppression needs root (CAP_NET_ADMIN): run it with sudo")
                raise WireError(f"adding RST-suppression entry {key} failed: {_one_line(err)}")
            self._table_ready = True
        self._mine.add((set_name, key))

    def _remove(self, set_name: str, key: str) -> bool:
        """Delete one element; False when it (or the table) was already gone."""
        self._mine.discard((set_name, key))
        rc, _out, err = self._run(f"delete element {FAMILY} {TABLE} {set_name} {{ {key} }}")
        if rc != 0:
            if "No such file or directory" in err:
                return False
            raise WireError(f"removing RST-suppression entry {key} failed: {_one_line(err)}")
        return True

    # -- public API -----------------------------------------------------------------------

    @staticmethod
    def conn_key(local_ip: str, lport: int, remote_ip: str, rport: int) -> str:
        return f"{_ip(local_ip)} . {_port(lport)} . {_ip(remote_ip)} . {_port(rport)}"

    @staticmethod
    def bind_key(local_ip: str, lport: int) -> str:
        return f"{_ip(local_ip)} . {_port(lport)}"

    def add_conn(self, local_ip: str, lport: int, remote_ip: str, rport: int) -> None:
        """Drop the local kernel's RSTs from local_ip:lport to remote_ip:rport."""
        self._add("conns", self.conn_key(local_ip, lport, remote_ip, rport))

    def remove_conn(self, local_ip: str, lport: int, remote_ip: str, rport: int) -> bool:
        return self._remove("conns", self.conn_key(local_ip, lport, remote_ip, rport))

    def add_bind(self, local_ip: str, lport: int) -> None:
        """Drop the local kernel's RSTs from local_ip:lport to anyone (passive open, peer unknown)."""
        self._add("binds", self.bind_key(local_ip, lport))

    def remove_bind(self, local_ip: str, lport: int) -> bool:
        return self._remove("binds", self.bind_key(local_ip, lport))

    def entries(self) -> list[tuple[str, tuple[Any, ...], int | None]]:
        """Every element in the table: ``(set name, key fields, owner pid or None)``."""
        rc, out, _err = self._run(f"list table {FAMILY} {TABLE}", json_output=True)
        if rc != 0 or not out.strip():
            return []
        found = []
        for obj in json.loads(out).get("nftables", []):
            nset = obj.get("set")
            if not nset or nset.get("name") not in ("conns", "binds"):
                continue
            for elem in nset.get("elem", []):
                inner = elem.get("elem", elem) if isinstance(elem, dict) else elem
                value = inner.get("val", inner) if isinstance(inner, dict) else inner
                fields = tuple(value["concat"]) if isinstance(value, dict) and "concat" in value else (value,)
                match = re.fullmatch(r"pid=(\d+)", inner.get("comment", "")) if isinstance(inner, dict) else None
                found.append((nset["name"], fields, int(match.group(1)) if match else None))
        return found

    def reap(self, alive: Callable[[int], bool] = pid_alive) -> list[str]:
        """Remove entries whose owner process is dead; one line per entry removed."""
        removed = []
        for set_name, fields, pid in self.entries():
            if pid is None or alive(pid):
                continue
            key = " . ".join(str(f) for f in fields)
            if self._remove(set_name, key):
                if set_name == "conns" and len(fields) == 4:
                    what = f"{fields[0]}:{fields[1]} -> {fields[2]}:{fields[3]}"
                else:
                    what = ":".join(str(f) for f in fields) + " (listening)"
                removed.append(f"removed RST-suppression entry {what} left by dead process {pid}")
        return removed

    def drop_table_if_empty(self) -> bool:
        """Delete ``inet rawtcp`` if neither set holds an element; True when it was deleted."""
        with self._locked():
            rc, _out, _err = self._run(f"list table {FAMILY} {TABLE}")
            if rc != 0:
                self._table_ready = False
                return False
            if self.entries():
                return False
            self._check(f"delete table {FAMILY} {TABLE}", "deleting nftables table inet rawtcp")
            self._table_ready = False
            return True

    def close(self) -> None:
        """Remove this guard's own entries, drop the table if that left it empty, release resources."""
        try:
            for set_name, key in sorted(self._mine):
                self._remove(set_name, key)
            self.drop_table_if_empty()
        finally:
            self._nft.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> RstGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
