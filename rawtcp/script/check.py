"""Check a script without running it: no root, no namespaces, no network.

check_script() parses a script and then judges what packetdrill only finds out once it runs (or what
depends on the IP version, which the parser does not know): option names and values, the first
event's time, absolute times that go backward, system calls the runner cannot make, and ICMP names
and MTUs, which mean different things over ICMPv4 and ICMPv6. Every problem is one line in
packetdrill's ``file:line: message`` form; an empty list means the script looks runnable.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from rawtcp.script import ast
from rawtcp.script.errors import ScriptError
from rawtcp.script.parser import parse_file

IP_VERSIONS = ("ipv4", "ipv4-mapped-ipv6", "ipv6")

# packetdrill's options (config.c), and whether each takes a value.
OPTIONS: dict[str, bool] = {
    "ip_version": True, "bind_port": True, "code_command": True, "code_format": True, "code_sockopt": True,
    "connect_port": True, "remote_ip": True, "local_ip": True, "gateway_ip": True, "netmask_ip": True,
    "speed": True, "mss": True, "mtu": True, "init_scripts": True, "tolerance_usecs": True,
    "tolerance_percent": True, "wire_client": False, "wire_server": False, "wire_server_ip": True,
    "wire_server_at": True, "wire_server_port": True, "wire_client_dev": True, "wire_server_dev": True,
    "so_filename": True, "so_flags": True, "tcp_ts_ecr_scaled": False, "tcp_ts_tick_usecs": True,
    "strict_segments": False, "non_fatal": True, "dry_run": False, "is_anyip": False, "send_omit_free": False,
    "psp_udp_port": True, "debug": False, "define": True, "verbose": False,
}

# Numeric options: (lowest, highest) accepted, as config.c's process_option() bounds them.
_INT_OPTIONS: dict[str, tuple[int, int]] = {
    "bind_port": (1, 0xFFFF), "connect_port": (1, 0xFFFF), "wire_server_port": (1, 0xFFFF),
    "psp_udp_port": (1, 0xFFFF), "mss": (1, 2**31 - 1), "mtu": (0, 2**31 - 1), "speed": (0, 0xFFFF_FFFF),
    "tolerance_usecs": (1, 2**63 - 1), "tcp_ts_tick_usecs": (0, 1_000_000),
}
_ADDRESS_OPTIONS = ("local_ip", "remote_ip", "gateway_ip", "wire_server_ip", "wire_server_at")

# ICMP names as packetdrill's icmp_packet.c knows them: type name -> (type byte, code name -> byte).
_ICMPV4_UNREACHABLE = {
    "net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2, "port_unreachable": 3,
    "frag_needed": 4, "source_route_failed": 5, "net_unknown": 6, "host_unknown": 7,
    "source_host_isolated": 8, "net_prohibited": 9, "host_prohibited": 10, "net_unreachable_for_tos": 11,
    "host_unreachable_for_tos": 12, "packet_filtered": 13, "precedence_violation": 14,
    "precedence_cutoff": 15,
}
ICMPV4_TYPES: dict[str, tuple[int, dict[str, int] | None]] = {
    "echo_reply": (0, None), "unreachable": (3, _ICMPV4_UNREACHABLE), "source_quench": (4, None),
    "redirect": (5, None), "echo_request": (8, None), "time_exceeded": (11, None),
    "parameter_problem": (12, None), "timestamp_request": (13, None), "timestamp_reply": (14, None),
    "information_request": (15, None), "information_reply": (16, None), "address_mask_request": (17, None),
    "address_mask_reply": (18, None),
}
ICMPV6_TYPES: dict[str, tuple[int, dict[str, int] | None]] = {
    "unreachable": (1, {"net_unreachable": 0, "no_route": 0, "admin_prohibited": 1, "not_neighbour": 2,
                        "address_unreachable": 3, "port_unreachable": 4}),
    "packet_too_big": (2, None),
    "time_exceeded": (3, {"exceeded_hop_limit": 0, "exceeded_frag_time": 1}),
    "parameter_problem": (4, {"header_field": 0, "unknown_next_header": 1, "unknown_option": 2}),
    "echo_request": (128, None), "echo_reply": (129, None),
}
_ICMP_DEST_UNREACH, _ICMP_FRAG_NEEDED, _ICMPV6_PKT_TOOBIG = 3, 4, 2

# How check_script()'s helpers report: (line, or None for the script as a whole; message).
_Report = Callable[[int | None, str], None]


def wire_is_ipv6(ip_version: str) -> bool:
    """Whether packets on the wire are IPv6: ipv4-mapped-ipv6 sockets still speak IPv4 on the wire."""
    return ip_version == "ipv6"


def icmp_type_code(icmp_type: str, icmp_code: str | None, ipv6: bool) -> tuple[int, int]:
    """The (type, code) bytes for names as a script writes them, over ICMPv6 if ``ipv6``.

    Follows packetdrill's parse_icmp_type_and_code(): a table name, or tcpdump's ``type_N``/``code_N``;
    a missing code is 0; a code name only means something for a type with a code table.
    ValueError carries packetdrill's message (``bad ICMP type ...``/``bad ICMP code ...``).
    """
    table = ICMPV6_TYPES if ipv6 else ICMPV4_TYPES
    type_byte, codes = -1, None
    numbered = re.match(r"type_([+-]?[0-9]+)", icmp_type)
    if numbered is not None:
        type_byte = int(numbered.group(1))
    elif icmp_type in table:
        type_byte, codes = table[icmp_type]
    if not 0 <= type_byte <= 0xFF:
        raise ValueError(f"bad ICMP type {icmp_type}")
    if icmp_code is None:
        return type_byte, 0
    code_byte = -1
    numbered = re.match(r"code_([+-]?[0-9]+)", icmp_code)
    if numbered is not None:
        code_byte = int(numbered.group(1))
    elif codes is not None:
        code_byte = codes.get(icmp_code, -1)
    if not 0 <= code_byte <= 0xFF:
        raise ValueError(f"bad ICMP code {icmp_code}")
    return type_byte, code_byte


def icmp_problems(event: ast.IcmpPacketEvent, ip_version: str) -> list[str]:
    """What packetdrill's new_icmp_packet() would refuse in ``event`` for this IP version."""
    ipv6 = wire_is_ipv6(ip_version)
    try:
        type_byte, code_byte = icmp_type_code(event.icmp_type, event.icmp_code, ipv6)
    except ValueError as exc:
        return [str(exc)]
    if event.mtu is None:
        return []
    if ipv6:
        if (type_byte, code_byte) != (_ICMPV6_PKT_TOOBIG, 0):
            return ["ICMPv6 MTU is only valid for packet_too_big-0"]
        if event.mtu > 0xFFFF_FFFF:
            return ["ICMPv6 MTU out of 32-bit range"]
        return []
    if (type_byte, code_byte) != (_ICMP_DEST_UNREACH, _ICMP_FRAG_NEEDED):
        return ["ICMPv4 MTU is only valid for unreachable-frag_needed"]
    if event.mtu > 0xFFFF:
        return ["ICMPv4 MTU out of 16-bit range"]
    return []


