"""The packetdrill-dialect parser: every construct the target families use, and located errors.

The scripts here are written for these tests, in the spirit of packetdrill's tcp/close, tcp/shutdown,
tcp/blocking, tcp/mss and tcp/validate families (not copies of them).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rawtcp.script import ScriptError, parse, parse_file
from rawtcp.script.ast import (
    Assign,
    Binary,
    Call,
    CodeEvent,
    CommandEvent,
    EllipsisExpr,
    Int,
    ListExpr,
    PacketEvent,
    Str,
    Struct,
    SyscallEvent,
    Time,
    Word,
)


def script(text: str, path: str = "t.pkt"):
    return parse(textwrap.dedent(text), path)


def only_event(text: str):
    events = script(text).events
    assert len(events) == 1
    return events[0]


def packet(line: str) -> PacketEvent:
    event = only_event(line)
    assert isinstance(event, PacketEvent)
    return event


def syscall(line: str) -> SyscallEvent:
    event = only_event(line)
    assert isinstance(event, SyscallEvent)
    return event


def error_of(text: str, path: str = "bad.pkt") -> ScriptError:
    with pytest.raises(ScriptError) as info:
        parse(textwrap.dedent(text), path)
    return info.value


# --------------------------------------------------------------------------------------------------
# Whole scripts in the style of the target families.

PASSIVE_CLOSE = """\
// The peer closes first; we then close and the kernel walks LAST-ACK.
--tolerance_usecs=25000

`../common/defaults.sh`

/* A listener on the default port,
   with address reuse. */
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0

   +0 < S 0:0(0) win 29200 <mss 1200,sackOK,nop,nop,nop,wscale 6>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
 +.02 < . 1:1(0) ack 1 win 300
   +0 accept(3, ..., ...) = 4

 +.02 < F. 1:1(0) ack 1 win 300
   +0 > . 1:1(0) ack 2
   +0 read(4, ..., 500) = 0
 +.02 close(4) = 0
   +0 > F. 1:1(0) ack 2
 +.02 < . 2:2(0) ack 2 win 300
 +.02 < . 2:2(0) ack 2 win 300
   +0 > R 2:2(0)
