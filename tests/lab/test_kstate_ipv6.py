"""The kernel's state reports for IPv6 sockets (tracepoint lines, sock_diag messages, ss lines), no root."""

from __future__ import annotations

import socket
import struct

from rawtcp.lab.kstate import DiagTracker, _parse_diag_msg, parse_ss_line, parse_trace_line, port_filter

# `sock:inet_sock_set_state` in its default print format for an AF_INET6 socket (%pI6c addresses).
V6_LINE = (
    "          <idle>-0       [001] ..s2.  5947.321708: inet_sock_set_state: family=AF_INET6 "
    "protocol=IPPROTO_TCP sport=8080 dport=54894 saddr=127.0.0.6 daddr=127.0.0.6 "
    "saddrv6=2001:db8::2 daddrv6=2001:db8::1 oldstate=TCP_CLOSE_WAIT newstate=TCP_LAST_ACK"
)
# The same change with the "fields" option: the 16-byte arrays cannot be printed there.
V6_FIELDS_LINE = (
    "         python3-26105   [001] .....  5947.311146: inet_sock_set_state: skaddr=0xffff888133e8d7c0 "
    "(-131386473654336) oldstate=0x8 (8) newstate=0x9 (9) sport=0x1f90 (8080) dport=0xd66e (54894) "
    "family=0xa (10) protocol=0x6 (6) saddr=0x600007f (100663423) daddr=0x600007f (100663423) "
    "saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>"
)


def test_default_format_ipv6_line():
    e = parse_trace_line(V6_LINE)
    assert e is not None
    assert (e.time, e.saddr, e.sport, e.daddr, e.dport) == (5947.321708, "2001:db8::2", 8080, "2001:db8::1", 54894)
    assert (e.old, e.new) == ("CLOSE-WAIT", "LAST-ACK")


def test_ipv6_addresses_are_spelled_canonically():
    e = parse_trace_line(V6_LINE.replace("saddrv6=2001:db8::2", "saddrv6=2001:0db8:0:0:0:0:0:2"))
    assert e is not None and e.saddr == "2001:db8::2"


def test_fields_format_ipv6_and_mapped_lines_are_left_out():
    assert parse_trace_line(V6_FIELDS_LINE) is None  # no addresses to match a connection with
    mapped = V6_LINE.replace("saddrv6=2001:db8::2", "saddrv6=::ffff:198.18.0.2")
    assert parse_trace_line(mapped) is None  # an AF_INET6 socket talking IPv4


def test_port_filter_per_family():
    assert port_filter([8080], socket.AF_INET6) == (
        "family == 10 && protocol == 6 && (sport == 8080 || dport == 8080)")
    assert port_filter([], socket.AF_INET6) == "family == 10 && protocol == 6"
    assert port_filter([8080]).startswith("family == 2 ")


def test_ss_ipv6_lines():
    assert parse_ss_line("ESTAB 0 0 [2001:db8::2]:8080 [2001:db8::1]:40000") == (
        "ESTABLISHED", ("2001:db8::2", 8080), ("2001:db8::1", 40000))
    assert parse_ss_line("LISTEN 0 128 [2001:db8::2]:8080 [::]:*") == ("LISTEN", ("2001:db8::2", 8080), ("::", 0))


def _diag_msg(family: int, state: int, src: str, sport: int, dst: str, dport: int) -> bytes:
    # struct inet_diag_msg: family, state, timer, retrans; inet_diag_sockid (ports big-endian, 16-byte
    # addresses, interface, cookie); then expires, rqueue, wqueue, uid, inode.
    def addr(ip: str) -> bytes:
        packed = socket.inet_pton(family, ip)
        return packed + bytes(16 - len(packed))

    sockid = struct.pack("!HH", sport, dport) + addr(src) + addr(dst) + struct.pack("=IQ", 0, 42)
    return struct.pack("=BBBB", family, state, 0, 0) + sockid + struct.pack("=IIIII", 0, 0, 0, 0, 0)


def test_sock_diag_ipv6_message():
    sock = _parse_diag_msg(_diag_msg(socket.AF_INET6, 8, "2001:db8::2", 8080, "2001:db8::1", 40000), 0)
    assert sock is not None
    assert (sock.state, sock.local, sock.remote, sock.cookie) == (
        "CLOSE-WAIT", ("2001:db8::2", 8080), ("2001:db8::1", 40000), 42)
    v4 = _parse_diag_msg(_diag_msg(socket.AF_INET, 1, "198.18.0.2", 8080, "198.18.0.1", 40000), 0)
    assert v4 is not None and v4.local == ("198.18.0.2", 8080) and v4.state == "ESTABLISHED"
    mapped = _diag_msg(socket.AF_INET6, 1, "::ffff:198.18.0.2", 8080, "::ffff:198.18.0.1", 1)
    assert _parse_diag_msg(mapped, 0) is None


def test_diag_tracker_follows_an_ipv6_socket():
    sock = _parse_diag_msg(_diag_msg(socket.AF_INET6, 1, "2001:db8::2", 8080, "2001:db8::1", 40000), 0)
    assert sock is not None
    tracker = DiagTracker({8080})
    (opened,) = tracker.update([sock], 1.0)
    assert (opened.saddr, opened.daddr, opened.old, opened.new) == ("2001:db8::2", "2001:db8::1", "CLOSED",
                                                                   "ESTABLISHED")
    (gone,) = tracker.update([], 2.0)
    assert (gone.old, gone.new) == ("ESTABLISHED", "CLOSED")
