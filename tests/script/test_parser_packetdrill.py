"""The parts of packetdrill's dialect its own Linux TCP suite leans on beyond the basics.

ICMP packet lines, the experimental TFO option and MD5 signatures, option lines in every address
mode, -D symbols as packetdrill's lexer substitutes them, and the nested sendmsg/recvmsg/epoll
expressions. Every script here is written for these tests.
"""

from __future__ import annotations

import textwrap

import pytest

from rawtcp.script import ScriptError, parse
from rawtcp.script.ast import (
    TCPOPT_EXP,
    TCPOPT_FASTOPEN,
    TCPOPT_FASTOPEN_MAGIC,
    TCPOPT_MD5SIG,
    Assign,
    Binary,
    Call,
    CodeEvent,
    EllipsisExpr,
    IcmpPacketEvent,
    Int,
    ListExpr,
    Option,
    PacketEvent,
    Str,
    Struct,
    SyscallEvent,
    Time,
    Word,
)


def events(text: str, defines: dict[str, str] | None = None) -> list:
    return parse(textwrap.dedent(text), "t.pkt", defines).events


def icmp(line: str, defines: dict[str, str] | None = None) -> IcmpPacketEvent:
    (event,) = events(line, defines)
    assert isinstance(event, IcmpPacketEvent)
    return event


def error(text: str, defines: dict[str, str] | None = None) -> str:
    with pytest.raises(ScriptError) as info:
        parse(textwrap.dedent(text), "bad.pkt", defines)
    return str(info.value)


# --------------------------------------------------------------------------------------------------
# ICMP packet lines.


def test_icmp_with_code_from_a_define_and_quoted_segment() -> None:
    event = icmp("+0 < icmp unreachable CODE [0:10(10)]\n", {"CODE": "host_unreachable"})
    assert (event.direction, event.icmp_type, event.icmp_code) == ("<", "unreachable", "host_unreachable")
    assert (event.echoed_protocol, event.seq_start, event.seq_end, event.seq_len) == ("tcp", 0, 10, 10)
    assert (event.mtu, event.echo_id, event.ecn, event.tos) == (None, None, None, None)
    assert event.inbound and event.time == Time("relative", 0.0)


def test_icmp_undefined_code_symbol_stays_a_word() -> None:
    # The ipv6 variant defines no CODE: the word survives parsing; check.py judges it per IP version.
    assert icmp("0 < icmp unreachable CODE\n").icmp_code == "CODE"


def test_icmp_frag_needed_with_mtu() -> None:
    event = icmp("0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]\n")
    assert (event.icmp_code, event.mtu) == ("frag_needed", 1200)
    assert (event.seq_start, event.seq_end, event.seq_len) == (1, 1461, 1460)


def test_icmpv6_packet_too_big_without_code() -> None:
    event = icmp("0 < icmp packet_too_big mtu 1400 [0:1440(1440)]\n")
    assert (event.icmp_type, event.icmp_code, event.mtu, event.seq_len) == ("packet_too_big", None, 1400, 1440)


def test_icmp_bare_type_quotes_sequence_zero() -> None:
    event = icmp("0 < icmp unreachable\n")
    assert (event.icmp_code, event.seq_start, event.seq_end, event.seq_len) == (None, 0, 0, 0)
    assert icmp("0 < icmp unreachable [5000:6000(1000)]\n").seq_start == 5000


def test_icmp_echo_id_udp_and_raw_quotes() -> None:
    event = icmp("0 > icmp echo_reply id 7 [raw (30)]\n")
    assert (event.direction, event.echo_id, event.echoed_protocol, event.seq_len) == (">", 7, "raw", 30)
    assert not event.inbound
    udp = icmp("0 < icmp unreachable port_unreachable [udp (20)]\n")
    assert (udp.echoed_protocol, udp.seq_start, udp.seq_len) == ("udp", 0, 20)


def test_icmp_outer_ip_info_and_star_time() -> None:
    event = icmp("* > [tos 0x10, flowlabel 0x3] icmp type_3 code_1\n")
    assert (event.time.kind, event.tos, event.flowlabel) == ("any", 0x10, 3)
    assert (event.icmp_type, event.icmp_code) == ("type_3", "code_1")
    assert icmp("0 < [ect0] icmp unreachable\n").ecn == "ect0"


