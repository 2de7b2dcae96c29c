"""Tokens of the packetdrill dialect, cut the way packetdrill's flex lexer (lexer.l) cuts them.

flex takes the longest match at each position and, on a tie, the earlier rule; we do the same over
the same rule order, so ``0x1f`` is a hex integer, ``1000`` an integer, ``1000abc`` a word,
``0...0.2`` is ``0`` ``...`` ``0.2`` and ``192.0.2.1`` an address. Keywords (``ack``, ``win`` ...)
stay words here: the parser knows where they mean something.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rawtcp.script.errors import ScriptError

# Token kinds.
ELLIPSIS = "ELLIPSIS"
OPTION = "OPTION"
FLOAT = "FLOAT"
INT = "INT"
HEX = "HEX"
WORD = "WORD"
STRING = "STRING"
BACKTICK = "BACKTICK"
CODE = "CODE"
IPV4 = "IPV4"
IPV6 = "IPV6"
CHAR = "CHAR"
EOF = "EOF"

_SKIP = "SKIP"

# lexer.l's reserved words: flex returns a keyword token for these, never WORD, so a -D symbol of the
# same name is not substituted and they cannot serve where the grammar wants a WORD (an ICMP code).
KEYWORDS = frozenset({
    "sa_family", "sin_port", "sin_addr", "msg_name", "msg_iov", "msg_flags", "msg_control", "cmsg_data",
    "cmsg_level", "cmsg_type", "ee_errno", "ee_origin", "ee_type", "ee_code", "ee_info", "ee_data", "scm_sec",
    "scm_nsec", "fd", "u32", "u64", "ptr", "events", "revents", "onoff", "linger", "htons", "ipv4", "ipv6",
    "icmp", "udp", "GREv0", "gre", "raw", "sum", "off", "key", "seq", "none", "checksum", "present", "encap",
    "psp", "spi", "mpls", "label", "tc", "ttl", "inet_addr", "inet6_addr", "ack", "eol", "ecr", "mss", "mtu",
    "nop", "sack", "sackOK", "md5", "TS", "FO", "FOEXP", "ECN", "e0b", "e1b", "ceb", "tos", "flowlabel",
    "flags", "Flags", "val", "win", "urg", "wscale", "ect01", "ect0", "ect1", "noecn", "ce", "id",
})

# lexer.l's IPv6 address forms. Every form needs "::" or eight groups, so sequence ranges such as
# 1:1001 and SACK blocks never look like addresses.
_SEG = "[0-9a-fA-F]{1,4}"
_V4 = r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"
_IPV6_FORMS = [
    "::",
    f"(?:{_SEG}:){{7}}{_SEG}",
    f"(?:{_SEG}:){{1,7}}:",
    f"(?:{_SEG}:){{1,6}}:{_SEG}",
    f"(?:{_SEG}:){{1,5}}(?::{_SEG}){{1,2}}",
    f"(?:{_SEG}:){{1,4}}(?::{_SEG}){{1,3}}",
    f"(?:{_SEG}:){{1,3}}(?::{_SEG}){{1,4}}",
    f"(?:{_SEG}:){{1,2}}(?::{_SEG}){{1,5}}",
    f"{_SEG}:(?::{_SEG}){{1,6}}",
    f":(?::{_SEG}){{1,7}}",
    f"::ffff:{_V4}",
    f"::ffff:0{{1,4}}:{_V4}",
    f"(?:{_SEG}:){{1,4}}:{_V4}",
]

# In lexer.l's order, which breaks ties between equally long matches.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (ELLIPSIS, re.compile(r"\.\.\.")),
    (OPTION, re.compile(r"--[A-Za-z0-9_]+")),
    (FLOAT, re.compile(r"-?[0-9]*\.[0-9]+")),
    (INT, re.compile(r"-?[0-9]+")),
    (HEX, re.compile(r"0x[0-9a-fA-F]+")),
    (WORD, re.compile(r"[A-Za-z0-9_]+")),
    (STRING, re.compile(r'"(?:\\.|[^"\\])*"', re.DOTALL)),
    (BACKTICK, re.compile(r"`(?:\\.|[^`\\])*`", re.DOTALL)),
    (CHAR, re.compile(r"[^ \t\r\n]")),
    # \r is whitespace too, so scripts saved with CRLF line ends still parse.
    (_SKIP, re.compile(r"[ \t\r\n]+")),
    (_SKIP, re.compile(r"//[^\n]*")),
    (_SKIP, re.compile(r"/\*.*?\*/", re.DOTALL)),
    (CODE, re.compile(r"%\{.*?\}%", re.DOTALL)),
    (IPV4, re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")),
    # flex matches the union of the forms at its longest; each form is tried on its own for that.
    *((IPV6, re.compile(form)) for form in _IPV6_FORMS),
]

# Openers whose closer may be far away: if the closer is missing, say so at the opener's line.
_UNTERMINATED = [("/*", "unterminated comment"), ("%{", "unterminated %{ }% code block"),
                 ('"', "unterminated string"), ("`", "unterminated backtick command")]


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # for STRING/BACKTICK/CODE: the contents, delimiters removed
    line: int
    start: int = 0  # offsets of the lexeme in the script text
    end: int = 0
    # For a word replaced by a -D/--define value: the value as defined, which a hex blob (a TFO cookie
    # such as 00112233) must read digit for digit even when the value also reads as an integer.
    raw: str = ""

    def is_char(self, char: str) -> bool:
        return self.kind == CHAR and self.text == char

    def is_word(self, *words: str) -> bool:
        return self.kind == WORD and self.text in words

    def describe(self) -> str:
        """How error messages name this token."""
        if self.kind == EOF:
            return "end of file"
        if self.kind == STRING:
            return f'string "{_short(self.text)}"'
        if self.kind == BACKTICK:
            return "backtick command"
        if self.kind == CODE:
            return "%{ }% code block"
        return f"token '{_short(self.text)}'"


def _short(text: str, limit: int = 30) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _strip_code(text: str) -> str:
    # packetdrill strips only spaces and tabs from both ends of a %{ }% snippet (lexer.l code()).
    return text[2:-2].strip(" \t")


def tokenize(text: str, path: str = "<script>") -> list[Token]:
    """Cut ``text`` into tokens, ending with one EOF token; ScriptError on unterminated constructs."""
    tokens: list[Token] = []
    pos = 0
    line = 1
    size = len(text)
    while pos < size:
        best_kind = ""
        best_end = pos
        for kind, pattern in _RULES:
            match = pattern.match(text, pos)
            if match is not None and match.end() > best_end:
                best_kind, best_end = kind, match.end()
        lexeme = text[pos:best_end]
        if best_kind == CHAR:
            for opener, message in _UNTERMINATED:
                if text.startswith(opener, pos):
                    raise ScriptError(path, line, message)
        if best_kind in (STRING, BACKTICK):
            tokens.append(Token(best_kind, lexeme[1:-1], line, pos, best_end))
        elif best_kind == CODE:
            tokens.append(Token(CODE, _strip_code(lexeme), line, pos, best_end))
        elif best_kind != _SKIP:
            tokens.append(Token(best_kind, lexeme, line, pos, best_end))
        line += lexeme.count("\n")
        pos = best_end
    tokens.append(Token(EOF, "", line, size, size))
    return tokens
