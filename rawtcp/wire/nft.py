"""Keeping the local kernel from resetting connections it does not know about.

A SYN-ACK (or any segment) for a port no kernel socket owns is answered by the local kernel with a
RST (RFC 9293 §3.10.7.1), which would kill every hand-made connection. rawtcp drops exactly those
RSTs in one nftables table it owns, ``inet rawtcp``, in the namespace where that kernel lives:

    set conns { ipv4_addr . inet_service . ipv4_addr . inet_service }   local ip . port . remote ip . port
    set binds { ipv4_addr . inet_service }                              local ip . port (passive open)
    chain output { type filter hook output priority 0; }                drop RSTs matching either set
    set conns6 { ipv6_addr . inet_service . ipv6_addr . inet_service }  the same for IPv6
    set binds6 { ipv6_addr . inet_service }
    chain output6 { type filter hook output priority 0; }               drop IPv6 RSTs matching those

A set's key type is fixed, so each family has its own pair; IPv6 rules live in their own chain so a
table made by an older rawtcp (IPv4 only) is completed in place by adding them.

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
import errno
import fcntl
import functools
import ipaddress
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from rawtcp.errors import FAILED, NO_PRIVILEGE
from rawtcp.proc import pid_alive
from rawtcp.wire.errors import WireError

TABLE = "rawtcp"
FAMILY = "inet"
MISSING = "nftables is missing: apt-get install nftables"
NFT_CTX_OUTPUT_JSON = 1 << 4

_IPV6_DEF = f"""table {FAMILY} {TABLE} {{
  set conns6 {{ type ipv6_addr . inet_service . ipv6_addr . inet_service; }}
  set binds6 {{ type ipv6_addr . inet_service; }}
  chain output6 {{
    type filter hook output priority 0; policy accept;
    tcp flags & rst == rst ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 counter drop
    tcp flags & rst == rst ip6 saddr . tcp sport @binds6 counter drop
  }}
}}"""
_TABLE_DEF = f"""table {FAMILY} {TABLE} {{
  set conns {{ type ipv4_addr . inet_service . ipv4_addr . inet_service; }}
  set binds {{ type ipv4_addr . inet_service; }}
  chain output {{
    type filter hook output priority 0; policy accept;
    tcp flags & rst == rst ip saddr . tcp sport . ip daddr . tcp dport @conns counter drop
    tcp flags & rst == rst ip saddr . tcp sport @binds counter drop
  }}
}}
{_IPV6_DEF}"""
SETS = ("conns", "binds", "conns6", "binds6")


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
        if json_output:  # with -j, -f expects JSON input: pass the (simple, list) command as words
            proc = subprocess.run([self._path, "-j", *cmd.split()], capture_output=True, text=True, check=False)
        else:
            proc = subprocess.run([self._path, "-f", "-"], input=cmd, capture_output=True, text=True, check=False)
        return (0 if proc.returncode == 0 else -1), proc.stdout, proc.stderr

    def close(self) -> None:
        pass


class _ElementSocket:
    """Set-element updates as one nf_tables netlink batch each, no parser or cache on the way.

    libnftables spends ~80 µs per ``add element`` (parse, cache fetch, evaluation); the kernel itself
    needs a few. Keys are laid out as nftables does for a concatenation: each field in its own
    4-byte-aligned slot, ports big-endian; the owner comment goes in the element's user data
    exactly as nft stores it (libnftnl udata TLV, type 0 = comment, NUL-terminated), so ``nft list``
    shows it and ``reap`` finds it. The socket, like libnftables' context, belongs to the namespace
    it was opened in.

    A one-element update (one per connection opened, one per connection released) is one precompiled
    ``struct`` layout: everything but the sequence numbers and the key is constant per set, direction
    and comment, so building the batch costs one ``pack`` rather than a dozen concatenations. The kernel
    handles a batch within ``send`` (netlink to the kernel is synchronous), so its answer is already
    queued when ``send`` returns: the socket is non-blocking, and only a missing answer waits.
    """

    NETLINK_NETFILTER: ClassVar[int] = 12
    NFNL_SUBSYS_NFTABLES: ClassVar[int] = 10
    NFNL_MSG_BATCH_BEGIN: ClassVar[int] = 0x10
    NFNL_MSG_BATCH_END: ClassVar[int] = 0x11
    NFT_MSG_NEWSETELEM: ClassVar[int] = 12
    NFT_MSG_DELSETELEM: ClassVar[int] = 14
    NLM_F_REQUEST: ClassVar[int] = 0x1
    NLM_F_ACK: ClassVar[int] = 0x4
    NLM_F_CREATE: ClassVar[int] = 0x400
    NLMSG_ERROR: ClassVar[int] = 2
    NFPROTO_INET: ClassVar[int] = 1
    NLA_F_NESTED: ClassVar[int] = 0x8000
    ANSWER_TIMEOUT: ClassVar[float] = 5.0  # seconds to wait for an answer that was not queued at once

    _NLMSG: ClassVar[struct.Struct] = struct.Struct("=IHHII")
    _NLMSG_ERR: ClassVar[struct.Struct] = struct.Struct("=IHHIIi")  # nlmsghdr + nlmsgerr's error code
    _NFGEN: ClassVar[struct.Struct] = struct.Struct("=BBH")
    _ATTR: ClassVar[struct.Struct] = struct.Struct("=HH")

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, self.NETLINK_NETFILTER)
        self._sock.bind((0, 0))
        self._sock.setblocking(False)
        self._seq = 1
        self._tables: dict[str, bytes] = {}  # set name -> encoded table/set attributes (constant)
        nftables = socket.htons(self.NFNL_SUBSYS_NFTABLES)
        self._begin_payload = self._NFGEN.pack(socket.AF_UNSPEC, 0, nftables)
        # (set name, key length, comment, add) -> (layout, body header fields, prefix, suffix)
        self._templates: dict[tuple[str, int, str | None, bool], tuple[struct.Struct, int, int, int, bytes, bytes]] = {}

    @classmethod
    def _attr(cls, kind: int, payload: bytes) -> bytes:
        n = 4 + len(payload)
        return cls._ATTR.pack(n, kind) + payload + b"\0" * (-n % 4)

    def _msg(self, kind: int, flags: int, payload: bytes) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._NLMSG.pack(16 + len(payload), kind, flags, self._seq, 0) + payload

    def _head(self, set_name: str) -> bytes:
        head = self._tables.get(set_name)
        if head is None:
            head = self._tables[set_name] = (
                self._NFGEN.pack(self.NFPROTO_INET, 0, 0)
                + self._attr(1, TABLE.encode() + b"\0")  # NFTA_SET_ELEM_LIST_TABLE
                + self._attr(2, set_name.encode() + b"\0"))  # NFTA_SET_ELEM_LIST_SET
        return head

    def _kind(self, add: bool) -> tuple[int, int]:
        subsys = self.NFNL_SUBSYS_NFTABLES << 8
        if add:
            return subsys | self.NFT_MSG_NEWSETELEM, self.NLM_F_REQUEST | self.NLM_F_ACK | self.NLM_F_CREATE
        return subsys | self.NFT_MSG_DELSETELEM, self.NLM_F_REQUEST | self.NLM_F_ACK

    def _elements(self, keys: list[bytes], comment: str | None) -> bytes:
        udata = b""
        if comment is not None:
            text = comment.encode() + b"\0"
            udata = self._attr(6, bytes((0, len(text))) + text)  # NFTA_SET_ELEM_USERDATA: comment TLV
        listed = b"".join(  # NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }, user data }
            self._attr(1 | self.NLA_F_NESTED, self._attr(1 | self.NLA_F_NESTED, self._attr(1, key)) + udata)
            for key in keys)
        return self._attr(3 | self.NLA_F_NESTED, listed)

    def _template(self, set_name: str, key_len: int, comment: str | None, add: bool
                  ) -> tuple[struct.Struct, int, int, int, bytes, bytes]:
        """The layout of a one-element batch: the payload around a key of ``key_len`` bytes is cut from
        one built with a placeholder key, so the two encodings cannot drift apart."""
        found = self._templates.get((set_name, key_len, comment, add))
        if found is None:
            marker = bytes(range(1, key_len + 1)) if key_len < 256 else b"\xa5" * key_len
            payload = self._head(set_name) + self._elements([marker], comment)
            at = payload.index(marker)
            prefix, suffix = payload[:at], payload[at + key_len:]
            kind, flags = self._kind(add)
            begin = len(self._begin_payload)
            layout = struct.Struct(f"=IHHII{begin}sIHHII{len(prefix)}s{key_len}s{len(suffix)}sIHHII{begin}s")
            found = (layout, 16 + len(payload), kind, flags, prefix, suffix)
            self._templates[(set_name, key_len, comment, add)] = found
        return found

    def update(self, set_name: str, key: bytes, comment: str | None, add: bool) -> int:
        """Add or delete one element; 0 or the kernel's errno."""
        layout, body_len, kind, flags, prefix, suffix = self._template(set_name, len(key), comment, add)
        seq = self._seq
        begin_seq, want, end_seq = (seq + 1) & 0xFFFFFFFF, (seq + 2) & 0xFFFFFFFF, (seq + 3) & 0xFFFFFFFF
        self._seq = end_seq
        nfgen = self._begin_payload
        self._send(layout.pack(20, self.NFNL_MSG_BATCH_BEGIN, self.NLM_F_REQUEST, begin_seq, 0, nfgen,
                               body_len, kind, flags, want, 0, prefix, key, suffix,
                               20, self.NFNL_MSG_BATCH_END, self.NLM_F_REQUEST, end_seq, 0, nfgen))
        return self._answer(want)

    def update_many(self, set_name: str, keys: list[bytes], comment: str | None, add: bool) -> int:
        """Add or delete several elements of one set in one message (one transaction: all or none);
        0 or the kernel's errno."""
        if len(keys) == 1:
            return self.update(set_name, keys[0], comment, add)
        kind, flags = self._kind(add)
        begin = self._msg(self.NFNL_MSG_BATCH_BEGIN, self.NLM_F_REQUEST, self._begin_payload)
        body = self._msg(kind, flags, self._head(set_name) + self._elements(keys, comment))
        want = self._seq
        end = self._msg(self.NFNL_MSG_BATCH_END, self.NLM_F_REQUEST, self._begin_payload)
        self._send(begin + body + end)
        return self._answer(want)

    def _send(self, batch: bytes) -> None:
        try:
            self._sock.send(batch)
        except BlockingIOError:  # never seen from a netlink send to the kernel; wait rather than fail
            if not select.select([], [self._sock], [], self.ANSWER_TIMEOUT)[1]:
                raise TimeoutError("nf_tables over netlink does not take the update") from None
            self._sock.send(batch)

    def _answer(self, want: int) -> int:
        """The kernel's answer to the element message of sequence ``want`` (an error for the batch's
        begin or end, one sequence number either side, counts too): 0 or its errno."""
        recv, unpack = self._sock.recv, self._NLMSG_ERR.unpack_from
        near = ((want - 1) & 0xFFFFFFFF, want, (want + 1) & 0xFFFFFFFF)
        for _ in range(64):  # bounded: the kernel acks the element message (or an error) at once
            try:
                data = recv(65536)
            except BlockingIOError:
                if not select.select([self._sock], [], [], self.ANSWER_TIMEOUT)[0]:
                    # what the blocking socket's timeout raised: callers count it as an OSError (EIO)
                    raise TimeoutError("no answer from nf_tables over netlink") from None
                continue
            off = 0
            while off + 20 <= len(data):
                length, mtype, _flags, seq, _pid, code = unpack(data, off)
                if mtype == self.NLMSG_ERROR and seq in near and (code != 0 or seq == want):
                    return -code
                off += max(16, (length + 3) & ~3)
        raise WireError("no answer from nf_tables over netlink")

    def close(self) -> None:
        self._sock.close()


