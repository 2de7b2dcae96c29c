"""Recursive-descent parser for packetdrill's ``.pkt`` dialect (grammar after packetdrill's parser.y).

    script   := option* command* event* command*
    option   := --name [= value]
    event    := time (packet | icmp | [... time] syscall | `command` | %{ code }%)
    time     := * | [+]secs [~ [+]secs]
    packet   := (<|>) [ip_info] flags seq [ack N] [win N] [urg N] [<tcp options> | <...>]
    icmp     := (<|>) [ip_info] icmp type [code] [mtu N] [id N] [[seq] | [udp (N)] | [raw (N)]]
    syscall  := name ( [expr {, expr}] ) = expr [ERRNO (text)] [(note)]

Every problem is a ScriptError at the offending line, never another exception.
Unsupported parts of packetdrill's language (UDP packets, tunnels, explicit ports, packet fuzzing,
AccECN) are refused with a message naming them. What depends on the IP version or the runner (ICMP
type names, option names, system calls) is left to rawtcp.script.check.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path

from rawtcp.script import ast
from rawtcp.script.errors import ScriptError
from rawtcp.script.lexer import (
    BACKTICK,
    CODE,
    ELLIPSIS,
    EOF,
    FLOAT,
    HEX,
    INT,
    IPV4,
    IPV6,
    KEYWORDS,
    OPTION,
    STRING,
    WORD,
    Token,
    tokenize,
)

TCP_FLAG_LETTERS = "FSRPEWAU"
ECN_WORDS = ("noecn", "ect0", "ect1", "ce", "ect01")
_MAX_NESTING = 50  # [[[[...]]]] deeper than this is a typo, not a struct; and it keeps recursion bounded

_MAX_SECONDS = 1e6  # 11 days: beyond any script, and far from float overflow in usecs arithmetic
_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFF_FFFF
_MD5_DIGEST_LEN = 16  # RFC 2385: the option carries a 16-byte MD5 digest
_LONG_MAX = 2**63 - 1  # strtol's range on the LP64 Linux packetdrill runs on
# What strtol(s, &end, 0) consumes entirely: leading C whitespace, a sign, then hex, octal or decimal.
_C_INTEGER = re.compile(r"[ \t\n\v\f\r]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")


def parse(text: str, path: str = "<script>", defines: Mapping[str, str] | None = None) -> ast.Script:
    """Parse script ``text``; ``path`` only labels error messages and the result.

    ``defines`` are packetdrill's ``-D NAME=value`` symbols; the script's own ``--define=NAME=value``
    lines add to them (a -D of the same name wins, as packetdrill's command line overrides the script).
    Like packetdrill's lexer, a word naming a symbol is replaced by its value wherever it stands,
    option values included, keywords excepted: ``"..."`` becomes a string, a backquoted value a command,
    a C integer (``5``, ``0x10``) an integer, anything else a word (``FO TFO_COOKIE``).
    """
    return _Parser(tokenize(text, path), path, text, dict(defines or {})).script()


def parse_file(path: str | Path, defines: Mapping[str, str] | None = None) -> ast.Script:
    """Read and parse the script at ``path``."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ScriptError(name, None, f"cannot read script: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScriptError(name, line, "script is not UTF-8 text") from None
    return parse(text, name, defines)


class _Parser:
    def __init__(self, tokens: list[Token], path: str, text: str, defines: dict[str, str]) -> None:
        self.tokens = tokens
        self.text = text
        self.defines = defines
        self.path = path
        self.pos = 0
        self.depth = 0

    # -- token helpers ------------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        if token.kind != EOF:
            self.pos += 1
        return token

    def error(self, message: str, token: Token | None = None) -> ScriptError:
        return ScriptError(self.path, (token or self.peek()).line, message)

    def unexpected(self, expected: str, token: Token | None = None) -> ScriptError:
        token = token or self.peek()
        return self.error(f"unexpected {token.describe()} (expected {expected})", token)

    def expect_char(self, char: str) -> Token:
        if not self.peek().is_char(char):
            raise self.unexpected(f"'{char}'")
        return self.take()

    def expect_word(self, word: str) -> Token:
        if not self.peek().is_word(word):
            raise self.unexpected(f"'{word}'")
        return self.take()

    def accept_char(self, char: str) -> bool:
        if self.peek().is_char(char):
            self.pos += 1
            return True
        return False

    def expect_int(self, what: str, limit: int | None = None) -> int:
        token = self.peek()
        if token.kind not in (INT, HEX):
            raise self.unexpected(what)
        self.take()
        value = self.integer(token)
        if limit is not None and not 0 <= value <= limit:
            raise self.error(f"{what} out of range: {token.text}", token)
        return value

    def integer(self, token: Token) -> int:
        if len(token.text) > 40:  # also keeps int() clear of Python's 4300-digit conversion limit
            raise self.error(f"number too long: {token.text[:20]}...", token)
        return int(token.text, 16) if token.kind == HEX else int(token.text)

    # -- script ---------------------------------------------------------------------------------------

    def script(self) -> ast.Script:
        result = ast.Script(path=self.path)
        # -D symbols are known before the lexer reaches the first option line, so they replace words
        # in option values too; the script's own --define symbols only apply after the option lines.
        substituted = self.substitute_defines(self.defines, set())
        script_defines: dict[str, str] = {}
        while self.peek().kind == OPTION:
            line = self.peek().line
            name, value = self.option()
            result.option_list.append(ast.Option(line=line, name=name, value=value))
            result.options[name] = value or ""
            if name == "define" and value is not None:
                symbol, _, replacement = value.partition("=")
                if symbol not in self.defines:
                    script_defines[symbol] = replacement
        self.substitute_defines(script_defines, substituted)
        result.defines = {**self.defines, **script_defines}
        while self.peek().kind == BACKTICK:
            token = self.take()
            result.init_commands.append(ast.Command(line=token.line, command=token.text))
        while self.peek().kind not in (EOF, BACKTICK):
            result.events.append(self.event())
        while self.peek().kind == BACKTICK:
            token = self.take()
            result.cleanup_commands.append(ast.Command(line=token.line, command=token.text))
        if self.peek().kind != EOF:
            token = self.peek()
            if token.kind == OPTION:
                raise self.error(f"option '{token.text}' must come before the first event", token)
            raise self.unexpected("only untimed commands after the cleanup command", token)
        return result

    def substitute_defines(self, defines: Mapping[str, str], skip: set[int]) -> set[int]:
        """Replace words naming a symbol by its value, as packetdrill's lexer word() does.

        Works on the tokens from the current position on, leaving indexes in ``skip`` (already
        replaced once: a value is never looked up again) and the NAME of ``--define=NAME=...``.
        Returns the indexes replaced.
        """
        done: set[int] = set()
        if not defines:
            return done
        for index in range(self.pos, len(self.tokens)):
            token = self.tokens[index]
            if token.kind != WORD or token.text in KEYWORDS or index in skip:
                continue
            value = defines.get(token.text)
            if value is None or self.is_define_name(index):
                continue
            kind, text = WORD, value
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"`":
                kind, text = (STRING if value[0] == '"' else BACKTICK), value[1:-1]
            else:
                number = _strtol(value)
                if number is not None:
                    kind, text = INT, str(number)
            self.tokens[index] = Token(kind, text, token.line, token.start, token.end, raw=value)
            done.add(index)
        return done

    def is_define_name(self, index: int) -> bool:
        return (index >= 2 and self.tokens[index - 1].is_char("=")
                and self.tokens[index - 2].kind == OPTION and self.tokens[index - 2].text == "--define")

    def option(self) -> tuple[str, str | None]:
        name = self.take().text[2:]
        if not self.accept_char("="):
            return name, None
        token = self.take()
        if token.kind == WORD and self.accept_char("="):
            # --define=NAME=value, as packetdrill allows
            rhs = self.take()
            # packetdrill's grammar wants a word here; numbers are accepted too, as -D accepts them.
            if rhs.kind in (WORD, INT, HEX, FLOAT, IPV4, IPV6):
                return name, f"{token.text}={self.hyphenated(rhs)}"
            if rhs.kind == STRING:
                return name, f'{token.text}="{rhs.text}"'
            if rhs.kind == BACKTICK:
                return name, f"{token.text}=`{rhs.text}`"
            raise self.unexpected(f"a value for --{name}", rhs)
        if token.kind in (INT, HEX, FLOAT, WORD, STRING, IPV4, IPV6):
            return name, self.hyphenated(token)
        raise self.unexpected(f"a value for --{name}", token)

    def hyphenated(self, first: Token) -> str:
        """``first`` plus any ``-word`` parts written flush against it: ``ipv4-mapped-ipv6``.

        packetdrill's own lexer would split such a value and refuse it; accepting it lets a script
        name the third address mode the way the command line does.
        """
        text, end = first.text, first.end
        if first.kind not in (WORD, INT):
            return text
        while (self.peek().is_char("-") and self.peek().start == end
               and self.peek(1).kind in (WORD, INT) and self.peek(1).start == end + 1):
            self.take()
            part = self.take()
            text, end = f"{text}-{part.text}", part.end
        return text

    # -- events ---------------------------------------------------------------------------------------

    def event(self) -> ast.AnyEvent:
        first = self.peek()
        if first.kind == OPTION:
            raise self.error(f"option '{first.text}' must come before the first event", first)
        time = self.time()
        token = self.peek()
        event: ast.AnyEvent
        if token.is_char("<") or token.is_char(">"):
            event = self.packet(first.line, time)
        elif token.kind == ELLIPSIS:
            if time.end is not None:
                raise self.error("a time range can't be combined with '...'", token)
            self.take()
            end_token = self.peek()
            end = self.seconds()
            if end < time.start:
                raise self.error("blocking call ends before it starts", end_token)
            time = ast.Time(time.kind, time.start, end, blocking=True)
            if self.peek().kind != WORD:
                raise self.unexpected("a system call after '...'")
            event = self.syscall(first.line, time)
        elif token.kind == WORD:
            event = self.syscall(first.line, time)
        elif token.kind == BACKTICK:
            self.take()
            event = ast.CommandEvent(line=first.line, time=time, command=token.text)
        elif token.kind == CODE:
            self.take()
            event = ast.CodeEvent(line=first.line, time=time, code=token.text)
        else:
            raise self.unexpected("a packet, system call, `command` or %{ code }%")
        outbound_packet = isinstance(event, ast.PacketEvent | ast.IcmpPacketEvent) and event.direction == ">"
        if time.kind == "any" and not outbound_packet:
            raise self.error("event time * can only be used with outbound packets", first)
        if time.is_range and not outbound_packet:
            raise self.error("event time range can only be used with outbound packets", first)
        return event

    def seconds(self) -> float:
        token = self.peek()
        if token.kind not in (INT, FLOAT):
            raise self.unexpected("a time")
        self.take()
        value = float(token.text)
        if value < 0:
            raise self.error("negative time", token)
        if value > _MAX_SECONDS:
            raise self.error(f"time out of range: {token.text[:20]}", token)
        return value

    def time(self) -> ast.Time:
        token = self.peek()
        if token.is_char("*"):
            self.take()
            return ast.Time("any")
        if token.is_char("+"):
            self.take()
            start = self.seconds()
            if not self.accept_char("~"):
                return ast.Time("relative", start)
            if not self.accept_char("+"):
                raise self.unexpected("'+': a relative time range needs '+' on both ends")
            return self.time_range("relative", start, token)
        if token.kind in (INT, FLOAT):
            start = self.seconds()
            if not self.accept_char("~"):
                return ast.Time("absolute", start)
            if self.peek().is_char("+"):
                raise self.error("an absolute time range can't end with a relative time")
            return self.time_range("absolute", start, token)
        raise self.unexpected("a time such as 0, +0.1 or *")

    def time_range(self, kind: ast.TimeKind, start: float, first: Token) -> ast.Time:
        end = self.seconds()
        if end < start:
            raise self.error("time range is backwards", first)
        return ast.Time(kind, start, end)

    # -- packets --------------------------------------------------------------------------------------

    def packet(self, line: int, time: ast.Time) -> ast.PacketEvent | ast.IcmpPacketEvent:
        direction = self.take().text
        ip: dict[str, object] = {}
        if self.peek().is_char("[") or self.peek().is_char("("):
            ip = self.ip_info()
        token = self.peek()
        if token.is_word("ipv4", "ipv6", "gre", "GREv0", "mpls"):
            raise self.error(f"encapsulated packets ('{token.text}') are not supported", token)
        if token.is_word("encap"):
            raise self.error("PSP encapsulation is not supported", token)
        if token.is_word("udp"):
            raise self.error(f"{token.text} packets are not supported (TCP only)", token)
        if token.kind == INT and self.peek(1).is_char(">"):
            raise self.error("explicit port numbers on packets are not supported", token)
        if ip.get("ecn") == "ect01" and direction != ">":
            raise self.error("[ect01] can only be used with outbound packets", token)
        if token.is_word("icmp"):
            self.take()
            return self.icmp(line, time, direction, ip)
        flags = self.flags()
        seq_start, seq_end, seq_len = self.seq()
        ack = window = urg = None
        if self.peek().is_word("ack"):
            self.take()
            ack = self.expect_int("ack sequence number", _U32)
        if self.peek().is_word("win"):
            self.take()
            window = self.expect_int("window", _U16)
        if self.peek().is_word("urg"):
            self.take()
            urg = self.expect_int("urgent pointer", _U16)
        options: list[ast.TcpOption] | None = []
        if self.peek().is_char("<"):
            options = self.tcp_options(direction)
        if self.peek().is_char("{"):
            raise self.error("packet fuzzing {...} is not supported")
        return ast.PacketEvent(
            line=line, time=time, direction="<" if direction == "<" else ">", flags=flags,
            seq_start=seq_start, seq_end=seq_end, seq_len=seq_len, ack=ack, window=window, urg=urg,
            options=options, ecn=_opt_str(ip.get("ecn")), tos=_opt_int(ip.get("tos")),
            ttl=_opt_int(ip.get("ttl")), flowlabel=_opt_int(ip.get("flowlabel")),
        )

    def icmp(self, line: int, time: ast.Time, direction: str, ip: dict[str, object]) -> ast.IcmpPacketEvent:
        """The rest of an ICMP line after ``icmp``: parser.y's icmp_packet_spec."""
        type_token = self.peek()
        if not self.plain_word(type_token):
            raise self.unexpected("an ICMP type such as unreachable or packet_too_big", type_token)
        self.take()
        code = None
        if self.plain_word(self.peek()):
            code = self.take().text
        mtu = echo_id = None
        if self.peek().is_word("mtu"):
            self.take()
            mtu = self.expect_int("ICMP MTU", _U32)
        if self.peek().is_word("id"):
            self.take()
            echo_id = self.expect_int("ICMP echo id", _U16)
        protocol: ast.EchoedProtocol = "tcp"
        seq_start = seq_end = seq_len = 0
        if self.accept_char("["):
            if self.peek().is_word("udp", "raw"):
                protocol = "udp" if self.take().text == "udp" else "raw"
                self.expect_char("(")
                seq_len = self.expect_int(f"{protocol} payload length", _U16)
                self.expect_char(")")
            elif self.peek().kind in (INT, HEX):
                seq_start, seq_end, seq_len = self.seq()
            else:
                raise self.unexpected("the quoted packet: start:end(length), udp (N) or raw (N)")
            self.expect_char("]")
        return ast.IcmpPacketEvent(
            line=line, time=time, direction="<" if direction == "<" else ">", icmp_type=type_token.text,
            icmp_code=code, mtu=mtu, echo_id=echo_id, echoed_protocol=protocol, seq_start=seq_start,
            seq_end=seq_end, seq_len=seq_len, ecn=_opt_str(ip.get("ecn")), tos=_opt_int(ip.get("tos")),
            ttl=_opt_int(ip.get("ttl")), flowlabel=_opt_int(ip.get("flowlabel")),
        )

    @staticmethod
    def plain_word(token: Token) -> bool:
        """A WORD in parser.y's sense: not one of lexer.l's reserved words."""
        return token.kind == WORD and token.text not in KEYWORDS

    def ip_info(self) -> dict[str, object]:
        closer = "]" if self.take().text == "[" else ")"
        info: dict[str, object] = {}
        while True:
            token = self.take()
            if token.is_word(*ECN_WORDS):
                key, value = "ecn", token.text
            elif token.is_word("tos"):
                key, value = "tos", self.expect_int("tos value", _U8)
            elif token.is_word("ttl"):
                key, value = "ttl", self.expect_int("ttl value", _U8)
            elif token.is_word("flowlabel"):
                key, value = "flowlabel", self.expect_int("flowlabel value", 0xF_FFFF)
            else:
                raise self.unexpected("ect0, ect1, ce, noecn, ect01, tos, ttl or flowlabel", token)
            if key in info:
                raise self.error(f"{key} given twice", token)
            info[key] = value
            if self.accept_char(closer):
                return info
            self.expect_char(",")

    def flags(self) -> str:
        token = self.peek()
        if token.is_char(".") or token.is_char("-"):
            self.take()
            return token.text
        if token.kind == WORD:
            bad = sorted({c for c in token.text if c not in TCP_FLAG_LETTERS})
            if bad:
                raise self.error(f"bad flags '{token.text}'", token)
            self.take()
            if self.peek().kind == FLOAT and self.peek().text.startswith("."):
                raise self.error("AccECN ACE counters in flags are not supported")
            return token.text + "." if self.accept_char(".") else token.text
        if token.kind == FLOAT and token.text.startswith("."):
            raise self.error("AccECN ACE counters in flags are not supported", token)
        raise self.unexpected(f"TCP flags (letters {TCP_FLAG_LETTERS}, '.' or '-')", token)

    def seq(self) -> tuple[int, int, int]:
        start_token = self.peek()
        start = self.expect_int("start sequence number", _U32)
        self.expect_char(":")
        end = self.expect_int("end sequence number", _U32)
        self.expect_char("(")
        length = self.expect_int("payload length", _U16)
        self.expect_char(")")
        if end != start + length:
            raise self.error(
                f"inconsistent sequence numbers and payload length: {start}:{end}({length})", start_token)
        return start, end, length

    def tcp_options(self, direction: str) -> list[ast.TcpOption] | None:
        opener = self.take()
        if self.peek().kind == ELLIPSIS:
            self.take()
            self.expect_char(">")
            if direction != ">":
                raise self.error("<...> for TCP options can only be used with outbound packets", opener)
            return None
        options: list[ast.TcpOption] = [self.tcp_option()]
        while self.accept_char(","):
            options.append(self.tcp_option())
        if not self.peek().is_char(">"):
            raise self.unexpected("',' or '>' in the TCP option list")
        self.take()
        if sum(_option_size(option) for option in options) > 40:
            raise self.error("TCP option list too long (more than 40 bytes)", opener)
        return options

    def tcp_option(self) -> ast.TcpOption:
        token = self.take()
        if token.kind != WORD:
            raise self.unexpected("a TCP option (mss, nop, eol, sackOK, sack, TS, wscale, FO)", token)
        name = token.text
        if name == "nop":
            return ("NOP", None)
        if name == "eol":
            return ("EOL", None)
        if name == "mss":
            return ("MSS", self.expect_int("mss value", _U16))
        if name == "wscale":
            return ("WScale", self.expect_int("window scale shift count", _U8))
        if name == "sackOK":
            return ("SAckOK", b"")
        if name == "sack":
            edges: list[int] = []
            while self.peek().kind in (INT, HEX) and self.peek(1).is_char(":"):
                edges.append(self.expect_int("SACK left edge", _U32))
                self.take()
                edges.append(self.expect_int("SACK right edge", _U32))
            if not edges:
                raise self.unexpected("a SACK block left:right")
            return ("SAck", tuple(edges))
        if name == "TS":
            self.expect_word("val")
            val = self.expect_int("TS val", _U32)
            self.expect_word("ecr")
            return ("Timestamp", (val, self.expect_int("TS ecr", _U32)))
        if name in ("FO", "FOEXP"):
            cookie = b""
            if self.peek().kind in (WORD, INT):
                cookie = self.hex_blob(self.take(), "TCP fast open cookie")
            if name == "FO":
                return (ast.TCPOPT_FASTOPEN, cookie)
            return (ast.TCPOPT_EXP, ast.TCPOPT_FASTOPEN_MAGIC + cookie)
        if name == "md5":
            if self.peek().kind not in (WORD, INT):
                raise self.unexpected("an MD5 digest in hex")
            digest_token = self.take()
            digest = self.hex_blob(digest_token, "TCP MD5 digest")
            if len(digest) > _MD5_DIGEST_LEN:
                raise self.error(f"TCP MD5 digest longer than {_MD5_DIGEST_LEN} bytes", digest_token)
            return (ast.TCPOPT_MD5SIG, digest)
        if name in ("ECN", "e0b", "e1b", "ceb"):
            raise self.error("AccECN TCP options are not supported", token)
        raise self.error(f"unknown TCP option '{name}'", token)

    def hex_blob(self, token: Token, what: str) -> bytes:
        text = token.raw or token.text
        if len(text) % 2:
            raise self.error(f"{what} has an odd number of hex digits", token)
        if not all(c in string.hexdigits for c in text):  # bytes.fromhex() would also skip spaces
            raise self.error(f"{what} '{text}' is not a hex string", token)
        return bytes.fromhex(text)

    # -- system calls ---------------------------------------------------------------------------------

    def syscall(self, line: int, time: ast.Time) -> ast.SyscallEvent:
        name = self.take().text
        self.expect_char("(")
        args = self.expr_list(")")
        self.expect_char("=")
        result = self.expr()
        errno = errno_text = note = None
        if self.peek().kind == WORD:
            errno = self.take().text
            if self.peek().is_char("("):
                errno_text = self.note()
        elif self.peek().is_char("("):
            note = self.note()
        return ast.SyscallEvent(line=line, time=time, name=name, args=args, result=result,
                                errno=errno, errno_text=errno_text, note=note)

    def note(self) -> str:
        """The text of ``( ... )`` after a result, whitespace collapsed: strerror text or a remark."""
        opener = self.take()
        nesting = 1
        while True:
            token = self.take()
            if token.kind == EOF:
                raise self.error("unterminated '(' note", opener)
            if token.is_char("("):
                nesting += 1
            elif token.is_char(")"):
                nesting -= 1
                if nesting == 0:
                    return " ".join(self.text[opener.end:token.start].split())

    def expr_list(self, closer: str) -> list[ast.Expr]:
        """Comma-separated expressions up to and including ``closer``."""
        items: list[ast.Expr] = []
        if self.accept_char(closer):
            return items
        items.append(self.expr())
        while self.accept_char(","):
            items.append(self.expr())
        if not self.peek().is_char(closer):
            raise self.unexpected(f"',' or '{closer}'")
        self.take()
        return items

    def expr(self) -> ast.Expr:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise self.error("expression nested too deeply")
        try:
            value = self.primary()
            while self.accept_char("|"):
                value = ast.Binary("|", value, self.primary())
            return value
        finally:
            self.depth -= 1

    def primary(self) -> ast.Expr:
        token = self.take()
        if token.kind == ELLIPSIS:
            return ast.EllipsisExpr()
        if token.kind in (INT, HEX):
            return ast.Int(self.integer(token), hex=token.kind == HEX)
        if token.kind == STRING:
            text = token.text
            while self.peek().kind == STRING:  # "abc" "def": C-style concatenation
                text += self.take().text
            truncated = self.peek().kind == ELLIPSIS
            if truncated:
                self.take()
            return ast.Str(text, truncated)
        if token.kind == WORD:
            target: ast.Word | ast.Call = ast.Word(token.text)
            if self.accept_char("("):
                target = ast.Call(token.text, tuple(self.expr_list(")")))
            if self.accept_char("="):
                return ast.Assign(target, self.expr())
            return target
        if token.is_char("["):
            return ast.ListExpr(tuple(self.expr_list("]")))
        if token.is_char("{"):
            return ast.Struct(tuple(self.expr_list("}")))
        if token.is_char("&"):
            raise self.error("'&' (address-of) is not part of the dialect; write the value itself", token)
        raise self.unexpected("an expression", token)


def _option_size(option: ast.TcpOption) -> int:
    """Bytes the option takes on the wire (RFC 9293 §3.2, RFC 7323, RFC 2018, RFC 7413)."""
    name, value = option
    if name in ("NOP", "EOL"):
        return 1
    sizes = {"MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10}
    if name in sizes:
        return sizes[name]
    if name == "SAck":
        return 2 + 4 * len(value)
    return 2 + len(value)


def _strtol(text: str) -> int | None:
    """``text`` as C's strtol(text, &end, 0) reads it, or None unless it consumes the whole text.

    packetdrill's lexer turns a symbol whose value reads this way into an integer; like it, the
    saturated values LONG_MIN and LONG_MAX count as "not a number". An empty value reads as 0.
    """
    if text == "":
        return 0
    match = _C_INTEGER.fullmatch(text)
    if match is None:
        return None
    sign, hex_digits, octal_digits, decimal_digits = match.groups()
    if hex_digits is not None:
        value = int(hex_digits, 16)
    elif octal_digits is not None:
        value = int(octal_digits, 8)
    else:
        value = int(decimal_digits)
    if sign == "-":
        value = -value
    return value if -_LONG_MAX <= value < _LONG_MAX else None


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