"""


def test_passive_close_script() -> None:
    parsed = parse(PASSIVE_CLOSE, "close.pkt")
    assert parsed.path == "close.pkt"
    assert parsed.options == {"tolerance_usecs": "25000"}
    assert [(c.line, c.command) for c in parsed.init_commands] == [(4, "../common/defaults.sh")]
    assert parsed.cleanup_commands == []
    assert len(parsed.events) == 16
    first = parsed.events[0]
    assert isinstance(first, SyscallEvent)
    assert (first.line, first.time, first.name) == (8, Time("absolute", 0.0), "socket")
    assert first.args == [EllipsisExpr(), Word("SOCK_STREAM"), Word("IPPROTO_TCP")]
    assert first.result == Int(3)
    syn = parsed.events[4]
    assert isinstance(syn, PacketEvent)
    assert syn.line == 13
    assert (syn.direction, syn.flags, syn.seq_start, syn.seq_end, syn.seq_len) == ("<", "S", 0, 0, 0)
    assert (syn.ack, syn.window) == (None, 29200)
    assert syn.options == [("MSS", 1200), ("SAckOK", b""), ("NOP", None), ("NOP", None), ("NOP", None),
                           ("WScale", 6)]
    assert syn.inbound
    synack = parsed.events[5]
    assert isinstance(synack, PacketEvent)
    assert (synack.direction, synack.flags, synack.ack, synack.window) == (">", "S.", 1, None)
    assert not synack.inbound
    rst = parsed.events[-1]
    assert isinstance(rst, PacketEvent)
    assert (rst.line, rst.flags, rst.seq_start, rst.ack, rst.options) == (25, "R", 2, None, [])
    fin = parsed.events[8]
    assert isinstance(fin, PacketEvent)
    assert fin.time == Time("relative", 0.02)


ACTIVE_CLOSE_NONBLOCKING = """\
`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <...>
   +0 close(3) = 0
  +.2 < S. 0:0(0) ack 1 win 16000 <mss 1400,nop,wscale 5>
   +0 > R 1:1(0)
"""


def test_close_on_syn_sent_style() -> None:
    parsed = parse(ACTIVE_CLOSE_NONBLOCKING)
    fcntl, connect, syn = parsed.events[1], parsed.events[2], parsed.events[3]
    assert isinstance(fcntl, SyscallEvent)
    assert fcntl.args == [Int(3), Word("F_SETFL"), Binary("|", Word("O_RDWR"), Word("O_NONBLOCK"))]
    assert isinstance(connect, SyscallEvent)
    assert connect.result == Int(-1)
    assert (connect.errno, connect.errno_text) == ("EINPROGRESS", "Operation now in progress")
    assert isinstance(syn, PacketEvent)
    assert syn.options is None  # <...>: don't check


SHUTDOWN_STYLE = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 20000 <mss 1000,sackOK,nop,nop,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
   +0 < . 1:1(0) ack 1 win 300
   +0 accept(3, ..., ...) = 4
 +.01 shutdown(4, SHUT_WR) = 0
   +0 > F. 1:1(0) ack 1
   +0 < .  1:1(0) ack 2 win 300
   +0 write(4, ..., 10) = -1 EPIPE (Broken pipe)
 +.01 < . 1:501(500) ack 2 win 300
   +0 > . 2:2(0) ack 501
   +0 read(4, ..., 500) = 500
 +.01 shutdown(4, SHUT_RDWR) = 0
 +.01 close(4) = 0
"""


def test_shutdown_style() -> None:
    events = parse(SHUTDOWN_STYLE).events
    shut = events[7]
    assert isinstance(shut, SyscallEvent)
    assert shut.args == [Int(4), Word("SHUT_WR")]
    epipe = events[10]
    assert isinstance(epipe, SyscallEvent)
    assert (epipe.errno, epipe.errno_text) == ("EPIPE", "Broken pipe")
    data = events[11]
    assert isinstance(data, PacketEvent)
    assert (data.seq_start, data.seq_end, data.seq_len, data.ack) == (1, 501, 500, 2)


BLOCKING_STYLE = """\
--tolerance_usecs=10000
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
  +.1...0.250 connect(3, ..., ...) = 0
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
 +.15 < S. 0:0(0) ack 1 win 5000 <mss 1460,nop,wscale 2,nop,nop,sackOK>
   +0 > . 1:1(0) ack 1
   +0...0.100 read(3, ..., 300) = 300
  +.1 < P. 1:301(300) ack 1 win 5000
   +0 > . 1:1(0) ack 301
 +.002 ... 0.004 read(3, ..., 1) = -1 EAGAIN (Resource temporarily unavailable)
   0.900...1.000 accept(3, ..., ...) = 4
"""


def test_blocking_style() -> None:
    events = parse(BLOCKING_STYLE).events
    assert events[1].time == Time("relative", 0.1, 0.25, blocking=True)
    assert events[1].time.start_usecs == 100_000
    assert events[1].time.end_usecs == 250_000
    assert events[2].options == [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("NOP", None),
                                 ("WScale", 8)]
    assert events[5].time == Time("relative", 0.0, 0.1, blocking=True)
    assert events[8].time == Time("relative", 0.002, 0.004, blocking=True)
    assert events[9].time == Time("absolute", 0.9, 1.0, blocking=True)
    assert not events[9].time.is_range


MSS_STYLE = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
 +.01 setsockopt(3, SOL_TCP, TCP_MAXSEG, [1200], 4) = 0
 +.01 getsockopt(3, SOL_TCP, TCP_MAXSEG, [536], [4]) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
 +.08 < S 0:0(0) win 32792 <mss 1300,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1200,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257
  +.1 accept(3, ..., ...) = 4
  +.1 %{ assert tcpi_advmss == 1200, tcpi_advmss; assert tcpi_snd_mss == 1200, tcpi_snd_mss }%
  +.1 %{
assert tcpi_state == TCP_ESTABLISHED, tcpi_state
assert tcpi_snd_mss == 1200
}%
  +.1 write(4, ..., 13000) = 13000
   +0 > . 1:12001(12000) ack 1
"""


def test_mss_style_with_code_blocks() -> None:
    events = parse(MSS_STYLE).events
    getsockopt = events[2]
    assert isinstance(getsockopt, SyscallEvent)
    assert getsockopt.args == [Int(3), Word("SOL_TCP"), Word("TCP_MAXSEG"), ListExpr((Int(536),)),
                               ListExpr((Int(4),))]
    one_line = events[9]
    assert isinstance(one_line, CodeEvent)
    assert one_line.code == "assert tcpi_advmss == 1200, tcpi_advmss; assert tcpi_snd_mss == 1200, tcpi_snd_mss"
    multi = events[10]
    assert isinstance(multi, CodeEvent)
    assert multi.line == 11
    assert multi.code == "\nassert tcpi_state == TCP_ESTABLISHED, tcpi_state\nassert tcpi_snd_mss == 1200\n"
    tso = events[12]
    assert isinstance(tso, PacketEvent)
    assert tso.line == 16  # line numbers keep counting through the multi-line block
    assert (tso.seq_end, tso.seq_len) == (12001, 12000)


VALIDATE_STYLE = """\
   +0 < - 1:1001(1000) win 20000
   +0 ioctl(4, SIOCINQ, [0]) = 0
 +.01 < . 1:1001(1000) ack 1 win 20000
   +0 ioctl(4, SIOCOUTQ, [1000]) = 0
"""


def test_validate_style_no_flags() -> None:
    events = parse(VALIDATE_STYLE).events
    no_flags = events[0]
    assert isinstance(no_flags, PacketEvent)
    assert (no_flags.flags, no_flags.ack, no_flags.window) == ("-", None, 20000)
    assert events[3].args == [Int(4), Word("SIOCOUTQ"), ListExpr((Int(1000),))]


# --------------------------------------------------------------------------------------------------
# Options, comments, commands.


def test_option_lines() -> None:
    parsed = script("""\
        --tolerance_usecs=10000
        --mss=1000
        --ip_version=ipv4
        --local_ip=192.168.0.1
        --tolerance_percent=0.5
        --strict_segments
        --define=PROTO=IPPROTO_TCP
        --name="quoted value"
        0 close(3) = 0
    """)
    assert parsed.options == {
        "tolerance_usecs": "10000", "mss": "1000", "ip_version": "ipv4", "local_ip": "192.168.0.1",
        "tolerance_percent": "0.5", "strict_segments": "", "define": "PROTO=IPPROTO_TCP",
        "name": "quoted value",
    }


def test_comments_everywhere() -> None:
    parsed = script("""\
        // a line comment with `backticks` and <packets>
        /* a block comment
           0 close(3) = 0   <- not an event
        */
        0 close(3) = 0 // trailing comment
        +0 /* inline */ close(4) = 0
        //`../common/defaults.sh`
    """)
    assert [(e.line, e.args) for e in parsed.events] == [(5, [Int(3)]), (6, [Int(4)])]
    assert parsed.init_commands == [] and parsed.cleanup_commands == []


def test_multiline_init_timed_and_cleanup_commands() -> None:
    parsed = script("""\
        `./defaults.sh
        sysctl -q net.ipv4.tcp_ecn=1  # fully enabled
        `
        0 `ip link show lo`
        +0 close(3) = 0
        `echo cleanup`
    """)
    assert parsed.init_commands[0].command == "./defaults.sh\nsysctl -q net.ipv4.tcp_ecn=1  # fully enabled\n"
    assert parsed.init_commands[0].line == 1
    command = parsed.events[0]
    assert isinstance(command, CommandEvent)
    assert (command.line, command.command) == (4, "ip link show lo")
    assert parsed.events[1].line == 5
    assert [(c.line, c.command) for c in parsed.cleanup_commands] == [(6, "echo cleanup")]


def test_crlf_line_ends() -> None:
    parsed = parse("0 close(3) = 0\r\n+0 close(4) = 0\r\n")
    assert [e.line for e in parsed.events] == [1, 2]


def test_empty_script() -> None:
    parsed = parse("// nothing\n")
    assert parsed.events == [] and parsed.options == {}


# --------------------------------------------------------------------------------------------------
# Times.


@pytest.mark.parametrize(("text", "time"), [
    ("0", Time("absolute", 0.0)),
    ("1.5", Time("absolute", 1.5)),
    ("+0", Time("relative", 0.0)),
    ("+0.1", Time("relative", 0.1)),
    ("+.01", Time("relative", 0.01)),
    ("*", Time("any")),
    ("+0~+0.2", Time("relative", 0.0, 0.2)),
    ("+0 ~ +0.2", Time("relative", 0.0, 0.2)),
    ("0.1~0.3", Time("absolute", 0.1, 0.3)),
])
def test_packet_times(text: str, time: Time) -> None:
    assert packet(f"{text} > . 1:1(0) ack 1").time == time


def test_time_ranges_are_ranges() -> None:
    assert Time("relative", 0.0, 0.2).is_range
    assert not Time("relative", 0.0, 0.2, blocking=True).is_range
    assert Time("absolute", 0.57).start_usecs == 570_000  # rounds, never 569999


# --------------------------------------------------------------------------------------------------
# Packets.


@pytest.mark.parametrize("flags", ["S", "S.", ".", "-", "F.", "P.", "R", "R.", "SEW", "SE.", "FP.", "U.",
                                   "EA.", "W."])
def test_flags_as_written(flags: str) -> None:
    assert packet(f"+0 < {flags} 0:0(0) win 100").flags == flags


def test_all_tcp_options() -> None:
    event = packet("+0 > . 1:1(0) ack 1 <nop,nop,TS val 4294967295 ecr 7,sack 1001:2001 3001:4001,eol>")
    assert event.options == [("NOP", None), ("NOP", None), ("Timestamp", (4294967295, 7)),
                             ("SAck", (1001, 2001, 3001, 4001)), ("EOL", None)]


def test_fast_open_option() -> None:
    assert packet("+0 < S 0:0(0) win 1000 <mss 1460,FO 0102030405060708>").options == [
        ("MSS", 1460), (34, bytes(range(1, 9)))]
    assert packet("+0 < S 0:0(0) win 1000 <FO>").options == [(34, b"")]


def test_ip_level_bits() -> None:
    assert packet("+0 > [ect0] P. 1:1001(1000) ack 1").ecn == "ect0"
    assert packet("+0 < (ce) . 1:1(0) ack 1 win 10").ecn == "ce"
    assert packet("+0 > [ect01] . 1:1(0) ack 1").ecn == "ect01"
    event = packet("+0 < [tos 0x10, flowlabel 0x1234] . 1:1(0) ack 1 win 10")
    assert (event.tos, event.flowlabel, event.ecn) == (0x10, 0x1234, None)
    assert packet("+0 < [ttl 64] . 1:1(0) ack 1 win 10").ttl == 64


def test_urgent_pointer() -> None:
    event = packet("+0 < U. 1:11(10) ack 1 win 100 urg 5")
    assert (event.flags, event.urg) == ("U.", 5)


def test_star_and_range_on_outbound_packets() -> None:
    assert packet("* > . 1:1(0) ack 1").time.kind == "any"
    assert packet("+0~+0.2 > . 1:1(0) ack 1").time.end == 0.2


# --------------------------------------------------------------------------------------------------
# System calls and expressions.


def test_integer_forms() -> None:
    event = syscall("0 setsockopt(3, 0x6, -7, 0xFFff) = -1 ENOPROTOOPT (Protocol not available)")
    assert event.args == [Int(3), Int(6, hex=True), Int(-7), Int(0xFFFF, hex=True)]


def test_strings() -> None:
    event = syscall('0 write(4, "hello" " world", 11) = 11')
    assert event.args[1] == Str("hello world")
    assert syscall('0 read(4, "abc"..., 100) = 100').args[1] == Str("abc", truncated=True)
    assert syscall(r'0 write(4, "a\"b\n", 4) = 4').args[1] == Str(r'a\"b\n')


def test_sockaddr_struct() -> None:
    event = syscall('0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), '
                    'sin_addr=inet_addr("192.0.2.1")}, 16) = 0')
    sockaddr = event.args[1]
    assert isinstance(sockaddr, Struct)
    assert sockaddr.fields == {
        "sa_family": Word("AF_INET"),
        "sin_port": Call("htons", (Int(8080),)),
        "sin_addr": Call("inet_addr", (Str("192.0.2.1"),)),
    }


def test_poll_linger_iovec_msghdr() -> None:
    poll = syscall("0 poll([{fd=4, events=POLLIN|POLLOUT|POLLERR, revents=POLLOUT}], 1, 0) = 1")
    pollfd = poll.args[0].items[0]
    assert pollfd.fields["events"] == Binary("|", Binary("|", Word("POLLIN"), Word("POLLOUT")), Word("POLLERR"))
    linger = syscall("0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0")
    assert linger.args[3].fields == {"onoff": Int(1), "linger": Int(0)}
    writev = syscall("0 writev(4, [{..., 10}, {iov_base=..., iov_len=20}], 2) = 30")
    assert writev.args[1] == ListExpr((Struct((EllipsisExpr(), Int(10))),
                                       Struct((Assign(Word("iov_base"), EllipsisExpr()),
                                               Assign(Word("iov_len"), Int(20))))))
    sendmsg = syscall("0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 100}], msg_flags=0}, 0) = 100")
    msghdr = sendmsg.args[1]
    assert msghdr.items[0] == Assign(Call("msg_name", (EllipsisExpr(),)), EllipsisExpr())
    assert msghdr.fields["msg_iov"] == ListExpr((Struct((EllipsisExpr(), Int(100))),))


def test_empty_args_lists_and_nesting() -> None:
    event = syscall("0 getpid() = 77")
    assert (event.name, event.args, event.result) == ("getpid", [], Int(77))
    assert syscall("0 f([], {}, [[1, 2], [3]]) = 0").args == [
        ListExpr(()), Struct(()), ListExpr((ListExpr((Int(1), Int(2))), ListExpr((Int(3),))))]


def test_symbolic_result_and_notes() -> None:
    event = syscall("0 fcntl(3, F_GETFL) = O_RDWR|O_NONBLOCK")
    assert event.result == Binary("|", Word("O_RDWR"), Word("O_NONBLOCK"))
    noted = syscall("0 read(4, ..., 10) = 10 (partial read, see below)")
    assert (noted.errno, noted.note) == (None, "partial read, see below")
    bare_errno = syscall("0 read(4, ..., 10) = -1 EAGAIN")
    assert (bare_errno.errno, bare_errno.errno_text) == ("EAGAIN", None)


# --------------------------------------------------------------------------------------------------
# Files.


def test_parse_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pkt"
    path.write_text(ACTIVE_CLOSE_NONBLOCKING)
    parsed = parse_file(path)
    assert parsed.path == str(path)
    assert len(parsed.events) == 7


def test_parse_file_errors_carry_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pkt"
    with pytest.raises(ScriptError) as info:
        parse_file(missing)
    assert info.value.line is None
    assert str(info.value).startswith(f"{missing}: cannot read script")
    binary = tmp_path / "bin.pkt"
    binary.write_bytes(b"0 close(3) = 0\n\xff\xfe\n")
    with pytest.raises(ScriptError) as info:
        parse_file(binary)
    assert str(info.value) == f"{binary}:2: script is not UTF-8 text"
    bad = tmp_path / "bad.pkt"
    bad.write_text("0 close(3) = 0\n+0 > Z 0:0(0)\n")
    with pytest.raises(ScriptError) as info:
        parse_file(bad)
    assert str(info.value) == f"{bad}:2: bad flags 'Z'"


# --------------------------------------------------------------------------------------------------
# Malformed scripts: path:line: message, the line of the offending token.


@pytest.mark.parametrize(("text", "line", "message"), [
    ("0 close(3) = 0\n/* never closed\n\n", 2, "unterminated comment"),
    ("0 close(3) = 0\n+0 `echo hi\n", 2, "unterminated backtick command"),
    ('0 write(3, "abc, 3) = 3\n', 1, "unterminated string"),
    ("0 close(3) = 0\n\n+0 %{ assert 1\n", 3, "unterminated %{ }% code block"),
    ("0 close(3) = 0\n+0 > Z 0:0(0)\n", 2, "bad flags 'Z'"),
    ("0 close(3) = 0\n+0 > Sx. 0:0(0)\n", 2, "bad flags 'Sx'"),
    ("0 foo bar\n", 1, "unexpected token 'bar' (expected '(')"),
    ("+0 < S 0:0(0) win 100\nfoo\n", 2, "unexpected token 'foo' (expected a time such as 0, +0.1 or *)"),
    ("0 close(3) = 0\n0 listen(3, 1) =\n", 3, "unexpected end of file (expected an expression)"),
    ("0 < S 0:10(0) win 10\n", 1, "inconsistent sequence numbers and payload length: 0:10(0)"),
    ("0 < S 0:0(0) win 70000\n", 1, "window out of range: 70000"),
    ("0 < S 0:0(0) win 10 <mss 70000>\n", 1, "mss value out of range: 70000"),
    ("0 < S 0:0(0) win 10 <wscale 300>\n", 1, "window scale shift count out of range: 300"),
    ("0 < . 1:1(0) ack 4294967296 win 10\n", 1, "ack sequence number out of range: 4294967296"),
    ("0 < S 0:0(0) win 10 <md5 " + "00" * 17 + ">\n", 1, "TCP MD5 digest longer than 16 bytes"),
    ("0 < S 0:0(0) win 10 <bogus 1>\n", 1, "unknown TCP option 'bogus'"),
    ("0 < S 0:0(0) win 10 <mss 1000 nop>\n", 1,
     "unexpected token 'nop' (expected ',' or '>' in the TCP option list)"),
    ("0 < S 0:0(0) win 10 <TS 1 ecr 2>\n", 1, "unexpected token '1' (expected 'val')"),
    ("0 < S 0:0(0) win 10 <...>\n", 1, "<...> for TCP options can only be used with outbound packets"),
    ("* < S 0:0(0) win 10\n", 1, "event time * can only be used with outbound packets"),
    ("* close(3) = 0\n", 1, "event time * can only be used with outbound packets"),
    ("+0~+1 close(3) = 0\n", 1, "event time range can only be used with outbound packets"),
    ("0.3~0.1 > . 1:1(0) ack 1\n", 1, "time range is backwards"),
    ("+0~0.1 > . 1:1(0) ack 1\n", 1,
     "unexpected token '0.1' (expected '+': a relative time range needs '+' on both ends)"),
    ("0~+0.1 > . 1:1(0) ack 1\n", 1, "an absolute time range can't end with a relative time"),
    ("-1 close(3) = 0\n", 1, "negative time"),
    ("+1" + "0" * 400 + " close(3) = 0\n", 1, "time out of range: 10000000000000000000"),
    ("0 close(" + "7" * 5000 + ") = 0\n", 1, "number too long: 77777777777777777777..."),
    ("+0.2...0.1 read(3, ..., 1) = 1\n", 1, "blocking call ends before it starts"),
    ("+0...0.1 > . 1:1(0) ack 1\n", 1, "unexpected token '>' (expected a system call after '...')"),
    ("+0~+0.1...0.2 read(3, ..., 1) = 1\n", 1, "a time range can't be combined with '...'"),
    ("0 close(3) = 0\n--mss=1000\n", 2, "option '--mss' must come before the first event"),
    ("--mss=,\n0 close(3) = 0\n", 1, "unexpected token ',' (expected a value for --mss)"),
    ("--define=X=,\n0 close(3) = 0\n", 1, "unexpected token ',' (expected a value for --define)"),
    ("0 < udp (100)\n", 1, "udp packets are not supported (TCP only)"),
    ("0 < ipv4 1.2.3.4 > 5.6.7.8: S 0:0(0) win 1\n", 1, "encapsulated packets ('ipv4') are not supported"),
    ("0 < 1 > 2 S 0:0(0) win 1\n", 1, "explicit port numbers on packets are not supported"),
    ("0 < [ect01] S 0:0(0) win 1\n", 1, "[ect01] can only be used with outbound packets"),
    ("0 < [bogus] S 0:0(0) win 1\n", 1,
     "unexpected token 'bogus' (expected ect0, ect1, ce, noecn, ect01, tos, ttl or flowlabel)"),
    ("0 < [ect0, ect1] S 0:0(0) win 1\n", 1, "ecn given twice"),
    ("0 > S.1 0:0(0) ack 1\n", 1, "AccECN ACE counters in flags are not supported"),
    ("0 close(&fd) = 0\n", 1, "'&' (address-of) is not part of the dialect; write the value itself"),
    ("0 close(3, ) = 0\n", 1, "unexpected token ')' (expected an expression)"),
    ("0 close(3] = 0\n", 1, "unexpected token ']' (expected ',' or ')')"),
    ("0 read(4, ..., 1) = 1 (unterminated\n\n", 1, "unterminated '(' note"),
    ("0 f(" + "[" * 60 + ") = 0\n", 1, "expression nested too deeply"),
    ("0 close(3) = 0\n`cleanup`\n+0 close(4) = 0\n", 3,
     "unexpected token '+' (expected only untimed commands after the cleanup command)"),
    ("0 < S 0:0(0) win 1 <FO 123>\n", 1, "TCP fast open cookie has an odd number of hex digits"),
    ("0 < S 0:0(0) win 1 <FOEXP 123>\n", 1, "TCP fast open cookie has an odd number of hex digits"),
    ("0 < S 0:0(0) win 1 <md5 0g>\n", 1, "TCP MD5 digest '0g' is not a hex string"),
    ("0 < S 0:0(0) win 1 <md5>\n", 1, "unexpected token '>' (expected an MD5 digest in hex)"),
    ("0 < S 0:0(0) win 1 <ECN e0b 1>\n", 1, "AccECN TCP options are not supported"),
    ("0 < S 0:0(0) win 1 <sack>\n", 1, "unexpected token '>' (expected a SACK block left:right)"),
    ("0 < S 0:0(0) win 1 <" + ",".join(["sack 1:2 3:4 5:6 7:8"] * 2) + ">\n", 1,
     "TCP option list too long (more than 40 bytes)"),
])
def test_malformed(text: str, line: int, message: str) -> None:
    error = error_of(text)
    assert (error.path, error.line, error.message) == ("bad.pkt", line, message)
    assert str(error) == f"bad.pkt:{line}: {message}"


