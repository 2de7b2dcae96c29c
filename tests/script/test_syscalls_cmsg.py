"""Control messages: built from scripts, received over loopback and compared as packetdrill does."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from test_syscalls_support import call, connected_pair, loopback, ok

from rawtcp.script import parse
from rawtcp.script.cmsg import Cmsg, TimeBase, compare, parse_control
from rawtcp.script.syscalls import CallScriptError, Executor, encode_expr

ZEROCOPY_DONE = """recvmsg(4, {{msg_name(...)=...,
                  msg_iov(1)=[{{...,0}}],
                  msg_flags=MSG_ERRQUEUE,
                  msg_control=[
                        {{cmsg_level={level},
                         cmsg_type={type},
                         cmsg_data={{ee_errno=0,
                                    ee_origin=SO_EE_ORIGIN_ZEROCOPY,
                                    ee_type=0,
                                    ee_code=SO_EE_CODE_ZEROCOPY_COPIED,
                                    ee_info={first},
                                    ee_data={last}}}}}
                   ]}}, MSG_ERRQUEUE) = 0"""


@pytest.fixture
def ex() -> Iterator[Executor]:
    executor = loopback()
    yield executor
    executor.close_all()


def _zerocopy_server(ex: Executor) -> socket.socket:
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    ok(ex, "setsockopt(3, SOL_SOCKET, SO_ZEROCOPY, [1], 4) = 0")
    return connected_pair_existing(ex)


def connected_pair_existing(ex: Executor) -> socket.socket:
    ok(ex, "bind(3, ..., ...) = 0")
    ok(ex, "listen(3, 1) = 0")
    peer = socket.create_connection(ex.socks[3].getsockname()[:2])
    ok(ex, "accept(3, ..., ...) = 4")
    return peer


def _settle(peer: socket.socket, count: int) -> None:
    got = 0
    deadline = time.monotonic() + 2
    while got < count and time.monotonic() < deadline:
        got += len(peer.recv(65536))
    time.sleep(0.02)  # the ACK reaches the sender; its completion is queued


def test_zerocopy_completion_is_compared_field_by_field(ex: Executor) -> None:
    with _zerocopy_server(ex) as peer:
        ok(ex, "send(4, ..., 4000, MSG_ZEROCOPY) = 4000")
        _settle(peer, 4000)
        ok(ex, ZEROCOPY_DONE.format(level="SOL_IP", type="IP_RECVERR", first=0, last=0))
        ok(ex, "send(4, ..., 4000, MSG_ZEROCOPY) = 4000")
        _settle(peer, 4000)
        out = call(ex, ZEROCOPY_DONE.format(level="SOL_IP", type="IP_RECVERR", first=0, last=0))
        assert out.error == "Bad info in extended err 0: expected=0 actual=1"
        # the queue is empty now: recvmsg(MSG_ERRQUEUE) fails with EAGAIN
        ok(ex, "recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{...,0}], msg_flags=0}, MSG_ERRQUEUE) = "
               "-1 EAGAIN (Resource temporarily unavailable)")


def test_zerocopy_in_mapped_mode_uses_ipv6_recverr() -> None:
    ex = loopback("ipv4-mapped-ipv6")
    try:
        with _zerocopy_server(ex) as peer:
            assert ex.socks[4].family == socket.AF_INET6
            ok(ex, "send(4, ..., 1000, MSG_ZEROCOPY) = 1000")
            _settle(peer, 1000)
            out = call(ex, ZEROCOPY_DONE.format(level="SOL_IP", type="IP_RECVERR", first=0, last=0))
            # room for an IPv4 sockaddr only: the kernel's IPv6 one does not fit (as under packetdrill)
            assert out.error == "Expected msg_flags 0x00002000 but got 0x00002008"
            ok(ex, "send(4, ..., 1000, MSG_ZEROCOPY) = 1000")
            _settle(peer, 1000)
            ok(ex, ZEROCOPY_DONE.format(level="SOL_IPV6", type="IPV6_RECVERR", first=1, last=1))
    finally:
        ex.close_all()


def test_tcp_cm_inq_and_an_unexpected_cmsg(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "setsockopt(4, SOL_TCP, TCP_INQ, [1], 4) = 0")
        peer.sendall(b"i" * 3000)
        time.sleep(0.05)
        inq = "msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=%d}]"
        ok(ex, "recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0, " + inq % 2000 + "}, 0) = 1000")
        out = call(ex, "recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0, " + inq % 9 + "}, 0)"
                       " = 1000")
        assert out.error == "Bad data in cmsg 0: expected=9 actual=1000"
        # no msg_control in the script: no room for the kernel's TCP_CM_INQ, so MSG_CTRUNC
        out = call(ex, "recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0}, 0) = 1000")
        assert out.error == "Expected msg_flags 0x00000000 but got 0x00000008"


def test_tx_timestamps_are_checked_against_script_time(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ex.live_start = time.monotonic() - 1.0  # script time 1.0 s is "now"
        ex.tolerance_usecs = 200_000
        ok(ex, "setsockopt(4, SOL_SOCKET, SO_TIMESTAMPING, [SOF_TIMESTAMPING_TX_SOFTWARE | "
               "SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID], 4) = 0")
        ok(ex, "write(4, ..., 1000) = 1000")
        _settle(peer, 1000)
        stamp = """recvmsg(4, {{msg_name(...)=..., msg_iov(1)=[{{...,0}}], msg_flags=MSG_ERRQUEUE|MSG_TRUNC,
            msg_control=[{{cmsg_level=SOL_SOCKET, cmsg_type=SCM_TIMESTAMPING,
                           cmsg_data={{scm_sec={sec},scm_nsec={nsec}}}}},
                         {{cmsg_level=SOL_IP, cmsg_type=IP_RECVERR,
                           cmsg_data={{ee_errno=ENOMSG, ee_origin=SO_EE_ORIGIN_TIMESTAMPING, ee_type=0,
                                       ee_code=0, ee_info=SCM_TSTAMP_SND, ee_data=999}}}}]}}, MSG_ERRQUEUE) = 0"""
        ok(ex, stamp.format(sec=1, nsec=0))
        ok(ex, "write(4, ..., 10) = 10")
        _settle(peer, 10)
        out = call(ex, stamp.format(sec=5, nsec=0))
        assert out.error is not None and out.error.startswith("Bad timestamp 0 in scm_timestamping 0: expected=")


def test_compare_wording() -> None:
    inq = Cmsg(6, 36, struct.pack("=i", 5))
    assert compare([inq], [(6, 36, struct.pack("=i", 5))], None) is None
    assert compare([inq], [(6, 37, struct.pack("=i", 5))], None) == "Bad type in cmsg 0: expected=36 actual=37"
    assert compare([inq], [(6, 36, b"\0" * 8)], None) == "Bad len in cmsg 0: expected=20 actual=24"
    assert compare([inq], [], None) == "received only 0 cmsgs"
    assert compare([], [(6, 36, b"\0" * 4)], None) == "received more than 0 cmsgs"
    ts = parse_control({"list": [_expr("{cmsg_level=SOL_SOCKET, cmsg_type=SCM_TIMESTAMPING, "
                                       "cmsg_data={scm_sec=0, scm_nsec=20000000}}")]})
    base = TimeBase(start_usecs=1_000_000_000, tolerance_usecs=4000)
    live = struct.pack("=6q", 1000, 21_000_000, 0, 0, 0, 0)  # 1000.021 s: script time 0.021
    assert compare(ts, [(1, 37, live)], base) is None
    late = struct.pack("=6q", 1000, 30_000_000, 0, 0, 0, 0)
    assert compare(ts, [(1, 37, late)], base) == ("Bad timestamp 0 in scm_timestamping 0: expected=1000020000 "
                                                  "(20000) actual=1000030000 (30000) start=1000000000")


def test_opt_stats_attributes() -> None:
    [stats] = parse_control({"list": [_expr("{cmsg_level=SOL_SOCKET, cmsg_type=SCM_TIMESTAMPING_OPT_STATS, "
                                            "cmsg_data={TCP_NLA_BUSY=1000, TCP_NLA_SND_CWND=10, "
                                            "TCP_NLA_CA_STATE=...}}")]})
    live = (struct.pack("=HHQ", 12, 1, 1500) + struct.pack("=HHI", 8, 8, 10) + struct.pack("=HHB3x", 5, 14, 3))
    base = TimeBase(0, 4000)
    assert compare([stats], [(1, 54, live)], base) is None
    wrong = live[:12] + struct.pack("=HHI", 8, 8, 11) + live[20:]
    assert compare([stats], [(1, 54, wrong)], base) == "Bad TCP_NLA_SND_CWND: expected=10 actual=11"


def test_bad_cmsg_shapes() -> None:
    with pytest.raises(CallScriptError, match="a control message must be"):
        parse_control({"list": [_expr("{cmsg_level=SOL_TCP}")]})
    with pytest.raises(CallScriptError, match="Value out of range for 8-bit integer: 300"):
        parse_control({"list": [_expr("{cmsg_level=SOL_IP, cmsg_type=IP_RECVERR, cmsg_data={ee_errno=0, "
                                      "ee_origin=300, ee_type=0, ee_code=0, ee_info=0, ee_data=0}}")]})


def _expr(text: str) -> object:
    return encode_expr(parse(f"0 f({text}) = 0\n").events[0].args[0])
