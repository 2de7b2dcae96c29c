"""The symbolic names a script may use in system-call arguments, with their Linux values.

packetdrill resolves a word such as ``SO_ZEROCOPY`` through two tables (script.c's cross-platform
symbols and symbols_linux.c); an unknown word is a runtime error "unknown symbol: 'NAME'". Python's
socket/select/errno/os/fcntl modules supply most values; the rest are the Linux UAPI numbers, written
out here because Python does not export them (SO_ZEROCOPY, MSG_ZEROCOPY, IP_RECVERR, SOF_TIMESTAMPING_*,
TCP_NLA_* ...). Only the x86-64/asm-generic values are listed: the helper runs on the machine under test.
"""

from __future__ import annotations

import errno as errno_mod
import fcntl
import os
import select
import socket

# Linux UAPI values Python lacks (or spells differently). Grouped as in packetdrill's symbols_linux.c.
_LINUX: dict[str, int] = {
    # levels
    "SOL_SOCKET": 1, "SOL_IP": 0, "SOL_IPV6": 41, "SOL_TCP": 6, "SOL_UDP": 17,
    # SOL_SOCKET options
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5, "SO_BROADCAST": 6,
    "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10, "SO_NO_CHECK": 11,
    "SO_PRIORITY": 12, "SO_LINGER": 13, "SO_BSDCOMPAT": 14, "SO_REUSEPORT": 15, "SO_PASSCRED": 16,
    "SO_PEERCRED": 17, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19, "SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21,
    "SO_SECURITY_AUTHENTICATION": 22, "SO_SECURITY_ENCRYPTION_TRANSPORT": 23,
    "SO_SECURITY_ENCRYPTION_NETWORK": 24, "SO_BINDTODEVICE": 25, "SO_ATTACH_FILTER": 26,
    "SO_DETACH_FILTER": 27, "SO_PEERNAME": 28, "SO_TIMESTAMP": 29, "SO_ACCEPTCONN": 30, "SO_PEERSEC": 31,
    "SO_MARK": 36, "SO_TIMESTAMPING": 37, "SO_MAX_PACING_RATE": 47, "SO_MEMINFO": 55, "SO_ZEROCOPY": 60,
    # struct sock_extended_err
    "SO_EE_ORIGIN_NONE": 0, "SO_EE_ORIGIN_LOCAL": 1, "SO_EE_ORIGIN_ICMP": 2, "SO_EE_ORIGIN_ICMP6": 3,
    "SO_EE_ORIGIN_TXSTATUS": 4, "SO_EE_ORIGIN_TIMESTAMPING": 4, "SO_EE_ORIGIN_ZEROCOPY": 5,
    "SO_EE_CODE_ZEROCOPY_COPIED": 1,
    # SO_TIMESTAMPING flags and cmsgs
    "SOF_TIMESTAMPING_TX_HARDWARE": 1 << 0, "SOF_TIMESTAMPING_TX_SOFTWARE": 1 << 1,
    "SOF_TIMESTAMPING_RX_HARDWARE": 1 << 2, "SOF_TIMESTAMPING_RX_SOFTWARE": 1 << 3,
    "SOF_TIMESTAMPING_SOFTWARE": 1 << 4, "SOF_TIMESTAMPING_SYS_HARDWARE": 1 << 5,
    "SOF_TIMESTAMPING_RAW_HARDWARE": 1 << 6, "SOF_TIMESTAMPING_OPT_ID": 1 << 7,
    "SOF_TIMESTAMPING_TX_SCHED": 1 << 8, "SOF_TIMESTAMPING_TX_ACK": 1 << 9,
    "SOF_TIMESTAMPING_OPT_CMSG": 1 << 10, "SOF_TIMESTAMPING_OPT_TSONLY": 1 << 11,
    "SOF_TIMESTAMPING_OPT_STATS": 1 << 12, "SOF_TIMESTAMPING_OPT_PKTINFO": 1 << 13,
    "SOF_TIMESTAMPING_OPT_TX_SWHW": 1 << 14, "SOF_TIMESTAMPING_OPT_ID_TCP": 1 << 16,
    "SCM_TIMESTAMPING": 37, "SCM_TSTAMP_SND": 0, "SCM_TSTAMP_SCHED": 1, "SCM_TSTAMP_ACK": 2,
    "SCM_TIMESTAMPING_OPT_STATS": 54,
    # netlink attributes of SCM_TIMESTAMPING_OPT_STATS
    "TCP_NLA_PAD": 0, "TCP_NLA_BUSY": 1, "TCP_NLA_RWND_LIMITED": 2, "TCP_NLA_SNDBUF_LIMITED": 3,
    "TCP_NLA_DATA_SEGS_OUT": 4, "TCP_NLA_TOTAL_RETRANS": 5, "TCP_NLA_PACING_RATE": 6,
    "TCP_NLA_DELIVERY_RATE": 7, "TCP_NLA_SND_CWND": 8, "TCP_NLA_REORDERING": 9, "TCP_NLA_MIN_RTT": 10,
    "TCP_NLA_RECUR_RETRANS": 11, "TCP_NLA_DELIVERY_RATE_APP_LMT": 12, "TCP_NLA_SNDQ_SIZE": 13,
    "TCP_NLA_CA_STATE": 14, "TCP_NLA_SND_SSTHRESH": 15, "TCP_NLA_DELIVERED": 16, "TCP_NLA_DELIVERED_CE": 17,
    "TCP_NLA_BYTES_SENT": 18, "TCP_NLA_BYTES_RETRANS": 19, "TCP_NLA_DSACK_DUPS": 20,
    "TCP_NLA_REORD_SEEN": 21, "TCP_NLA_SRTT": 22,
    # congestion-avoidance states (packetdrill's upper-case spellings)
    "TCP_CA_OPEN": 0, "TCP_CA_DISORDER": 1, "TCP_CA_CWR": 2, "TCP_CA_RECOVERY": 3, "TCP_CA_LOSS": 4,
    "TCP_INFINITE_SSTHRESH": 0x7FFFFFFF,
    # IP / IPv6 levels
    "IP_TOS": 1, "IP_TTL": 2, "IP_MTU_DISCOVER": 10, "IP_RECVERR": 11, "IP_MTU": 14, "IP_FREEBIND": 15,
    "IP_PMTUDISC_DONT": 0, "IP_PMTUDISC_WANT": 1, "IP_PMTUDISC_DO": 2, "IP_PMTUDISC_PROBE": 3,
    "IPV6_MTU_DISCOVER": 23, "IPV6_MTU": 24, "IPV6_RECVERR": 25, "IPV6_HOPLIMIT": 52, "IPV6_TCLASS": 67,
    # SOL_TCP options
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9, "TCP_WINDOW_CLAMP": 10,
    "TCP_INFO": 11, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13, "TCP_MD5SIG": 14,
    "TCP_COOKIE_TRANSACTIONS": 15, "TCP_THIN_LINEAR_TIMEOUTS": 16, "TCP_THIN_DUPACK": 17,
    "TCP_USER_TIMEOUT": 18, "TCP_REPAIR": 19, "TCP_FASTOPEN": 23, "TCP_TIMESTAMP": 24,
    "TCP_NOTSENT_LOWAT": 25, "TCP_CC_INFO": 26, "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28,
    "TCP_FASTOPEN_CONNECT": 30, "TCP_ULP": 31, "TCP_MD5SIG_EXT": 32, "TCP_FASTOPEN_KEY": 33,
    "TCP_FASTOPEN_NO_COOKIE": 34, "TCP_ZEROCOPY_RECEIVE": 35, "TCP_INQ": 36, "TCP_CM_INQ": 36,
    "TCP_TX_DELAY": 37,
    # send/recv flags
    "MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8, "MSG_PROXY": 0x10,
    "MSG_TRUNC": 0x20, "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100, "MSG_FIN": 0x200,
    "MSG_SYN": 0x400, "MSG_CONFIRM": 0x800, "MSG_RST": 0x1000, "MSG_ERRQUEUE": 0x2000,
    "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000, "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000,
    "MSG_CMSG_CLOEXEC": 0x40000000,
    # ioctls
    "SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411, "SIOCOUTQNSD": 0x894B,
    "FIONBIO": 0x5421,
    # poll / epoll
    "POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10, "POLLNVAL": 0x20,
    "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100, "POLLWRBAND": 0x200, "POLLMSG": 0x400,
    "POLLREMOVE": 0x1000, "POLLRDHUP": 0x2000,
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8, "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40, "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100, "EPOLLWRBAND": 0x200,
    "EPOLLMSG": 0x400, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28, "EPOLLWAKEUP": 1 << 29,
    "EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31,
    "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
    # splice
    "SPLICE_F_MOVE": 1, "SPLICE_F_NONBLOCK": 2, "SPLICE_F_MORE": 4, "SPLICE_F_GIFT": 8,
    # files
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_ACCMODE": 3, "O_CREAT": 0o100, "O_EXCL": 0o200,
    "O_NOCTTY": 0o400, "O_TRUNC": 0o1000, "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000,
    "F_DUPFD": 0, "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4, "F_GETLK": 5, "F_SETLK": 6,
    "F_SETLKW": 7, "F_SETOWN": 8, "F_GETOWN": 9, "F_SETSIG": 10, "F_GETSIG": 11, "F_GETLK64": 5,
    "F_SETLK64": 6, "F_SETLKW64": 7, "F_SETLEASE": 1024, "F_GETLEASE": 1025, "F_NOTIFY": 1026,
    "F_DUPFD_CLOEXEC": 1030, "FD_CLOEXEC": 1, "LOCK_SH": 1, "LOCK_EX": 2, "LOCK_NB": 4, "LOCK_UN": 8,
    "F_RDLCK": 0, "F_WRLCK": 1, "F_UNLCK": 2, "F_EXLCK": 4, "F_SHLCK": 8,
    "SEEK_SET": 0, "SEEK_CUR": 1, "SEEK_END": 2,
    # cross-platform (script.c)
    "AF_UNSPEC": 0, "AF_INET": 2, "AF_INET6": 10, "AF_PACKET": 17, "PF_INET": 2, "PF_INET6": 10,
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_NONBLOCK": 0o4000,
    "IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_IPV6": 41,
    "IPPROTO_ICMPV6": 58, "IPPROTO_RAW": 255,
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
    "NULL": 0,
}