def check_script(path: str | Path, defines: Mapping[str, str] | None = None, ip_version: str | None = None,
                 supported: Collection[str] | None = None, *,
                 overrides: Collection[str] = ()) -> list[str]:
    """Problems that would stop ``path`` from running, one ``file:line: message`` line each.

    ``defines`` are the -D symbols; ``ip_version`` is the command line's (it overrides the script's
    --ip_version, as packetdrill's command line does; None leaves the script's, else ipv4).
    ``supported``: the system calls the runner can make (default rawtcp.script.syscalls.SUPPORTED).
    ``overrides``: names of options the command line also sets (run_all.py passes --local_ip and
    friends): the script's values for those are not judged against the IP version.
    """
    name = str(path)
    if ip_version is not None and ip_version not in IP_VERSIONS:
        return [str(ScriptError(name, None, f"bad --ip_version: {ip_version}"))]
    try:
        script = parse_file(path, defines)
    except ScriptError as exc:
        return [str(exc)]
    if supported is None:
        # Imported late: the runner's module pulls in sockets and tables this check does not need.
        from rawtcp.script.syscalls import SUPPORTED

        supported = SUPPORTED
    problems: list[str] = []

    def report(line: int | None, message: str) -> None:
        problems.append(str(ScriptError(name, line, message)))

    version = ip_version or script.options.get("ip_version") or "ipv4"
    # With no IP version from either the caller or the script, packetdrill picks the host's family:
    # an address can't be held to one then.
    guessed = ip_version is None and "ip_version" not in script.options
    for option in script.option_list:
        for message in _option_problems(option, version, option.name in overrides or guessed):
            report(option.line, message)
    if version not in IP_VERSIONS:
        return problems  # already reported on the option line; ICMP names can't be judged
    if not script.events:
        report(None, "script has no events")
    _check_times(script.events, report)
    for event in script.events:
        if isinstance(event, ast.SyscallEvent) and event.name not in supported:
            report(event.line, f"system call '{event.name}' is not supported")
        elif isinstance(event, ast.IcmpPacketEvent):
            for message in icmp_problems(event, version):
                report(event.line, message)
    return problems