def test_icmp_between_tcp_packets_keeps_lines() -> None:
    parsed = events("""\
        0 < S 0:0(0) win 100
        +0 > S. 0:0(0) ack 1 <...>
        +.1 < icmp unreachable net_unreachable
        +0 < . 1:1(0) ack 1 win 100
    """)
    assert [type(e).__name__ for e in parsed] == ["PacketEvent", "PacketEvent", "IcmpPacketEvent", "PacketEvent"]
    assert [e.line for e in parsed] == [1, 2, 3, 4]


@pytest.mark.parametrize(("text", "message"), [
    ("0 < icmp\n", "bad.pkt:2: unexpected end of file (expected an ICMP type such as unreachable or "
                   "packet_too_big)"),
    ("0 < icmp mtu 5\n", "bad.pkt:1: unexpected token 'mtu' (expected an ICMP type such as unreachable or "
                         "packet_too_big)"),
    ("0 < icmp unreachable [bogus]\n",
     "bad.pkt:1: unexpected token 'bogus' (expected the quoted packet: start:end(length), udp (N) or raw (N))"),
    ("0 < icmp unreachable [0:10(9)]\n", "bad.pkt:1: inconsistent sequence numbers and payload length: 0:10(9)"),
    ("0 < icmp unreachable [0:0(0)\n", "bad.pkt:2: unexpected end of file (expected ']')"),
    ("0 < icmp echo_reply id 70000\n", "bad.pkt:1: ICMP echo id out of range: 70000"),
    ("0 < icmp unreachable frag_needed mtu x\n", "bad.pkt:1: unexpected token 'x' (expected ICMP MTU)"),
    ("0 < [ect01] icmp unreachable\n", "bad.pkt:1: [ect01] can only be used with outbound packets"),
    ("* < icmp unreachable\n", "bad.pkt:1: event time * can only be used with outbound packets"),
    ("0 < udp (10)\n", "bad.pkt:1: udp packets are not supported (TCP only)"),
])
def test_icmp_errors(text: str, message: str) -> None:
    assert error(text) == message


# --------------------------------------------------------------------------------------------------
# TCP options: FOEXP and md5.


def test_foexp_with_and_without_cookie() -> None:
    (syn,) = events("0 < S 0:10(10) win 100 <mss 1460,nop,nop,FOEXP 1234abcd,nop,nop,FOEXP>\n")
    assert isinstance(syn, PacketEvent)
    assert syn.options == [("MSS", 1460), ("NOP", None), ("NOP", None),
                           (254, b"\xf9\x89\x12\x34\xab\xcd"), ("NOP", None), ("NOP", None), (254, b"\xf9\x89")]
    assert (TCPOPT_EXP, TCPOPT_FASTOPEN_MAGIC) == (254, b"\xf9\x89")


def test_fo_and_foexp_cookies_from_a_define() -> None:
    (syn,) = events("0 < S 0:0(0) win 100 <FOEXP TFO_COOKIE,FO TFO_COOKIE>\n", {"TFO_COOKIE": "c1d1e9742a47a9bc"})
    cookie = bytes.fromhex("c1d1e9742a47a9bc")
    assert syn.options == [(TCPOPT_EXP, TCPOPT_FASTOPEN_MAGIC + cookie), (TCPOPT_FASTOPEN, cookie)]


def test_cookie_define_that_reads_as_a_number_keeps_its_digits() -> None:
    # strtol would read 00112233 as octal; a cookie is hex digits, as written.
    (syn,) = events("0 < S 0:0(0) win 100 <FO COOKIE>\n", {"COOKIE": "00112233"})
    assert syn.options == [(TCPOPT_FASTOPEN, bytes.fromhex("00112233"))]


def test_all_digit_cookie_is_hex() -> None:
    (syn,) = events("0 < S 0:0(0) win 100 <FO 000000000000>\n")
    assert syn.options == [(34, bytes(6))]


def test_md5_option() -> None:
    digest = "000102030405060708090a0b0c0d0e0f"
    (ack,) = events(f"0 < . 1:1(0) ack 1 win 514 <md5 {digest},nop,nop>\n")
    assert ack.options == [(TCPOPT_MD5SIG, bytes(range(16))), ("NOP", None), ("NOP", None)]
    assert TCPOPT_MD5SIG == 19
    (short,) = events("0 < . 1:1(0) ack 1 win 514 <md5 0011>\n")
    assert short.options == [(19, b"\x00\x11")]