def test_error_line_is_the_offending_token_in_a_multiline_event() -> None:
    error = error_of("0 close(3) = 0\n+0 setsockopt(3,\n   SOL_SOCKET,\n   SO_REUSEADDR, [1] 4) = 0\n")
    assert (error.line, error.message) == (4, "unexpected token '4' (expected ',' or ')')")


def test_defines_from_caller_and_script() -> None:
    text = textwrap.dedent("""\
        --define=LEVEL=SOL_IP
        --define=MSG="hello"
        --define=CMD=`echo hi`
        0 setsockopt(3, LEVEL, TYPE, [1], 4) = 0
        +0 write(3, MSG, 5) = 5
        +0 CMD
        +0 < S 0:0(0) win 100 <mss 1460,FO TFO_COOKIE>
    """)
    parsed = parse(text, "d.pkt", defines={"TYPE": "IP_RECVERR", "TFO_COOKIE": "3021b9d889017eeb"})
    assert parsed.defines == {"TYPE": "IP_RECVERR", "TFO_COOKIE": "3021b9d889017eeb", "LEVEL": "SOL_IP",
                              "MSG": '"hello"', "CMD": "`echo hi`"}
    setsockopt, write, command, syn = parsed.events
    assert setsockopt.args[1:3] == [Word("SOL_IP"), Word("IP_RECVERR")]
    assert write.args[1] == Str("hello")
    assert isinstance(command, CommandEvent) and command.command == "echo hi"
    assert syn.options == [("MSS", 1460), (34, bytes.fromhex("3021b9d889017eeb"))]


def test_undefined_cookie_symbol_is_an_error() -> None:
    error = error_of("0 < S 0:0(0) win 100 <FO TFO_COOKIE>\n")
    assert error.message == "TCP fast open cookie 'TFO_COOKIE' is not a hex string"