def _check_times(events: list[ast.AnyEvent], report: _Report) -> None:
    """packetdrill's get_next_event(): the first event at 0, absolute times never going backward."""
    if not events:
        return
    first = events[0]
    if first.time.kind != "any" and first.time.start_usecs != 0:
        report(first.line, "first event should be at time 0")
    for previous, event in itertools.pairwise(events):
        if previous.time.kind == "absolute" and event.time.kind == "absolute" \
                and event.time.start_usecs < previous.time.start_usecs:
            report(event.line, f"time goes backward in script from {previous.time.start_usecs} usec "
                               f"to {event.time.start_usecs} usec")


def _option_problems(option: ast.Option, version: str, family_free: bool) -> list[str]:
    """What packetdrill's parse_script_options()/process_option() would refuse in one option line.

    ``family_free``: don't hold an address to ``version``'s family (the command line replaces it,
    or nobody chose the version).
    """
    name, value = option.name, option.value
    takes_value = OPTIONS.get(name)
    if takes_value is None:
        return [f"option '{name}' unknown"]
    if value is not None and not takes_value:
        return [f"option '{name}' forbids an argument"]
    if value is None:
        return [f"option '{name}' requires an argument"] if takes_value else []
    bad = [f"bad --{name}: {value}"]
    if name == "ip_version":
        return [] if value in IP_VERSIONS else bad
    if name in _INT_OPTIONS:
        low, high = _INT_OPTIONS[name]
        return [] if re.fullmatch(r"[+-]?[0-9]+", value) and low <= int(value) <= high else bad
    if name == "tolerance_percent":
        try:
            return [] if 0.0 <= float(value) <= 100.0 else bad
        except ValueError:
            return bad
    if name == "define":
        return [f"bad definition: {value}"] if value.find("=") < 1 else []
    if name in _ADDRESS_OPTIONS:
        return _address_problems(name, value, version, family_free)
    if name == "netmask_ip":
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{value}")
        except ValueError:
            return bad
    return []


def _address_problems(name: str, value: str, version: str, family_free: bool) -> list[str]:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return [f"bad --{name}: {value}"]
    want = 6 if wire_is_ipv6(version) else 4
    if family_free or address.version == want or name.startswith("wire_server"):
        return []
    return [f"--{name}={value} is not an IPv{want} address (--ip_version={version})"]

