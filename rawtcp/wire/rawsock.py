"""Packet sockets that are not one connection's PacketLink: a send-only socket on an interface that
bypasses the qdisc layer, ``sendmmsg(2)`` over one buffer of frames (through ctypes: Python's socket
module has no binding), and a socket that receives every frame of an interface (the relay's).

Standard library only, and no other rawtcp.wire module: the netem relay imports it and must start fast.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import time
from typing import Any

from rawtcp.errors import FAILED, NO_PRIVILEGE
from rawtcp.wire.errors import WireError

# linux/if_packet.h and linux/if_ether.h
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent
ETH_P_ALL = 0x0003


def open_send_socket(ifname: str) -> socket.socket:
    """A packet socket bound to ``ifname`` that only sends (protocol 0: it receives nothing) and skips
    the qdisc layer where the driver allows it (veth needs no queueing discipline)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise WireError("a packet socket needs root (CAP_NET_RAW): run it with sudo", NO_PRIVILEGE) from None
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        sock.bind((ifname, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def open_receive_all_socket(ifname: str) -> socket.socket:
    """A non-blocking packet socket that sees every frame on ``ifname`` (both directions: check
    ``recvfrom``'s ``addr[2] == PACKET_OUTGOING`` to skip this host's own)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock




class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_IoVec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


def message_headers(base: int, slot: int, batch: int) -> tuple[Any, Any]:
    """``batch`` one-iovec message headers over a buffer at address ``base`` cut in ``slot``-byte slots
    (each iovec's length starts at ``slot``; a sender may shorten it per frame)."""
    iov = (_IoVec * batch)()
    msgs = (_MMsgHdr * batch)()
    for i in range(batch):
        iov[i].base = base + i * slot
        iov[i].len = slot
        msgs[i].hdr.iov = ctypes.pointer(iov[i])
        msgs[i].hdr.iovlen = 1
    return iov, msgs


def libc_sendmmsg() -> Any:
    """libc's ``sendmmsg(fd, msgvec, vlen, flags)``, typed, with errno kept for ``ctypes.get_errno``."""
    fn = ctypes.CDLL(None, use_errno=True).sendmmsg
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class BatchSender:
    """``batch`` frames of ``size`` bytes in one buffer; ``send(n)`` transmits the first n with sendmmsg."""

    def __init__(self, fd: int, size: int, batch: int) -> None:
        self.fd, self.size, self.batch = fd, size, batch
        self.buf = bytearray(size * batch)
        self._cbuf = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        base = ctypes.addressof(self._cbuf)
        self._iov, self._msgs = message_headers(base, size, batch)
        self._sendmmsg = libc_sendmmsg()
        self._msgs_addr = ctypes.addressof(self._msgs)
        self._entry = ctypes.sizeof(_MMsgHdr)

    def fill_from(self, template: bytes) -> None:
        for i in range(self.batch):
            self.buf[i * self.size:(i + 1) * self.size] = template

    def send(self, n: int) -> int:
        """Send frames 0..n-1; returns how many left (a full device queue is retried, bounded)."""
        done, stalls = 0, 0
        while done < n:
            rc = self._sendmmsg(self.fd, self._msgs_addr + done * self._entry, n - done, 0)
            if rc > 0:
                done += rc
                continue
            err = ctypes.get_errno()
            if err in (105, 11, 4) and stalls < 1000:  # ENOBUFS, EAGAIN, EINTR: the queue is full
                stalls += 1
                time.sleep(0.0001)
                continue
            raise WireError(f"sendmmsg failed: {os.strerror(err)}", FAILED)
        return done

    def close(self) -> None:
        del self._cbuf