def _packed(ip: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


def _conn_key(local_ip: str, lport: int, remote_ip: str, rport: int) -> bytes:
    # each field of a concatenation in its own 4-byte-aligned slot: 4 (or 16) address bytes, port + 2 pad
    local, remote = _packed(local_ip), _packed(remote_ip)
    return struct.pack(f"!{len(local)}sH2x{len(remote)}sH2x", local, lport, remote, rport)


def _bind_key(local_ip: str, lport: int) -> bytes:
    local = _packed(local_ip)
    return struct.pack(f"!{len(local)}sH2x", local, lport)


@functools.lru_cache(maxsize=256)
def _pair(local_ip: str, remote_ip: str) -> tuple[str, str, str, bytes, bytes, struct.Struct]:
    """(set name, local and remote as nft prints them, both packed, the key's layout) of an address
    pair: checked once, since one process's connections mostly share their addresses."""
    local, remote = _ip(local_ip), _ip(remote_ip)
    lpacked, rpacked = _packed(local), _packed(remote)
    layout = struct.Struct(f"!{len(lpacked)}sH2x{len(rpacked)}sH2x")
    return "conns" + _suffix(local, remote), local, remote, lpacked, rpacked, layout


def _conn_element(local_ip: str, lport: int, remote_ip: str, rport: int) -> tuple[str, str, bytes]:
    """(set name, element text, element key) of a connection's entry."""
    set_name, local, remote, lpacked, rpacked, layout = _pair(local_ip, remote_ip)
    text = f"{local} . {_port(lport)} . {remote} . {_port(rport)}"
    return set_name, text, layout.pack(lpacked, lport, rpacked, rport)


def _backend(use_library: bool = True) -> _LibNft | _NftProcess:
    for name in ("libnftables.so.1", ctypes.util.find_library("nftables")) if use_library else ():
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


def table_exists() -> bool:
    """Whether this namespace has rawtcp's table (a cheap check before reaping); False without nft."""
    try:
        backend = _backend()
    except WireError:
        return False
    try:
        return backend.run(f"list table {FAMILY} {TABLE}")[0] == 0
    finally:
        backend.close()


NETNS_PATH = "/proc/thread-self/ns/net"  # the thread's namespace: setns moves only the calling thread


def open_netns_lock() -> int:
    """A descriptor of the calling thread's network namespace, to flock as that namespace's table lock.
    Each namespace has its own table, so rawtcp processes in different namespaces (labs) never wait for
    each other; and the lock lives on the namespace's own inode, so no lock file is left on disk."""
    return os.open(NETNS_PATH, os.O_RDONLY | os.O_CLOEXEC)


def _one_line(err: str) -> str:
    first = next((line for line in err.splitlines() if line.strip()), "unknown error")
    return first.removeprefix("Error: ").strip()


def _ip(ip: str) -> str:
    """``ip`` as nft prints it (IPv6 compressed); WireError naming the family it looks like."""
    family = socket.AF_INET6 if isinstance(ip, str) and ":" in ip else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, ip))
    except (OSError, TypeError, ValueError):
        raise WireError(f"not an IPv{6 if family == socket.AF_INET6 else 4} address: {ip!r}") from None


