"""check_script(): what packetdrill would refuse before or while running, found without running."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rawtcp.script.ast import IcmpPacketEvent, Time
from rawtcp.script.check import check_script, icmp_problems, icmp_type_code, wire_is_ipv6

CALLS = frozenset({"socket", "bind", "listen", "accept", "close", "connect", "write", "read"})

SERVER = """\
--tolerance_usecs=10000
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 1000 <mss 1460,FOEXP TFO_COOKIE>
   +0 > S. 0:0(0) ack 1 <...>
  +.1 < icmp unreachable CODE [0:0(0)]
"""

COOKIE = {"TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable"}


def write(tmp_path: Path, text: str, name: str = "s.pkt") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str, ip_version: str | None = "ipv4", **kwargs) -> list[str]:
    path = write(tmp_path, text)
    found = check_script(path, kwargs.pop("defines", None), ip_version, kwargs.pop("supported", CALLS), **kwargs)
    for line in found:
        assert "\n" not in line and line.startswith(f"{path}")
    return [line.removeprefix(f"{path}") for line in found]


def test_a_good_script_has_no_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, SERVER, defines=COOKIE) == []
    assert problems(tmp_path, SERVER, "ipv4-mapped-ipv6", defines=COOKIE) == []  # ICMPv4 on the wire


def test_icmp_names_depend_on_the_wire(tmp_path: Path) -> None:
    # run_all.py's ipv6 variant defines no CODE, and ICMPv6 has no host_unreachable: packetdrill refuses.
    assert problems(tmp_path, SERVER, "ipv6", defines={"TFO_COOKIE": "c1d1e9742a47a9bc"}) == [
        ":7: bad ICMP code CODE"]
    assert problems(tmp_path, SERVER, "ipv6", defines=COOKIE) == [":7: bad ICMP code host_unreachable"]


def test_parse_errors_come_back_as_one_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "0 close(3) = 0\n+0 > Z 0:0(0)\n") == [":2: bad flags 'Z'"]
    assert check_script(tmp_path / "missing.pkt", supported=CALLS)[0].endswith("cannot read script: No such file "
                                                                                "or directory")


def test_bad_ip_version_argument(tmp_path: Path) -> None:
    path = write(tmp_path, "0 close(3) = 0\n")
    assert check_script(path, None, "ipv5", CALLS) == [f"{path}: bad --ip_version: ipv5"]


@pytest.mark.parametrize(("option", "message"), [
    ("--bogus=1", "option 'bogus' unknown"),
    ("--strict_segments=1", "option 'strict_segments' forbids an argument"),
    ("--mss", "option 'mss' requires an argument"),
    ("--ip_version=ipv5", "bad --ip_version: ipv5"),
    ("--mss=0", "bad --mss: 0"),
    ("--mss=abc", "bad --mss: abc"),
    ("--mtu=-1", "bad --mtu: -1"),
    ("--bind_port=70000", "bad --bind_port: 70000"),
    ("--tolerance_usecs=0", "bad --tolerance_usecs: 0"),
    ("--tolerance_percent=101", "bad --tolerance_percent: 101"),
    ("--tolerance_percent=x", "bad --tolerance_percent: x"),
    ("--tcp_ts_tick_usecs=2000000", "bad --tcp_ts_tick_usecs: 2000000"),
    ("--define=\"=x\"", "bad definition: =x"),
    ("--local_ip=300.1.2.3", "bad --local_ip: 300.1.2.3"),
    ("--gateway_ip=host", "bad --gateway_ip: host"),
    ("--netmask_ip=255.0.255.0", "bad --netmask_ip: 255.0.255.0"),
    ("--ip_version=ipv4\n--local_ip=fd::1", "--local_ip=fd::1 is not an IPv4 address (--ip_version=ipv4)"),
])
def test_option_problems(tmp_path: Path, option: str, message: str) -> None:
    text = f"// options\n{option}\n0 close(3) = 0\n"
    line = option.count("\n") + 2
    assert problems(tmp_path, text, None) == [f":{line}: {message}"]


def test_good_options(tmp_path: Path) -> None:
    text = """\
        --ip_version=ipv6     // the script's choice
        --local_ip=fd3d:0a0b:17d6::1
        --remote_ip=fd3d:fa7b:d17d::1
        --gateway_ip=fd3d:0a0b:17d6:8888::1
        --mtu=1520
        --mss=1000
        --tolerance_percent=0.5
        --strict_segments
        --tcp_ts_ecr_scaled
        --send_omit_free
        --define=X=1
        --non_fatal=packet
        0 close(3) = 0
    """
    assert problems(tmp_path, text, None) == []


def test_command_line_version_and_overrides_decide_address_families(tmp_path: Path) -> None:
    text = "--local_ip=192.168.0.2\n--remote_ip=10.248.0.2\n0 close(3) = 0\n"
    assert problems(tmp_path, text, "ipv6") == [
        ":1: --local_ip=192.168.0.2 is not an IPv6 address (--ip_version=ipv6)",
        ":2: --remote_ip=10.248.0.2 is not an IPv6 address (--ip_version=ipv6)"]
    # run_all.py passes addresses on the command line, which replace the script's.
    assert problems(tmp_path, text, "ipv6", overrides={"local_ip", "remote_ip"}) == []
    assert problems(tmp_path, text, "ipv4-mapped-ipv6") == []
    # Nobody chose a version: packetdrill would follow the host's address family.
    assert problems(tmp_path, "--local_ip=fd::1\n0 close(3) = 0\n", None) == []


def test_script_ip_version_applies_without_a_command_line_one(tmp_path: Path) -> None:
    text = "--ip_version=ipv6\n0 close(3) = 0\n+0 < icmp packet_too_big mtu 1400 [0:1440(1440)]\n"
    assert problems(tmp_path, text, None) == []
    assert problems(tmp_path, text, "ipv4") == [":3: bad ICMP type packet_too_big"]


def test_first_event_must_be_at_zero(tmp_path: Path) -> None:
    assert problems(tmp_path, "1 close(3) = 0\n") == [":1: first event should be at time 0"]
    assert problems(tmp_path, "// c\n+0.5 close(3) = 0\n") == [":2: first event should be at time 0"]
    assert problems(tmp_path, "+0 close(3) = 0\n") == []
    assert problems(tmp_path, "// nothing\n") == [": script has no events"]


def test_absolute_time_going_backward(tmp_path: Path) -> None:
    text = "0 close(3) = 0\n0.5 close(4) = 0\n0.2 close(5) = 0\n"
    assert problems(tmp_path, text) == [":3: time goes backward in script from 500000 usec to 200000 usec"]
    # packetdrill only compares two absolute times in a row; a relative event in between resets that.
    assert problems(tmp_path, "0 close(3) = 0\n0.5 close(4) = 0\n+0 close(5) = 0\n0.2 close(6) = 0\n") == []


def test_unsupported_system_calls(tmp_path: Path) -> None:
    text = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 epoll_create(1) = 4\n+0 splice(3, 4) = 0\n"
    assert problems(tmp_path, text) == [":2: system call 'epoll_create' is not supported",
                                        ":3: system call 'splice' is not supported"]
    assert problems(tmp_path, text, supported=CALLS | {"epoll_create", "splice"}) == []


def test_default_supported_set_comes_from_the_runner(tmp_path: Path) -> None:
    path = write(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 frobnicate(3) = 0\n")
    assert check_script(path) == [f"{path}:2: system call 'frobnicate' is not supported"]


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    text = "--bogus\n1 nosuch(3) = 0\n0.5 < icmp unreachable frag_needed mtu 70000\n"
    assert problems(tmp_path, text) == [
        ":1: option 'bogus' unknown", ":2: first event should be at time 0",
        ":3: time goes backward in script from 1000000 usec to 500000 usec",
        ":2: system call 'nosuch' is not supported", ":3: ICMPv4 MTU out of 16-bit range"]


# --------------------------------------------------------------------------------------------------
# ICMP names and MTUs per IP version.


@pytest.mark.parametrize(("names", "ipv6", "result"), [
    (("unreachable", None), False, (3, 0)),
    (("unreachable", "host_unreachable"), False, (3, 1)),
    (("unreachable", "frag_needed"), False, (3, 4)),
    (("unreachable", "precedence_cutoff"), False, (3, 15)),
    (("echo_request", None), False, (8, 0)),
    (("unreachable", "port_unreachable"), True, (1, 4)),
    (("unreachable", "no_route"), True, (1, 0)),
    (("packet_too_big", None), True, (2, 0)),
    (("time_exceeded", "exceeded_frag_time"), True, (3, 1)),
    (("parameter_problem", "unknown_option"), True, (4, 2)),
    (("echo_reply", None), True, (129, 0)),
    (("type_42", "code_7"), False, (42, 7)),
    (("type_200", "code_0"), True, (200, 0)),
])
def test_icmp_type_code(names: tuple[str, str | None], ipv6: bool, result: tuple[int, int]) -> None:
    assert icmp_type_code(*names, ipv6) == result


@pytest.mark.parametrize(("names", "ipv6", "message"), [
    (("packet_too_big", None), False, "bad ICMP type packet_too_big"),
    (("source_quench", None), True, "bad ICMP type source_quench"),
    (("type_300", None), False, "bad ICMP type type_300"),
    (("unreachable", "frag_needed"), True, "bad ICMP code frag_needed"),
    (("echo_request", "host_unreachable"), False, "bad ICMP code host_unreachable"),  # no code table
    (("unreachable", "code_256"), False, "bad ICMP code code_256"),
])
def test_icmp_type_code_errors(names: tuple[str, str | None], ipv6: bool, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        icmp_type_code(*names, ipv6)


def icmp_event(icmp_type: str, icmp_code: str | None, mtu: int | None) -> IcmpPacketEvent:
    return IcmpPacketEvent(line=1, time=Time("relative"), direction="<", icmp_type=icmp_type,
                           icmp_code=icmp_code, mtu=mtu)


@pytest.mark.parametrize(("event", "version", "found"), [
    (icmp_event("unreachable", "frag_needed", 1200), "ipv4", []),
    (icmp_event("unreachable", "frag_needed", 1200), "ipv4-mapped-ipv6", []),
    (icmp_event("unreachable", "host_unreachable", 1200), "ipv4",
     ["ICMPv4 MTU is only valid for unreachable-frag_needed"]),
    (icmp_event("unreachable", "frag_needed", 65536), "ipv4", ["ICMPv4 MTU out of 16-bit range"]),
    (icmp_event("packet_too_big", None, 1400), "ipv6", []),
    (icmp_event("packet_too_big", None, 70000), "ipv6", []),
    (icmp_event("unreachable", None, 1400), "ipv6", ["ICMPv6 MTU is only valid for packet_too_big-0"]),
    (icmp_event("packet_too_big", "code_1", 1400), "ipv6", ["ICMPv6 MTU is only valid for packet_too_big-0"]),
])
def test_icmp_problems(event: IcmpPacketEvent, version: str, found: list[str]) -> None:
    assert icmp_problems(event, version) == found


def test_wire_family() -> None:
    assert [wire_is_ipv6(v) for v in ("ipv4", "ipv4-mapped-ipv6", "ipv6")] == [False, False, True]
