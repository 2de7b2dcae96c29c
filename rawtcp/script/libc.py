"""The few system calls Python's standard library cannot make the way a script asks for them.

* epoll: select.epoll always creates with epoll_create1(), stores the fd itself as the event data and
  owns (closes) the descriptor; scripts ask for epoll_create(size) with its own errors, for data
  ``ptr``/``u32``/``u64`` as well as ``fd``, and close the descriptor with close().
* NULL buffers: ``read(4, NULL, 1000) = -1 EFAULT`` needs a NULL pointer, which no Python buffer is.
* AF_UNSPEC addresses: ``connect(3, AF_UNSPEC, ...)`` and ``sendto(..., AF_UNSPEC, ...)`` pass a
  sockaddr whose family is AF_UNSPEC, which Python's address conversion refuses.

Each function returns the call's result and raises OSError(errno) on failure, like the os module.
ctypes releases the GIL around foreign calls, so a blocking epoll_wait() does not stall the helper.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)


class EpollEvent(ctypes.Structure):
    """struct epoll_event: packed on x86-64 (12 bytes), naturally aligned elsewhere."""

    _pack_ = 1 if os.uname().machine == "x86_64" else 8
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _fn(name: str, restype: Any, *argtypes: Any) -> Any:
    func = getattr(_libc, name)
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


_epoll_create = _fn("epoll_create", ctypes.c_int, ctypes.c_int)
_epoll_ctl = _fn("epoll_ctl", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(EpollEvent))
_epoll_wait = _fn("epoll_wait", ctypes.c_int, ctypes.c_int, ctypes.POINTER(EpollEvent), ctypes.c_int, ctypes.c_int)
_read = _fn("read", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
_write = _fn("write", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
_send = _fn("send", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_recv = _fn("recv", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_sendto = _fn("sendto", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
              ctypes.c_char_p, ctypes.c_uint32)
_recvfrom = _fn("recvfrom", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32))
_connect = _fn("connect", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)

SOCKADDR_STORAGE = 128


def epoll_create(size: int) -> int:
    return _check(_epoll_create(size))


def epoll_ctl(epfd: int, op: int, fd: int, events: int, data: int) -> int:
    event = EpollEvent(events & 0xFFFFFFFF, data & 0xFFFFFFFFFFFFFFFF)
    return _check(_epoll_ctl(epfd, op, fd, ctypes.byref(event)))


def epoll_wait(epfd: int, maxevents: int, timeout_ms: int) -> tuple[int, list[tuple[int, int]]]:
    """(result, [(events, data), ...]); the list always has the first slot (zeroed if nothing came), as
    packetdrill compares the first event even when epoll_wait() returns 0."""
    events = (EpollEvent * max(maxevents, 1))()
    result = _check(_epoll_wait(epfd, events, maxevents, timeout_ms))
    return result, [(e.events, e.data) for e in events[:max(result, 1)]]


def null_read(fd: int, count: int) -> int:
    return _check(_read(fd, None, count))


def null_write(fd: int, count: int) -> int:
    return _check(_write(fd, None, count))


def null_send(fd: int, count: int, flags: int) -> int:
    return _check(_send(fd, None, count, flags))


def null_recv(fd: int, count: int, flags: int) -> int:
    return _check(_recv(fd, None, count, flags))


def sendto_raw(fd: int, data: bytes | None, count: int, flags: int, addr: bytes) -> int:
    """sendto() with a sockaddr given as bytes (and data None for a NULL buffer)."""
    buf = ctypes.create_string_buffer(data, count) if data is not None else None
    return _check(_sendto(fd, buf, count, flags, addr, len(addr)))


def null_recvfrom(fd: int, count: int, flags: int) -> int:
    addr = ctypes.create_string_buffer(SOCKADDR_STORAGE)
    addrlen = ctypes.c_uint32(SOCKADDR_STORAGE)
    return _check(_recvfrom(fd, None, count, flags, addr, ctypes.byref(addrlen)))


def connect_raw(fd: int, addr: bytes) -> int:
    return _check(_connect(fd, addr, len(addr)))


def unspec_sockaddr() -> bytes:
    """What packetdrill passes for an ``AF_UNSPEC`` address: a zeroed sockaddr_storage with family 0."""
    return struct.pack("=H", 0) + b"\0" * (SOCKADDR_STORAGE - 2)