def test_foexp_counts_toward_the_forty_bytes() -> None:
    # 4 bytes of kind, length and magic plus a 36-byte cookie is 40; one more option overflows.
    assert len(events("0 < S 0:0(0) win 1 <FOEXP " + "ab" * 36 + ">\n")[0].options) == 1
    assert error("0 < S 0:0(0) win 1 <nop,FOEXP " + "ab" * 36 + ">\n") == \
        "bad.pkt:1: TCP option list too long (more than 40 bytes)"


# --------------------------------------------------------------------------------------------------
# Option lines.


def test_option_list_keeps_lines_flags_and_values() -> None:
    parsed = parse(textwrap.dedent("""\
        // an IPv6 run
        --strict_segments
        --ip_version=ipv6 // trailing comment
        --local_ip=fd3d:0a0b:17d6::1
        --remote_ip=2001:DB8::1
        --gateway_ip=::ffff:192.0.2.1
        --netmask_ip=255.255.0.0
        --mtu=1520
        --tcp_ts_ecr_scaled   // used later
        --send_omit_free
        --tolerance_usecs=7000
        0 close(3) = 0
    """), "o.pkt")
    assert parsed.option_list == [
        Option(2, "strict_segments", None), Option(3, "ip_version", "ipv6"),
        Option(4, "local_ip", "fd3d:0a0b:17d6::1"), Option(5, "remote_ip", "2001:DB8::1"),
        Option(6, "gateway_ip", "::ffff:192.0.2.1"), Option(7, "netmask_ip", "255.255.0.0"),
        Option(8, "mtu", "1520"), Option(9, "tcp_ts_ecr_scaled", None), Option(10, "send_omit_free", None),
        Option(11, "tolerance_usecs", "7000"),
    ]
    assert parsed.options["strict_segments"] == "" and parsed.options["local_ip"] == "fd3d:0a0b:17d6::1"
    assert parsed.events[0].line == 12


def test_ipv4_mapped_ipv6_is_one_value() -> None:
    parsed = parse("--ip_version=ipv4-mapped-ipv6\n0 close(3) = 0\n")
    assert parsed.options["ip_version"] == "ipv4-mapped-ipv6"
    # Only a hyphen written flush against the value joins it.
    assert error("--ip_version=ipv4 -mapped\n0 close(3) = 0\n") == \
        "bad.pkt:1: unexpected token '-' (expected a time such as 0, +0.1 or *)"


def test_ipv6_address_lexing_leaves_sequence_ranges_alone() -> None:
    (data,) = events("0 < . 1:1001(1000) ack 1 win 10 <sack 1:2 3:4>\n")
    assert (data.seq_start, data.seq_end, data.options) == (1, 1001, [("SAck", (1, 2, 3, 4))])


def test_repeated_define_lines_all_count() -> None:
    parsed = parse("--define=A=1\n--define=B=SOL_IP\n0 f(A, B) = 0\n")
    assert [o.value for o in parsed.option_list] == ["A=1", "B=SOL_IP"]
    assert parsed.events[0].args == [Int(1), Word("SOL_IP")]


# --------------------------------------------------------------------------------------------------
# -D symbols, as packetdrill's lexer word() substitutes them.


def test_integer_define_is_an_integer() -> None:
    (call,) = events("0 setsockopt(3, LEVEL, OPT, [VAL], 4) = RESULT\n",
                     {"LEVEL": "0x6", "OPT": "010", "VAL": "-1", "RESULT": "0"})
    assert call.args[1:4] == [Int(6), Int(8), ListExpr((Int(-1),))]
    assert call.result == Int(0)


def test_define_substitutes_in_option_values() -> None:
    parsed = parse("--local_ip=LOCAL\n0 close(3) = 0\n", "t.pkt", {"LOCAL": "192.168.0.1"})
    assert parsed.options["local_ip"] == "192.168.0.1"


def test_command_line_define_wins_over_script_define() -> None:
    parsed = parse("--define=LEVEL=SOL_IP\n0 f(LEVEL) = 0\n", "t.pkt", {"LEVEL": "SOL_IPV6"})
    assert parsed.events[0].args == [Word("SOL_IPV6")]
    assert parsed.defines == {"LEVEL": "SOL_IPV6"}


def test_keywords_are_never_substituted() -> None:
    (packet,) = events("0 < . 1:1(0) ack 1 win 10\n", {"ack": "5", "win": "nope"})
    assert (packet.ack, packet.window) == (1, 10)


