"""The one segment formatter: flags, options and the segment line every text view is built from.

Pure: values in, text out.
"""

from __future__ import annotations

import pytest

from rawtcp.core.segment import (
    EXP_KIND,
    TFO_EXP_MAGIC,
    Flags,
    Segment,
    flags_str,
    format_options,
    options_word,
    segment_line,
    segment_words,
)

SYN, ACK, FIN, PSH, RST = Flags.SYN, Flags.ACK, Flags.FIN, Flags.PSH, Flags.RST
LINUX_SYN = (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None), ("WScale", 7))


# --- flags -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "text"), [
    (SYN, "S"), (SYN | ACK, "S."), (ACK, "."), (PSH | ACK, "P."), (FIN | ACK, "F."), (RST, "R"),
    (RST | ACK, "R."), (FIN | PSH | ACK, "FP."), (Flags(0), "none"),
    (Flags.SYN | Flags.FIN | Flags.PSH | Flags.RST | Flags.URG | Flags.ECE | Flags.CWR | ACK, "SFPRUEW."),
])
def test_flags_are_spelled_as_tcpdump_does(flags: Flags, text: str) -> None:
    assert flags_str(int(flags)) == text
    assert flags.short() == text


# --- options ---------------------------------------------------------------------------------------


def test_options_are_written_as_tcpdump_and_packetdrill_do() -> None:
    assert format_options(LINUX_SYN) == "mss 1460,sackOK,TS val 1000 ecr 0,nop,wscale 7"
    assert format_options([("SAck", (10, 20, 30, 40)), ("EOL", None)]) == "sack 10:20 30:40,eol"
    assert format_options([("TFO", b"\x01\x02")]) == "FO 0102"
    assert format_options([(34, b"")]) == "FO"
    assert format_options([(EXP_KIND, TFO_EXP_MAGIC + b"\xab")]) == "FOEXP ab"
    assert format_options([(99, b"\x01\xff")]) == "opt-99:01ff"
    assert format_options(()) == ""


def test_timestamp_values_can_be_left_out() -> None:
    # a comparison zeroes them: both runs' values differ, the option's presence does not
    assert format_options(LINUX_SYN, ts_values=False) == "mss 1460,sackOK,TS,nop,wscale 7"


def test_options_word_wraps_in_angle_brackets_and_is_empty_without_options() -> None:
    assert options_word((("MSS", 1024),)) == "<mss 1024>"
    assert options_word("mss 1024,nop") == "<mss 1024,nop>"  # text made before (a record's field)
    assert options_word(()) == "" and options_word("") == ""


# --- the segment line ------------------------------------------------------------------------------


def test_the_line_reads_flags_seq_ack_win_len_options() -> None:
    line = segment_line(SYN | ACK, 0, 1, 65160, 0, (("MSS", 1024),))
    assert line == "S. seq 0 ack 1 win 65160 len 0 <mss 1024>"


def test_ack_only_with_the_ack_flag() -> None:
    assert segment_line(SYN, 1000, 77, 64240, 0) == "S seq 1000 win 64240 len 0"
    # a crafted segment may carry an ack value without the flag; its sender wants to see it
    assert segment_line(SYN, 1000, 77, 64240, 0, show_ack=True) == "S seq 1000 ack 77 win 64240 len 0"
    assert segment_line(ACK, 1, None, 100, 0) == ". seq 1 win 100 len 0"  # no number to show


def test_flags_may_come_spelled_and_numbers_as_text() -> None:
    # a session record carries the spelling and the caller writes absolute and relative together
    line = segment_line("P.", "1001 (rel 1)", "8001 (rel 1)", 64240, 20, "nop,nop,TS val 5 ecr 9")
    assert line == "P. seq 1001 (rel 1) ack 8001 (rel 1) win 64240 len 20 <nop,nop,TS val 5 ecr 9>"
    assert segment_line("S", 1000, 0, 64240, 0) == "S seq 1000 win 64240 len 0"


def test_layout_parameters_leave_the_words_alone() -> None:
    assert segment_line(SYN | ACK, 0, 1, 65160, 0, flags_width=3) == "S.  seq 0 ack 1 win 65160 len 0"
    assert segment_line(SYN | ACK, 0, 1, 65160, 0, brackets=True) == "[S.] seq 0 ack 1 win 65160 len 0"
    assert segment_line(SYN | ACK, 0, 1, None, 0) == "S. seq 0 ack 1 len 0"  # the window left out
    assert segment_line(SYN | ACK, 7, 101, 65160, 0, (("MSS", 1460),), sep="=") == \
        "S. seq=7 ack=101 win=65160 len=0 <mss 1460>"


def test_packetdrill_form_writes_the_sequence_range() -> None:
    line = segment_line(PSH | ACK, 1, 21, 64240, 10, flags_width=5, packetdrill=True)
    assert line == "P.    1:11(10) ack 21 win 64240"
    assert segment_line(SYN, 0, 0, 65535, 0, (("MSS", 1460),), packetdrill=True) == "S 0:0(0) win 65535 <mss 1460>"
    # the end wraps modulo 2**32 (RFC 9293 §3.4)
    assert segment_line(ACK, 2**32 - 4, 1, 10, 10, packetdrill=True) == ". 4294967292:6(10) ack 1 win 10"
    with pytest.raises(TypeError):
        segment_line(ACK, "1 (rel 1)", 1, 10, 0, packetdrill=True)


def test_words_let_a_caller_lay_the_fields_out_itself() -> None:
    words = segment_words(SYN | ACK, 0, 1, 65160, 0, (("MSS", 1024),), brackets=True)
    assert words.flags == "[S.]" and words.seq == "seq 0" and words.ack == "ack 1"
    assert words.window == "win 65160" and words.length == "len 0" and words.options == "<mss 1024>"
    assert words.line(flags_width=6, gap="  ") == "[S.]    seq 0  ack 1  win 65160  len 0  <mss 1024>"
    assert words.fields() == "seq 0 ack 1 win 65160 len 0 <mss 1024>"
    bare = segment_words(SYN, 0, 0, 64240, 0)
    assert bare.ack == "" and bare.options == "" and bare.fields("  ") == "seq 0  win 64240  len 0"


def test_a_segment_summary_is_its_segment_line() -> None:
    seg = Segment(40000, 8080, 8000, 1001, SYN | ACK, 65160, (("MSS", 1024),))
    assert seg.summary() == "S. seq 8000 ack 1001 win 65160 len 0 <mss 1024>"
    data = Segment(40000, 8080, 1001, 8001, PSH | ACK, 64240, payload=b"x" * 20)
    assert data.summary() == segment_line(data.flags, 1001, 8001, 64240, 20)
    assert Segment(1, 2, 5).summary() == "none seq 5 win 0 len 0"
