"""%{ }% blocks with packetdrill's semantics (its code.c), as a pure function of the snapshots."""

from __future__ import annotations

from rawtcp.script import parse
from rawtcp.script.codeblock import CODE_SYMBOLS, CodeProgram, new_namespace, run_code

INFO = {"tcpi_state": 1, "tcpi_ca_state": 0, "tcpi_snd_cwnd": 10, "tcpi_rtt": 12000, "tcpi_options": 32 | 1}


def test_names_a_block_sees() -> None:
    assert CODE_SYMBOLS["TCP_ESTABLISHED"] == 1 and CODE_SYMBOLS["TCP_CA_Recovery"] == 3
    assert CODE_SYMBOLS["TCPI_OPT_SYN_DATA"] == 32 and CODE_SYMBOLS["TCPI_OPT_TFO_CHILD"] == 128
    code = ("assert tcpi_state == TCP_ESTABLISHED\nassert (tcpi_options & TCPI_OPT_SYN_DATA) != 0\n"
            "assert tcpi_ca_state == TCP_CA_Open\nassert _line == 7 and _file == 'x.pkt'\nassert sys and traceback")
    assert run_code(code, INFO, "x.pkt", 7) is None


def test_assertion_failure_text() -> None:
    error = run_code("assert 5000 <= tcpi_rtt <= 10000, 'srtt=%d us' % tcpi_rtt", INFO, "x.pkt", 12)
    assert error == "error in Python code: AssertionError: srtt=12000 us (line 12)"
    assert run_code("assert tcpi_nope == 1", INFO, "x.pkt", 3) == \
        "error in Python code: NameError: name 'tcpi_nope' is not defined (line 3)"


def test_multi_line_blocks_as_the_lexer_leaves_them() -> None:
    # "%{\nassert a\nassert b\n}%": stripped of spaces and tabs only, so it starts with a newline
    script = parse("0 %{\nassert tcpi_snd_cwnd == 10, tcpi_snd_cwnd\nassert tcpi_rtt > 0\n}%\n", "x.pkt")
    code = script.events[0].code
    assert run_code(code, INFO, "x.pkt", 1) is None
    # a backslash continuation on the last line compiles, thanks to packetdrill's two trailing newlines
    assert run_code("assert tcpi_snd_cwnd == 10;\\\n   assert tcpi_rtt > 0;\\\n", INFO, "x.pkt", 1) is None
    # an indented body is a syntax error under packetdrill too (its line is the script's)
    error = run_code("\n  assert 1\n  assert 2\n", INFO, "x.pkt", 5)
    assert error == "Python code does not compile: SyntaxError: unexpected indent (line 6)"


def test_names_carry_from_block_to_block() -> None:
    env = new_namespace("x.pkt")
    assert run_code("TCP_INFINITE_SSTHRESH = 0x7fffffff", INFO, "x.pkt", 1, env) is None
    later = {**INFO, "tcpi_snd_ssthresh": 0x7FFFFFFF}
    assert run_code("assert tcpi_snd_ssthresh == TCP_INFINITE_SSTHRESH", later, "x.pkt", 2, env) is None
    # a fresh namespace does not have it
    assert "NameError" in (run_code("assert TCP_INFINITE_SSTHRESH", INFO, "x.pkt", 3) or "")


def test_program_runs_at_the_end_with_each_blocks_snapshot() -> None:
    program = CodeProgram("x.pkt")
    program.add("cwnd = tcpi_snd_cwnd", {**INFO, "tcpi_snd_cwnd": 10}, 4)
    program.add("assert tcpi_snd_cwnd == cwnd * 2, (tcpi_snd_cwnd, cwnd)", {**INFO, "tcpi_snd_cwnd": 20}, 9)
    assert program.run() is None
    program.add("assert tcpi_snd_cwnd == 1, tcpi_snd_cwnd", {**INFO, "tcpi_snd_cwnd": 30}, 15)
    assert program.run() == (15, "error in Python code: AssertionError: 30 (line 15)")


def test_program_with_a_syntax_error_runs_nothing() -> None:
    program = CodeProgram("x.pkt")
    program.add("import os; os.environ['RAWTCP_CODEBLOCK_RAN'] = '1'", INFO, 1)
    program.add("assert (", INFO, 2)
    line, error = program.run() or (0, "")
    assert line == 2 and error.startswith("Python code does not compile: SyntaxError:")
    import os

    assert "RAWTCP_CODEBLOCK_RAN" not in os.environ