def test_a_substituted_value_is_not_looked_up_again() -> None:
    (call,) = events("0 f(A) = 0\n", {"A": "B", "B": "C"})
    assert call.args == [Word("B")]
    parsed = parse("--define=B=C\n0 f(A) = 0\n", "t.pkt", {"A": "B"})
    assert parsed.events[0].args == [Word("B")]


def test_defines_inside_nested_cmsg_expressions() -> None:
    text = """\
        0 recvmsg(4, {msg_name(...)=...,
                      msg_iov(1)=[{...,0}],
                      msg_flags=MSG_ERRQUEUE,
                      msg_control=[
                          {cmsg_level=CMSG_LEVEL_IP,
                           cmsg_type=CMSG_TYPE_RECVERR,
                           cmsg_data={ee_errno=0,
                                      ee_origin=SO_EE_ORIGIN_ZEROCOPY,
                                      ee_type=0,
                                      ee_code=SO_EE_CODE_ZEROCOPY_COPIED,
                                      ee_info=4000000000,
                                      ee_data=-1}}
                      ]}, MSG_ERRQUEUE) = 0
    """
    for level, kind in (("SOL_IP", "IP_RECVERR"), ("SOL_IPV6", "IPV6_RECVERR")):
        (call,) = events(text, {"CMSG_LEVEL_IP": level, "CMSG_TYPE_RECVERR": kind})
        assert isinstance(call, SyscallEvent)
        msghdr = call.args[1]
        assert isinstance(msghdr, Struct)
        assert msghdr.items[0] == Assign(Call("msg_name", (EllipsisExpr(),)), EllipsisExpr())
        assert msghdr.items[1] == Assign(Call("msg_iov", (Int(1),)), ListExpr((Struct((EllipsisExpr(), Int(0))),)))
        (cmsg,) = msghdr.fields["msg_control"].items
        assert cmsg.fields["cmsg_level"] == Word(level)
        assert cmsg.fields["cmsg_type"] == Word(kind)
        err = cmsg.fields["cmsg_data"].fields
        assert (err["ee_errno"], err["ee_info"], err["ee_data"]) == (Int(0), Int(4000000000), Int(-1))


def test_epoll_timestamping_and_inet6_expressions() -> None:
    epoll, stamps, addr = events("""\
        0 epoll_wait(5, {events=EPOLLIN|EPOLLOUT, ptr=0}, 1, 0) = 1
        +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{...,0}], msg_flags=0,
                       msg_control=[{cmsg_level=SOL_SOCKET, cmsg_type=SCM_TIMESTAMPING,
                                     cmsg_data={scm_sec=0,scm_nsec=20000000}}]}, 0) = 0
        +0 f(inet6_addr("fd3d:fa7b:d17d::1")) = 0
    """)
    assert epoll.args[1].fields == {"events": Binary("|", Word("EPOLLIN"), Word("EPOLLOUT")), "ptr": Int(0)}
    (cmsg,) = stamps.args[1].fields["msg_control"].items
    assert cmsg.fields["cmsg_data"].fields == {"scm_sec": Int(0), "scm_nsec": Int(20000000)}
    assert addr.args == [Call("inet6_addr", (Str("fd3d:fa7b:d17d::1"),))]


def test_multiline_code_block_keeps_newlines_and_indentation() -> None:
    text = ("0 close(3) = 0\n+0 %{  \nif tcpi_rto > 0:\n    assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd\n\t}%\n"
            "+0 close(4) = 0\n")
    code, after = parse(text).events[1:]
    assert isinstance(code, CodeEvent)
    # lexer.l's code() strips only spaces and tabs at both ends: the newlines stay.
    assert code.code == "\nif tcpi_rto > 0:\n    assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd\n"
    assert (code.line, after.line) == (2, 6)


def test_defines_stay_out_of_strings_commands_and_code() -> None:
    # packetdrill substitutes words only; a quoted, backquoted or %{ }% text is one token, left as is.
    parsed = parse('`echo LEVEL`\n0 write(3, "LEVEL", 5) = 5\n+0 %{ LEVEL = 1 }%\n', "t.pkt", {"LEVEL": "SOL_IP"})
    assert parsed.init_commands[0].command == "echo LEVEL"
    assert parsed.events[0].args[1] == Str("LEVEL")
    assert parsed.events[1].code == "LEVEL = 1"