def _suffix(local_ip: str, remote_ip: str | None = None) -> str:
    """The set-name suffix of the addresses' family: "" for IPv4, "6" for IPv6 (both must agree)."""
    v6 = ":" in local_ip
    if remote_ip is not None and (":" in remote_ip) != v6:
        raise WireError(f"{local_ip} and {remote_ip} are of different address families")
    return "6" if v6 else ""


def _port(port: int) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise WireError(f"port outside 1-65535: {port}")
    return port


class RstGuard:
    """Adds and removes RST-suppression entries in this namespace's ``inet rawtcp`` table.

    Entries added through a guard are remembered and removed by ``close()`` (normal exit, signal
    handlers and ``finally`` blocks call it); ``close()`` also drops the table when it is empty.
    Element updates go straight to nf_tables over netlink; the table itself is made and listed
    through libnftables (or the ``nft`` program when the library is missing).
    """

    def __init__(self, owner_pid: int | None = None, fast: bool = True, use_library: bool = True) -> None:
        """``fast=False`` sends element updates through libnftables too; ``use_library=False`` runs
        the ``nft`` program instead of libnftables (both exist for comparison and as fallbacks)."""
        self.owner_pid = os.getpid() if owner_pid is None else owner_pid
        self._comment = f"pid={self.owner_pid}"  # each element's owner, for reap
        self._nft = _backend(use_library)
        self._nl: _ElementSocket | None = None
        if fast:
            with contextlib.suppress(OSError):
                self._nl = _ElementSocket()
        # (set name, element text, element key bytes) added by this guard
        self._mine: set[tuple[str, str, bytes]] = set()
        self._lock_fd: int | None = open_netns_lock()  # the namespace the guard was made in, as its sockets are

    # -- locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool = True) -> Iterator[None]:
        """The namespace's table lock, shared by every rawtcp process there. Element adds take it shared
        and run side by side; creating or dropping the table takes it exclusive, so an add can't land
        in a table that a drop has just found empty and is deleting (the element would vanish with it)."""
        if self._lock_fd is None:
            raise WireError("the RST-suppression guard is closed")
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
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
        elif self._run(f"list set {FAMILY} {TABLE} conns6")[0] != 0:
            # a table made by an IPv4-only rawtcp that is still running: add the IPv6 part beside it
            self._check(_IPV6_DEF, "adding IPv6 sets to nftables table inet rawtcp")

    def _update(self, set_name: str, text: str, key: bytes | None, add: bool) -> int:
        """One element added or deleted: 0, or an errno."""
        comment = self._comment
        if self._nl is not None and key is not None:
            try:
                return self._nl.update(set_name, key, comment if add else None, add)
            except OSError as exc:
                return exc.errno or errno.EIO
        cmd = f"{'add' if add else 'delete'} element {FAMILY} {TABLE} {set_name} {{ {text}"
        cmd += f' comment "{comment}" }}' if add else " }"
        rc, _out, err = self._run(cmd)
        if rc == 0:
            return 0
        if "No such file or directory" in err:
            return errno.ENOENT
        if "Operation not permitted" in err:
            return errno.EPERM
        raise WireError(f"{'adding' if add else 'removing'} RST-suppression entry {text} failed: {_one_line(err)}")

    def _add(self, set_name: str, text: str, key: bytes) -> None:
        # The shared lock by hand, not through _locked: an add runs once per connection opened.
        lock_fd = self._lock_fd
        if lock_fd is None:
            raise WireError("the RST-suppression guard is closed")
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        try:
            code = self._update(set_name, text, key, add=True)
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        if code == errno.ENOENT:  # no table (or no IPv6 sets) yet: make it, alone, then add
            with self._locked():
                self._ensure_table()
                code = self._update(set_name, text, key, add=True)
        if code == errno.EPERM:
            raise WireError("RST suppression needs root (CAP_NET_ADMIN): run it with sudo")
        if code:
            raise WireError(f"adding RST-suppression entry {text} failed: {os.strerror(code)}")
        self._mine.add((set_name, text, key))

    def _remove(self, set_name: str, text: str, key: bytes | None) -> bool:
        """Delete one element; False when it (or the table) was already gone."""
        if key is not None:
            self._mine.discard((set_name, text, key))
        code = self._update(set_name, text, key, add=False)
        if code == errno.ENOENT:
            return False
        if code == errno.EPERM:
            raise WireError("RST suppression needs root (CAP_NET_ADMIN): run it with sudo")
        if code:
            raise WireError(f"removing RST-suppression entry {text} failed: {os.strerror(code)}")
        return True

    # -- public API -----------------------------------------------------------------------

    @staticmethod
    def conn_key(local_ip: str, lport: int, remote_ip: str, rport: int) -> str:
        """The element as nft writes it: ``local ip . local port . remote ip . remote port``."""
        _suffix(_ip(local_ip), _ip(remote_ip))
        return f"{_ip(local_ip)} . {_port(lport)} . {_ip(remote_ip)} . {_port(rport)}"

    @staticmethod
    def bind_key(local_ip: str, lport: int) -> str:
        return f"{_ip(local_ip)} . {_port(lport)}"

    @staticmethod
    def conn_set(local_ip: str, remote_ip: str) -> str:
        """The set a connection's entry goes in: ``conns`` (IPv4) or ``conns6`` (IPv6)."""
        return "conns" + _suffix(_ip(local_ip), _ip(remote_ip))

    @staticmethod
    def bind_set(local_ip: str) -> str:
        return "binds" + _suffix(_ip(local_ip))

    def add_conn(self, local_ip: str, lport: int, remote_ip: str, rport: int) -> None:
        """Drop the local kernel's RSTs from local_ip:lport to remote_ip:rport (IPv4 or IPv6)."""
        self._add(*_conn_element(local_ip, lport, remote_ip, rport))

    def remove_conn(self, local_ip: str, lport: int, remote_ip: str, rport: int) -> bool:
        return self._remove(*_conn_element(local_ip, lport, remote_ip, rport))

    def remove_conns(self, conns: list[tuple[str, int, str, int]]) -> None:
        """:meth:`remove_conn` for several connections at once: one nf_tables message per set over
        netlink (entries already gone are skipped, as ``remove_conn`` skips them)."""
        if len(conns) == 1:  # a hub's last connection released: its element goes at once, alone
            self._remove(*_conn_element(*conns[0]))
            return
        by_set: dict[str, list[tuple[str, bytes]]] = {}
        for conn in conns:
            set_name, text, key = _conn_element(*conn)
            by_set.setdefault(set_name, []).append((text, key))
        for set_name, items in by_set.items():
            code = errno.ENOENT
            if self._nl is not None and len(items) > 1:
                try:
                    code = self._nl.update_many(set_name, [key for _text, key in items], None, add=False)
                except OSError as exc:
                    code = exc.errno or errno.EIO
            if code == 0:
                for text, key in items:
                    self._mine.discard((set_name, text, key))
                continue
            for text, key in items:  # one of them was gone already (or one at a time was asked for)
                self._remove(set_name, text, key)

    def add_bind(self, local_ip: str, lport: int) -> None:
        """Drop the local kernel's RSTs from local_ip:lport to anyone (passive open, peer unknown)."""
        self._add(self.bind_set(local_ip), self.bind_key(local_ip, lport), _bind_key(local_ip, lport))

    def remove_bind(self, local_ip: str, lport: int) -> bool:
        return self._remove(self.bind_set(local_ip), self.bind_key(local_ip, lport), _bind_key(local_ip, lport))

    def entries(self) -> list[tuple[str, tuple[Any, ...], int | None]]:
        """Every element in the table: ``(set name, key fields, owner pid or None)``; IPv6 entries are in
        ``conns6`` and ``binds6``."""
        rc, out, _err = self._run(f"list table {FAMILY} {TABLE}", json_output=True)
        if rc != 0 or not out.strip():
            return []
        found = []
        for obj in json.loads(out).get("nftables", []):
            nset = obj.get("set")
            if not nset or nset.get("name") not in SETS:
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
            if self._remove(set_name, " . ".join(str(f) for f in fields), None):
                # IPv6 addresses in brackets before a port, as in URLs (RFC 3986 §3.2.2)
                ends = [f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
                        for ip, port in zip(fields[::2], fields[1::2], strict=False)]
                if set_name.startswith("conns") and len(ends) == 2:
                    what = f"{ends[0]} -> {ends[1]}"
                else:
                    what = " ".join(ends) + " (listening)"
                removed.append(f"removed RST-suppression entry {what} left by dead process {pid}")
        return removed

    def drop_table_if_empty(self) -> bool:
        """Delete ``inet rawtcp`` if neither set holds an element; True when it was deleted."""
        # Look first without the lock: a table that still holds entries (the common case when many
        # connections share it) is listed without holding every add in the namespace back meanwhile.
        if not self.table_exists() or self.entries():
            return False
        with self._locked():
            if not self.table_exists() or self.entries():
                return False
            self._check(f"delete table {FAMILY} {TABLE}", "deleting nftables table inet rawtcp")
            return True

    def close(self) -> None:
        """Remove this guard's own entries, drop the table if that left it empty, release resources."""
        try:
            for set_name, text, key in sorted(self._mine):
                self._remove(set_name, text, key)
            self.drop_table_if_empty()
        finally:
            self._nft.close()
            if self._nl is not None:
                self._nl.close()
                self._nl = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> RstGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# A whole source-port range (a SYN flood's): one rule in a table of this process's own,
