"""Property: whatever the text, the parser returns a Script or raises ScriptError with a real line.

Example counts come from the hypothesis profile in tests/conftest.py (HYPOTHESIS_PROFILE=ci|long).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rawtcp.script import ScriptError, parse
from rawtcp.script.ast import Script

VALID = """\
// fuzz seed: every construct once
--tolerance_usecs=10000
--mss=1000
--local_ip=fd3d:0a0b:17d6::1
`../common/defaults.sh`
/* block
   comment */
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0...0.200 accept(3, ..., ...) = 4
  +.1 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 1 ecr 2,sack 1:2 3:4>
    * > [ect0] P. 1:1001(1000) ack 1 <...>
+0~+0.2 > F. 1001:1001(0) ack 1
   +0 < - 1:1001(1000) win 20000 <md5 000102030405060708090a0b0c0d0e0f,FOEXP 1234abcd>
  +.1 < icmp unreachable frag_needed mtu 1200 [1:1001(1000)]
   +0 ioctl(4, SIOCINQ, [0]) = 0
   +0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLIN}], 1, 0) = 1
   +0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0
   +0 write(4, "abc"..., 3) = -1 EPIPE (Broken pipe)
   +0 writev(4, [{iov_base=..., iov_len=10}], 1) = 10
  +.1 %{ assert tcpi_snd_mss == 1000, tcpi_snd_mss }%
   +0 `ip link show`
`echo cleanup`
"""

# Characters and fragments the dialect gives meaning to, so random text reaches deep into the parser.
ALPHABET = "<>.:()[]{}=,|+*~-/%`\"\\ \t\n0123456789xSFRPEWAUabcdefklmnorstvw_"
FRAGMENTS = ["0", "+0", "+.1", "*", "...", "~", "<", ">", "S", "S.", ".", "-", "P.", "F.", "R", "0:0(0)",
             "1:1001(1000)", "ack", "1", "win", "257", "urg", "<mss 1000,nop,wscale 7>", "<...>", "mss",
             "nop", "eol", "sackOK", "sack", "TS", "val", "ecr", "wscale", "FO", "md5", "[ect0]", "(",
             ")", "[", "]", "{", "}", ",", "=", "|", "socket", "close(3)", "= 0", "-1", "EAGAIN",
             "(Resource temporarily unavailable)", "`cmd`", "%{ x }%", "//c\n", "/* c */", "\n",
             "--mss=1000", '"s"', "0x10", "htons(80)", "fd=4", "&", "udp", "ipv4", "1.2.3.4", "icmp",
             "unreachable", "frag_needed", "mtu 1200", "id 3", "[0:10(10)]", "[udp (8)]", "FOEXP", "md5 0011",
             "--local_ip=fd::1", "::", "--ip_version=ipv4-mapped-ipv6"]


def check(text: str) -> None:
    try:
        result = parse(text, "fuzz.pkt")
    except ScriptError as error:
        assert error.path == "fuzz.pkt"
        assert error.line is not None
        assert 1 <= error.line <= text.count("\n") + 1
        assert str(error).startswith(f"fuzz.pkt:{error.line}: ")
        assert "\n" not in error.message
    else:
        assert isinstance(result, Script)
        for event in result.events:
            assert 1 <= event.line <= text.count("\n") + 1


def test_seed_script_parses() -> None:
    parsed = parse(VALID)
    assert len(parsed.events) == 20
    assert len(parsed.cleanup_commands) == 1


@given(st.text())
def test_any_text(text: str) -> None:
    check(text)


@given(st.text(alphabet=ALPHABET, max_size=300))
def test_dialect_characters(text: str) -> None:
    check(text)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60), st.sampled_from([" ", "\n", ""]))
def test_fragment_soup(fragments: list[str], separator: str) -> None:
    check(separator.join(fragments))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 5))):
        where = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "fragment", "duplicate", "truncate"]))
        if op == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 20)):]
        elif op == "insert":
            text = text[:where] + draw(st.text(alphabet=ALPHABET, min_size=1, max_size=5)) + text[where:]
        elif op == "fragment":
            text = text[:where] + draw(st.sampled_from(FRAGMENTS)) + text[where:]
        elif op == "duplicate":
            span = text[where:where + draw(st.integers(1, 40))]
            text = text[:where] + span + span + text[where + len(span):]
        else:
            text = text[:where]
    return text


@given(mutated())
def test_mutations_of_a_valid_script(text: str) -> None:
    check(text)
