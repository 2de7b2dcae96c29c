"""The parsed form of a packetdrill script: plain, immutable values the runner walks.

Names follow packetdrill's grammar (gtests/net/packetdrill/parser.y): a script is option lines, an
optional untimed init command, timed events (packet, system call, shell command, Python code) and an
optional untimed cleanup command. Nothing here resolves a symbol or touches the network: ``SOL_SOCKET``
stays the word ``SOL_SOCKET`` and ``...`` stays an ellipsis until the runner fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TimeKind = Literal["absolute", "relative", "any"]
Direction = Literal["<", ">"]
# scapy's option shapes, as rawtcp.core.segment uses them: ("MSS", 1000), ("NOP", None) ...
# Kinds without a scapy name are (kind, bytes after the length byte): (34, cookie) for ``FO``,
# (254, b"\xf9\x89" + cookie) for ``FOEXP``, (19, digest) for ``md5``.
TcpOption = tuple[Any, Any]
EchoedProtocol = Literal["tcp", "udp", "raw"]

TCPOPT_MD5SIG = 19  # RFC 2385
TCPOPT_FASTOPEN = 34  # RFC 7413
TCPOPT_EXP = 254  # RFC 6994 experimental kind, shared by TFO's pre-RFC form
TCPOPT_FASTOPEN_MAGIC = b"\xf9\x89"  # the ExID (RFC 6994) TFO used before kind 34 was assigned


def _usecs(seconds: float) -> int:
    # packetdrill truncates (s64)(secs * 1e6); rounding avoids 0.57 -> 569999 from binary floats.
    return round(seconds * 1_000_000)


@dataclass(frozen=True, slots=True)
class Time:
    """When an event happens, in seconds, exactly as written.

    ``absolute``: ``0.1``; ``relative``: ``+0.1``, an offset from the previous event's time;
    ``any``: ``*`` (outbound packets only). ``end`` is set for ranges (``+0~+0.2``, ``0.1~0.2``,
    outbound packets only) and for blocking system calls (``+0...0.2``, ``blocking`` True).
    For relative kinds ``end`` shares ``start``'s base (the previous event's time), as packetdrill's
    adjust_relative_event_times() does, so ``+.1...0.2`` means "from prev+0.1 until prev+0.2".
    """

    kind: TimeKind
    start: float = 0.0
    end: float | None = None
    blocking: bool = False

    @property
    def start_usecs(self) -> int:
        return _usecs(self.start)

    @property
    def end_usecs(self) -> int | None:
        return None if self.end is None else _usecs(self.end)

    @property
    def is_range(self) -> bool:
        return self.end is not None and not self.blocking


# ---------------------------------------------------------------------------------------------------
# Expressions: the arguments and results of system calls.


@dataclass(frozen=True, slots=True)
class Int:
    """An integer literal; ``hex`` remembers ``0x..`` spelling for messages."""

    value: int
    hex: bool = False


@dataclass(frozen=True, slots=True)
class Str:
    """A string literal, quotes stripped, escapes kept as written (as packetdrill's lexer does).

    ``truncated`` is packetdrill's ``"abc"...``: the buffer starts with ``value``.
    """

    value: str
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class EllipsisExpr:
    """``...``: "fill this in" (addresses, buffers) or "don't check"."""


@dataclass(frozen=True, slots=True)
class Word:
    """A symbolic name (``SOL_SOCKET``, ``O_NONBLOCK``, ``POLLIN`` ...), resolved by the runner."""

    name: str


@dataclass(frozen=True, slots=True)
class Call:
    """``htons(8080)``, ``inet_addr("192.0.2.1")``, ``msg_name(...)``."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Binary:
    """``lhs | rhs`` (bitwise OR), left-associative."""

    op: str
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True, slots=True)
class Assign:
    """``name=value`` inside a struct: ``fd=4``, ``sin_port=htons(8080)``, ``msg_iov(1)=[...]``."""

    target: Word | Call
    value: Expr

    @property
    def name(self) -> str:
        return self.target.name


