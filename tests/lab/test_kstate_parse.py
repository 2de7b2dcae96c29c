"""Parsing the kernel's state reports (tracepoint lines, ss lines, sock_diag snapshots), no root needed."""

from __future__ import annotations

import pytest

from rawtcp.lab.kstate import DiagSocket, DiagTracker, parse_ss_line, parse_trace_line, port_filter

DEFAULT_LINE = (
    "          <idle>-0       [001] ..s2.   321.965083: inet_sock_set_state: family=AF_INET "
    "protocol=IPPROTO_TCP sport=8080 dport=34758 saddr=198.18.0.2 daddr=198.18.0.1 "
    "saddrv6=::ffff:198.18.0.2 daddrv6=::ffff:198.18.0.1 oldstate=TCP_SYN_RECV newstate=TCP_ESTABLISHED"
)
# The same change printed with the "fields" trace option (addresses as little-endian integers).
FIELDS_LINE = (
    "         python3-20389   [000]    471.829519: inet_sock_set_state: skaddr=0xffff888102a6d340 "
    "(-131387300064448) oldstate=0x8 (8) newstate=0x9 (9) sport=0x1f90 (8080) dport=0xc1d0 (49616) "
    "family=0x2 (2) protocol=0x6 (6) saddr=0x20012c6 (33559238) daddr=0x10012c6 (16847558) "
    "saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>"
)


def test_default_format_line():
    e = parse_trace_line(DEFAULT_LINE)
    assert e is not None
    assert (e.time, e.saddr, e.sport, e.daddr, e.dport) == (321.965083, "198.18.0.2", 8080, "198.18.0.1", 34758)
    assert (e.old, e.new) == ("SYN-RECEIVED", "ESTABLISHED")


def test_fields_format_line_carries_the_socket():
    e = parse_trace_line(FIELDS_LINE)
    assert e is not None
    assert (e.saddr, e.sport, e.daddr, e.dport) == ("198.18.0.2", 8080, "198.18.0.1", 49616)
    assert (e.old, e.new) == ("CLOSE-WAIT", "LAST-ACK")
    assert e.sock == "0xffff888102a6d340"


@pytest.mark.parametrize(
    ("kernel", "rfc"),
    [("TCP_NEW_SYN_RECV", "SYN-RECEIVED"), ("TCP_FIN_WAIT1", "FIN-WAIT-1"), ("TCP_FIN_WAIT2", "FIN-WAIT-2"),
     ("TCP_TIME_WAIT", "TIME-WAIT"), ("TCP_CLOSE", "CLOSED"), ("TCP_CLOSING", "CLOSING"),
     ("TCP_LAST_ACK", "LAST-ACK"), ("TCP_LISTEN", "LISTEN"), ("TCP_SYN_SENT", "SYN-SENT")],
)
def test_state_names_use_rfc_spelling(kernel, rfc):
    e = parse_trace_line(DEFAULT_LINE.replace("newstate=TCP_ESTABLISHED", f"newstate={kernel}"))
    assert e is not None and e.new == rfc


def test_ipv6_markers_and_junk_are_ignored():
    assert parse_trace_line(DEFAULT_LINE.replace("family=AF_INET ", "family=AF_INET6 ")) is None
    assert parse_trace_line(DEFAULT_LINE.replace("IPPROTO_TCP", "IPPROTO_SCTP")) is None
    assert parse_trace_line("  <...>-1 [001] ...1.  544.660344: tracing_mark_write: rawtcp-sync") is None
    assert parse_trace_line("# tracer: nop") is None
    assert parse_trace_line("") is None


def test_ss_lines():
    assert parse_ss_line("ESTAB 0 0 198.18.0.2:8080 198.18.0.1:40000") == (
        "ESTABLISHED", ("198.18.0.2", 8080), ("198.18.0.1", 40000))
    assert parse_ss_line("LISTEN 0 128 198.18.0.2:8080 0.0.0.0:*") == (
        "LISTEN", ("198.18.0.2", 8080), ("0.0.0.0", 0))
    assert parse_ss_line("CLOSE-WAIT 1 0 [::ffff:198.18.0.2]:8080 [::ffff:198.18.0.1]:1") == (
        "CLOSE-WAIT", ("198.18.0.2", 8080), ("198.18.0.1", 1))
    assert parse_ss_line("SYN-RECV 0 0 198.18.0.2:8080 198.18.0.1:5")[0] == "SYN-RECEIVED"
    assert parse_ss_line("garbage") is None


def test_port_filter_is_tcp_ipv4_and_either_port():
    assert port_filter([]) == "family == 2 && protocol == 6"
    assert port_filter({9000, 8080}) == (
        "family == 2 && protocol == 6 && (sport == 8080 || dport == 8080 || sport == 9000 || dport == 9000)")


def _sock(state, lport, rport):
    return DiagSocket(state, ("198.18.0.2", lport), ("198.18.0.1", rport), cookie=1)


def test_diag_tracker_turns_snapshots_into_changes():
    tracker = DiagTracker({8080})
    first = tracker.update([_sock("LISTEN", 8080, 0), _sock("ESTABLISHED", 22, 5)], 1.0)
    assert [(e.sport, e.dport, e.old, e.new) for e in first] == [(8080, 0, "CLOSED", "LISTEN")]
    assert tracker.update([_sock("LISTEN", 8080, 0)], 2.0) == []
    second = tracker.update([_sock("LISTEN", 8080, 0), _sock("CLOSE-WAIT", 8080, 4000)], 3.0)
    assert [(e.dport, e.old, e.new, e.time) for e in second] == [(4000, "CLOSED", "CLOSE-WAIT", 3.0)]
    gone = tracker.update([_sock("LISTEN", 8080, 0)], 4.0)
    assert [(e.dport, e.old, e.new) for e in gone] == [(4000, "CLOSE-WAIT", "CLOSED")]