# ``inet rawtcp_flood_<pid>``, removed afterwards; tables of dead processes are reaped.




def port_range_table(pid: int | None = None) -> str:
    return f"rawtcp_flood_{os.getpid() if pid is None else pid}"  # one table per process: its own rule, its own cleanup


def _nft_script(script: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("nft")
    if exe is None:
        raise WireError(MISSING)
    return subprocess.run([exe, "-f", "-"], input=script, capture_output=True, text=True, timeout=20)


def reap_port_range_tables() -> list[str]:
    """Delete ``rawtcp_flood_<pid>`` tables (in this namespace) whose process is dead."""
    exe = shutil.which("nft")
    if exe is None:
        return []
    out = subprocess.run([exe, "list", "tables"], capture_output=True, text=True, timeout=20).stdout
    removed = []
    for pid_text in re.findall(r"table inet rawtcp_flood_(\d+)", out):
        pid = int(pid_text)
        if pid_alive(pid):
            continue
        if _nft_script(f"delete table inet {port_range_table(pid)}\n").returncode == 0:
            removed.append(f"nftables table inet {port_range_table(pid)} left by dead process {pid}")
    return removed


@contextlib.contextmanager
def suppress_port_range_rsts(src_ip: str, dst_ip: str, dport: int, sports: tuple[int, int]) -> Iterator[str]:
    """Drop this namespace's RSTs from src_ip:sports to dst_ip:dport while the block runs."""
    table = port_range_table()
    ip = "ip6" if ipaddress.ip_address(dst_ip).version == 6 else "ip"  # the inet table sees both families
    script = (f"table inet {table} {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n"
              f"  {ip} saddr {src_ip} {ip} daddr {dst_ip} tcp dport {dport} tcp sport {sports[0]}-{sports[1]} "
              f"tcp flags & rst == rst counter drop\n }}\n}}\n")
    proc = _nft_script(script)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["?"])[0]
        if "Operation not permitted" in msg:
            raise WireError("RST suppression needs root (CAP_NET_ADMIN): run it with sudo", NO_PRIVILEGE)
        raise WireError(f"adding the RST-suppression rule failed: {msg}", FAILED)
    try:
        yield table
    finally:
        _nft_script(f"delete table inet {table}\n")