def _from_python() -> dict[str, int]:
    """Upper-case integer constants of the standard modules: errno names and the odd option that the
    table above does not spell out still resolve."""
    table: dict[str, int] = {}
    for module in (errno_mod, socket, select, os, fcntl):
        for name in dir(module):
            if name.isupper() and not name.startswith("_"):
                value = getattr(module, name)
                if isinstance(value, int) and not isinstance(value, bool):
                    table.setdefault(name, int(value))
    return table


CONSTANTS: dict[str, int] = {**_from_python(), **_LINUX}


def lookup(name: str) -> int | None:
    """The value of symbol ``name``, or None when packetdrill would say "unknown symbol"."""
    return CONSTANTS.get(name)


# poll()'s revents names in bit order, for packetdrill's "Expected revents of POLLIN|POLLOUT" messages.
_POLL_FLAG_NAMES = ["POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDNORM", "POLLRDBAND",
                    "POLLWRNORM", "POLLWRBAND", "POLLMSG", "", "POLLREMOVE", "POLLRDHUP"]


def poll_flags_text(flags: int) -> str:
    """``POLLIN|POLLOUT`` as packetdrill's flags_to_string() writes it ("???" for an unnamed bit)."""
    names = []
    for bit in range(64):
        if flags & (1 << bit):
            name = _POLL_FLAG_NAMES[bit] if bit < len(_POLL_FLAG_NAMES) else ""
            names.append(name or "???")
    return "|".join(names)