@dataclass(frozen=True, slots=True)
class ListExpr:
    """``[1000]``, ``[]``, ``[{iov_base=..., iov_len=10}]``: an array or an int passed by pointer."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Struct:
    """``{fd=4, events=POLLIN}``, ``{..., 10}``: a C struct, named or positional members."""

    items: tuple[Expr, ...]

    @property
    def fields(self) -> dict[str, Expr]:
        """The named members (``name=value`` items), by name."""
        return {item.name: item.value for item in self.items if isinstance(item, Assign)}


Expr = Int | Str | EllipsisExpr | Word | Call | Binary | Assign | ListExpr | Struct


# ---------------------------------------------------------------------------------------------------
# Events.


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    line: int
    time: Time


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketEvent(Event):
    """``< S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>`` and its outbound twin.

    ``direction``: ``<`` the peer (rawtcp) sends it, ``>`` the kernel must send it.
    ``flags`` as written: letters from ``FSRPEWAU`` then ``.`` for ACK, or ``.`` alone, or ``-``
    for a segment with no flags. Sequence numbers are relative to each side's ISN.
    ``ack``/``window``/``urg`` are None when absent. ``options`` is None for ``<...>`` (don't check;
    outbound only) and ``[]`` when the line has no option list.
    IP-level bits: ``ecn`` is ``noecn``/``ect0``/``ect1``/``ce``/``ect01`` from ``[ect0]``;
    ``tos``, ``ttl``, ``flowlabel`` from ``[tos 0x..]``, ``[ttl N]``, ``[flowlabel 0x..]``.
    """

    direction: Direction
    flags: str
    seq_start: int
    seq_end: int
    seq_len: int
    ack: int | None = None
    window: int | None = None
    urg: int | None = None
    options: list[TcpOption] | None = field(default_factory=list)
    ecn: str | None = None
    tos: int | None = None
    ttl: int | None = None
    flowlabel: int | None = None

    @property
    def inbound(self) -> bool:
        """True for ``<``: a packet the peer injects into the kernel."""
        return self.direction == "<"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyscallEvent(Event):
    """``fn(args) = result [ERRNO (text)] [(note)]``.

    ``errno`` is the symbol (``EINPROGRESS``), ``errno_text`` the parenthesised strerror text,
    ``note`` a trailing parenthesised remark after a plain result.
    """

    name: str
    args: list[Expr]
    result: Expr
    errno: str | None = None
    errno_text: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandEvent(Event):
    """A timed backtick shell command (may span lines), run in the kernel's namespace."""

    command: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeEvent(Event):
    """A ``%{ ... }%`` Python block, leading/trailing spaces and tabs stripped as packetdrill does."""

    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpPacketEvent(Event):
    """``< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]`` and its outbound twin.

    ``icmp_type``/``icmp_code`` are the names as written (after -D substitution): ``unreachable``,
    ``packet_too_big``, ``host_unreachable``, ``type_3``/``code_4`` ...; ``icmp_code`` is None when
    absent (code 0). They are only resolved against ICMPv4 or ICMPv6 once the wire's IP version is
    known (rawtcp.script.check.icmp_type_code), as packetdrill does.
    ``mtu`` (``mtu N``) and ``echo_id`` (``id N``) are None when absent.
    The bracketed tail describes the packet the ICMP message quotes: ``[1:1461(1460)]`` is a TCP
    segment whose ``seq_start`` (relative to the kernel's ISN, as in packet lines) the runner puts in
    the quoted TCP header; ``[udp (N)]``/``[raw (N)]`` set ``echoed_protocol`` and ``seq_len`` N.
    Without brackets the quoted segment is TCP with sequence 0. ``ecn``/``tos``/``ttl``/``flowlabel``
    are the outer IP header's, as on PacketEvent.
    """

    direction: Direction
    icmp_type: str
    icmp_code: str | None = None
    mtu: int | None = None
    echo_id: int | None = None
    echoed_protocol: EchoedProtocol = "tcp"
    seq_start: int = 0
    seq_end: int = 0
    seq_len: int = 0
    ecn: str | None = None
    tos: int | None = None
    ttl: int | None = None
    flowlabel: int | None = None

    @property
    def inbound(self) -> bool:
        return self.direction == "<"


AnyEvent = PacketEvent | SyscallEvent | CommandEvent | CodeEvent | IcmpPacketEvent


@dataclass(frozen=True, slots=True)
class Command:
    """An untimed backtick command: the init command before the first event, or the cleanup after."""

    line: int
    command: str


@dataclass(frozen=True, slots=True)
class Option:
    """One ``--name[=value]`` line; ``value`` is None when written without ``=``."""

    line: int
    name: str
    value: str | None = None


@dataclass(slots=True)
class Script:
    path: str
    # name -> value ("" for a bare flag); the last line wins. option_list keeps every line in order.
    options: dict[str, str] = field(default_factory=dict)
    events: list[AnyEvent] = field(default_factory=list)
    init_commands: list[Command] = field(default_factory=list)
    cleanup_commands: list[Command] = field(default_factory=list)
    # -D symbols given to parse() plus the script's --define=NAME=value lines, already substituted.
    defines: dict[str, str] = field(default_factory=dict)
    option_list: list[Option] = field(default_factory=list)
