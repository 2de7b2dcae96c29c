"""The runner's pure parts and the system-call executor, without root (loopback in this namespace)."""

from __future__ import annotations

import socket
import struct

import pytest

from rawtcp.core.segment import Flags, Segment
from rawtcp.script import parse
from rawtcp.script.catalogue import LABS, find, labs_dir
from rawtcp.script.errors import ScriptError
from rawtcp.script.results import LadderEntry, flags_value
from rawtcp.script.runner import preflight
from rawtcp.script.syscalls import Addresses, CallScriptError, Executor, encode_expr, int_value
from rawtcp.script.tcpinfo import parse_tcp_info


def call(ex: Executor, line: str):
    ev = parse(f"0 {line}\n").events[0]
    return ex.call(ev.name, [encode_expr(a) for a in ev.args], encode_expr(ev.result), ev.errno)


@pytest.fixture
def ex():
    executor = Executor(Addresses("127.0.0.1", "127.0.0.1", bind_port=0, connect_port=0))
    yield executor
    executor.close_all()


def test_tcp_info_layout() -> None:
    buf = bytearray(232)
    buf[0] = 1  # tcpi_state
    buf[6] = 0x87  # snd_wscale 7 (low nibble), rcv_wscale 8
    struct.pack_into("=I", buf, 8 + 2 * 4, 1448)  # tcpi_snd_mss
    struct.pack_into("=I", buf, 8 + 19 * 4, 1460)  # tcpi_advmss
    struct.pack_into("=Q", buf, 104, 12345)  # tcpi_pacing_rate: first u64, 8-aligned
    info = parse_tcp_info(bytes(buf))
    assert info["tcpi_state"] == 1
    assert (info["tcpi_snd_wscale"], info["tcpi_rcv_wscale"]) == (7, 8)
    assert info["tcpi_snd_mss"] == 1448 and info["tcpi_advmss"] == 1460
    assert info["tcpi_pacing_rate"] == 12345
    assert "tcpi_total_rto_time" not in parse_tcp_info(bytes(buf[:104]))


def test_symbols_and_expressions() -> None:
    ev = parse("0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n").events[0]
    assert int_value(encode_expr(ev.args[2])) == socket.SOCK_NONBLOCK | 2
    assert int_value(encode_expr(parse("0 f(htons(8080)) = 0\n").events[0].args[0])) == 8080
    assert int_value({"word": "SIOCINQ"}) == 0x541B
    with pytest.raises(CallScriptError, match="unknown symbol 'NO_SUCH'"):
        int_value({"word": "NO_SUCH"})


def test_script_fds_map_to_live_sockets(ex: Executor) -> None:
    assert call(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3").error is None
    assert call(ex, "bind(3, ..., ...) = 0").error is None
    assert call(ex, "listen(3, 1) = 0").error is None
    port = ex.socks[3].getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)) as peer:
        out = call(ex, "accept(3, ..., ...) = 7")
        assert out.error is None and out.ret == 7 and ex.sut == 7
        peer.sendall(b"x" * 10)
        assert call(ex, "read(7, ..., 100) = 10").end >= out.start
        peer.shutdown(socket.SHUT_WR)
        assert call(ex, "read(7, ..., 1000) = 1000").error == "Expected result 1000 but got 0"
        assert call(ex, "ioctl(7, SIOCINQ, [5]) = 0").error == "Bad ioctl optval: expected: 5 actual: 0"
        assert call(ex, "getsockopt(7, SOL_SOCKET, SO_REUSEADDR, [1], [4]) = 0").error == \
            "Bad getsockopt optval: expected: 1 actual: 0"
        assert call(ex, "poll([{fd=7, events=POLLIN, revents=POLLIN}], 1, 0) = 1").error is None
        assert "tcpi_snd_mss" in ex.tcp_info()
        assert call(ex, "close(7) = 0").error is None


def test_errno_checks(ex: Executor) -> None:
    out = call(ex, "close(9) = -1 EBADF (Bad file descriptor)")
    assert out.error is None and out.err == 9
    out = call(ex, "close(9) = 0")
    assert out.error == "Expected result 0 but got -1 with errno 9 (Bad file descriptor)"
    call(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    out = call(ex, "shutdown(3, SHUT_WR) = -1 EPIPE (Broken pipe)")
    assert out.error == "Expected errno 32 (Broken pipe) but got 107 (Transport endpoint is not connected)"


def test_unsupported_call_is_a_script_error(ex: Executor) -> None:
    with pytest.raises(CallScriptError, match="'mmap' is not supported"):
        call(ex, "mmap(3, 4, 0, 10) = 10")


def test_preflight() -> None:
    with pytest.raises(ScriptError, match=r"x\.pkt:1: system call 'mmap' is not supported"):
        preflight(parse("0 mmap(3, 4, 0, 10) = 10\n", "x.pkt"))
    for mode in ("ipv4", "ipv4-mapped-ipv6", "ipv6"):
        preflight(parse(f"--ip_version={mode}\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n", "x.pkt"))
    with pytest.raises(ScriptError, match="ipv5"):
        preflight(parse("--ip_version=ipv5\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n", "x.pkt"))
    with pytest.raises(ScriptError, match="first event should be at time 0"):
        preflight(parse("1 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n", "x.pkt"))


def test_flags_and_ladder_text() -> None:
    assert flags_value("S.") == Flags.SYN | Flags.ACK and flags_value("-") == 0
    seg = Segment(8080, 40000, 123456, 1, Flags.SYN | Flags.ACK, 65535, (("MSS", 1460),))
    text = LadderEntry(0.1, ">", seg, 0, 1, kstate="SYN-RECEIVED").text()
    assert text.startswith(" 0.100000 > S.    0:0(0) ack 1 win 65535 <mss 1460>")
    assert text.endswith("kernel: SYN-RECEIVED")


def test_catalogue_is_complete_and_teaches() -> None:
    assert [lab.number for lab in LABS] == list(range(1, 15))
    for lab in LABS:
        text = lab.path.read_text()
        assert text.startswith(("//", "#")), lab.file
        assert find(lab.name) is lab and find(str(lab.number)) is lab
        if lab.path.suffix == ".pkt":
            preflight(parse(text, str(lab.path)))
    assert labs_dir().name == "labs"
    with pytest.raises(ScriptError, match="no such lab"):
        find("nope")
