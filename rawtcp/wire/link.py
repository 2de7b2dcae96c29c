"""One AF_PACKET socket per connection: filtered in the kernel, open before the first send.

On veth a kernel answers in microseconds, so a receiver started after (or racing with) the send
misses replies. The socket is created with protocol 0 (it receives nothing), gets its BPF filter,
and only then is bound to the interface for the connection's family (IPv4 or IPv6): no packet can
reach it unfiltered, and it is listening before anything is sent. PACKET_AUXDATA reports, per
frame, whether the TCP checksum is still partial (checksum offload on veth: the sender's kernel
never filled it in) or was verified by the NIC, so a checker does not call offloaded segments corrupt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import select
import socket
import struct
import threading
from types import TracebackType

from rawtcp.core.segment import Segment
from rawtcp.wire.bpf import FilterProgram, Instruction, attach, tcp_filter
from rawtcp.wire.closer import ClosePool
from rawtcp.wire.errors import WireError
from rawtcp.wire.icmp import IcmpMessage, decode_icmp_frame
from rawtcp.wire.packet import Decoded, decode_frame, segment_of_frame
from rawtcp.wire.rawsock import PACKET_OUTGOING, PACKET_QDISC_BYPASS, SOL_PACKET

PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20: do not hand our own transmissions back to us
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
TP_STATUS_CSUMNOTREADY = 0x08  # checksum partial: the sender offloaded it and nobody filled it in
TP_STATUS_CSUM_VALID = 0x80  # the NIC verified the checksum
CHECKSUM_TRUSTED = TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
SIOCGIFHWADDR = 0x8927
SO_RCVBUFFORCE = 33  # asm-generic/socket.h: root may exceed rmem_max

# struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
_CMSG_SPACE = socket.CMSG_SPACE(_AUXDATA.size)
_MAX_FRAME = 65536 + 64  # an unsegmented GSO packet on veth can be a full 64 KiB IP datagram


def decode(frame: bytes, status: int) -> Decoded | None:
    """Parse a received frame; its checksum counts as good when the kernel says it is partial
    (CSUMNOTREADY, local offload) or NIC-verified (CSUM_VALID), and is verified here otherwise."""
    if status & CHECKSUM_TRUSTED:
        return decode_frame(frame, verify=False, trusted=True)
    return decode_frame(frame)


def decode_segment(frame: bytes, status: int) -> tuple[Segment, bool | None] | None:
    """``(segment, checksum_ok)`` of a received frame, judged as :func:`decode` judges it, for a caller
    that knows whose frame it is already (see :func:`rawtcp.wire.packet.segment_of_frame`)."""
    if status & CHECKSUM_TRUSTED:
        return segment_of_frame(frame, verify=False, trusted=True)
    return segment_of_frame(frame)


def decode_any(frame: bytes, status: int) -> Decoded | IcmpMessage | None:
    """A TCP segment as :func:`decode` gives it, else an ICMP/ICMPv6 message (links opened with
    ``icmp=True`` receive both), else None."""
    dec = decode(frame, status)
    if dec is not None:
        return dec
    msg = decode_icmp_frame(frame, verify=not status & CHECKSUM_TRUSTED)
    if msg is not None and status & CHECKSUM_TRUSTED:
        return dataclasses.replace(msg, checksum_ok=True)
    return msg


def _hw_address(sock: socket.socket, ifname: str) -> tuple[int, bytes] | None:
    """(ARPHRD link type, MAC) of ``ifname`` in the socket's namespace (sysfs shows the mount's)."""
    req = struct.pack("16s16x", ifname.encode()[:15])
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, req)
    except OSError:
        return None
    family = struct.unpack_from("=H", res, 16)[0]
    return family, res[18:24]


# One pool thread: a connection's own close rarely needs more, and the order of closes is kept.
_CLOSER: ClosePool | None = None
_CLOSER_LOCK = threading.Lock()


def _closer() -> ClosePool:
    global _CLOSER
    with _CLOSER_LOCK:
        if _CLOSER is None:
            _CLOSER = ClosePool(threads=1)
        return _CLOSER


def filter_and_bind(sock: socket.socket, ifname: str, program: list[Instruction], protocol: int, *,
                    qdisc_bypass: bool, rcvbuf: int) -> FilterProgram:
    """Set a receiving packet socket up, its filter first so nothing arrives unfiltered, then bind it to
    ``ifname`` for ``protocol``: checksum status with each frame (PACKET_AUXDATA), none of our own
    transmissions, a forced receive buffer. Returns the attached filter."""
    attached = attach(sock, program)
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    with contextlib.suppress(OSError):  # older kernels: read_frames skips them itself
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    if qdisc_bypass:
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        sock.bind((ifname, protocol))
    except OSError as exc:
        raise WireError(f"cannot bind a packet socket to {ifname}: {exc.strerror}") from None
    return attached


def read_frames(sock: socket.socket, buf: bytearray, view: memoryview, max_n: int,
                more: select.poll | None = None) -> list[tuple[bytes, int]]:
    """Up to ``max_n`` queued frames of a packet socket as ``(frame, tp_status)``, without blocking and
    without this host's own transmissions; ``buf`` (with ``view`` over it) takes one frame at a time.

    ``more`` (a poll object watching ``sock`` alone) is asked, after the first frame, whether another
    is queued: most reads find one frame, and a zero-timeout poll costs a third of the failing
    ``recvmsg`` (and its exception) that would otherwise end the read."""
    out: list[tuple[bytes, int]] = []
    recvmsg_into = sock.recvmsg_into
    bufs = [buf]
    unpack = _AUXDATA.unpack_from
    for i in range(max_n):
        if i == 1 and more is not None and not more.poll(0):
            break
        try:
            n, ancdata, _flags, addr = recvmsg_into(bufs, _CMSG_SPACE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        if addr[2] == PACKET_OUTGOING:
            continue
        status = 0
        for level, kind, data in ancdata:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
                status = unpack(data)[0]
        out.append((bytes(view[:n]), status))
    return out


class PacketLink:
    """AF_PACKET socket on ``ifname`` seeing only TCP from ``remote`` to ``local`` (None: any).

    The family (IPv4 or IPv6) follows ``local_ip``; ``icmp=True`` also lets ICMP/ICMPv6 from the
    remote address through (errors and echo, not neighbour discovery): read them with
    :func:`decode_any`. ``recv_frames`` drains without blocking; wait for readability on
    ``fileno()`` (select/poll).
    """

    def __init__(self, ifname: str, local_ip: str, local_port: int, remote_ip: str | None = None,
                 remote_port: int | None = None, *, rcvbuf: int = 4 << 20, qdisc_bypass: bool = False,
                 icmp: bool = False) -> None:
        self.ifname = ifname
        self.icmp = icmp
        self.version = 6 if ":" in local_ip else 4
        program = tcp_filter(local_ip, local_port, remote_ip, remote_port, icmp=icmp)
        try:
            # protocol 0: nothing is delivered until bind(), and bind() comes after the filter
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise WireError("opening a packet socket needs root (CAP_NET_RAW): run it with sudo") from None
        self._sock = sock
        hw = _hw_address(sock, ifname)
        if hw is None:
            sock.close()
            raise WireError(f"no such interface: {ifname}", 2)
        kind, self.mac = hw
        if kind not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            sock.close()
            raise WireError(f"{ifname} is not an Ethernet interface (link type {kind}); only Ethernet is supported")
        try:
            self._filter: FilterProgram = filter_and_bind(sock, ifname, program,
                                                          ETH_P_IPV6 if self.version == 6 else ETH_P_IP,
                                                          qdisc_bypass=qdisc_bypass, rcvbuf=rcvbuf)
        except BaseException:
            sock.close()
            raise
        self._buf = bytearray(_MAX_FRAME)
        self._view = memoryview(self._buf)

    def set_filter(self, local_ip: str, local_port: int, remote_ip: str | None = None,
                   remote_port: int | None = None) -> None:
        """Swap the filter atomically, e.g. once a passive open learns the peer's address and port.

        The family stays the one the socket was bound for; ICMP passes as chosen at creation."""
        if (6 if ":" in local_ip else 4) != self.version:
            raise ValueError(f"this link is bound for IPv{self.version}, not for {local_ip}")
        self.set_program(tcp_filter(local_ip, local_port, remote_ip, remote_port, icmp=self.icmp))

    def set_program(self, program: list[Instruction]) -> None:
        self._filter = attach(self._sock, program)

    def recv_frames(self, max_n: int = 64) -> list[tuple[bytes, int]]:
        """Up to ``max_n`` queued frames as ``(frame, tp_status)``, without blocking."""
        return read_frames(self._sock, self._buf, self._view, max_n)

    def send(self, frame: bytes) -> None:
        """Transmit one complete Ethernet frame on the interface (bypasses netfilter OUTPUT)."""
        try:
            self._sock.send(frame)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise WireError(f"frame of {len(frame)} bytes is larger than {self.ifname}'s MTU") from None
            raise WireError(f"send on {self.ifname} failed: {exc.strerror or exc}") from None

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self, wait: bool = True) -> None:
        """Close the socket. Closing a bound packet socket waits for an RCU grace period
        (``synchronize_net``, 10-30 ms); ``wait=False`` hands that wait to a background thread
        (the socket stops receiving at once), which keeps the connection rate up."""
        if self._sock.fileno() == -1:
            return
        if wait:
            self._sock.close()
            return
        _closer().close_fd(self._sock.detach())  # frames queued meanwhile die with the socket

    @staticmethod
    def flush_closes(timeout: float = 5.0) -> bool:
        """Wait until every ``close(wait=False)`` has completed; False on timeout."""
        return _CLOSER is None or _CLOSER.flush(timeout)

    @property
    def closed(self) -> bool:
        return self._sock.fileno() == -1

    def __enter__(self) -> PacketLink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PacketLink {self.ifname} fd={self.fileno()} pid={os.getpid()}>"
