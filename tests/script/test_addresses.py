"""rawtcp.script.addresses: packetdrill's addresses in a script's shell commands become the lab's."""

from __future__ import annotations

import ipaddress

import pytest

from rawtcp.script.addresses import SCRIPT_ADDRESSES, translate_command
from rawtcp.script.suite import IP_VERSIONS
from rawtcp.script.syscalls import PACKETDRILL_LOCAL_IPS, PACKETDRILL_REMOTE_IPS

V4 = ("198.18.0.2", "198.18.0.1")  # the lab's kernel and peer
V6 = ("2001:db8::2", "2001:db8::1")


def v4(command: str, local: set[str] | None = None) -> str:
    return translate_command(command, {"192.168.0.1"} if local is None else local, *V4)


def v6(command: str, local: set[str] | None = None) -> str:
    return translate_command(command, {"fd3d:a0b:17d6::1"} if local is None else local, *V6)


def test_script_addresses_cover_every_mode_and_match_the_executors() -> None:
    assert set(SCRIPT_ADDRESSES) == set(IP_VERSIONS)
    for mode, (local, remote) in SCRIPT_ADDRESSES.items():
        assert ipaddress.ip_address(local).version == ipaddress.ip_address(remote).version
        assert (ipaddress.ip_address(local).version == 6) == (mode == "ipv6")
        assert local in PACKETDRILL_LOCAL_IPS and remote in PACKETDRILL_REMOTE_IPS
    assert SCRIPT_ADDRESSES["ipv4"] == SCRIPT_ADDRESSES["ipv4-mapped-ipv6"]  # IPv4 on the wire


def test_route_change_towards_the_remote_via_a_next_hop() -> None:
    assert v4("ip route change 192.0.2.1 via 192.168.0.2 dev tun0 advmss 1460 mtu lock 1500") == \
        "ip route change 198.18.0.1 via 198.18.0.1 dev tun0 advmss 1460 mtu lock 1500"


def test_ipv6_route_change_with_upper_case_and_a_long_next_hop() -> None:
    out = v6("ip -6 route change 2001:DB8::1 via fd3d:fa7b:d17d:8888::0 dev tun0 advmss 1480 mtu lock 1520")
    assert out == "ip -6 route change 2001:DB8::1 via 2001:db8::1 dev tun0 advmss 1480 mtu lock 1520"


def test_local_address_becomes_the_kernels() -> None:
    assert v4("ping -c 1 192.168.0.1") == "ping -c 1 198.18.0.2"
    assert v4("ss -tn src 192.168.0.1") == "ss -tn src 198.18.0.2"
    assert v6("ip -6 addr show to fd3d:a0b:17d6::1") == "ip -6 addr show to 2001:db8::2"
    # another spelling of the same address is the same address
    assert v6("x fd3d:a0b:17d6:0:0::1") == "x 2001:db8::2"


def test_a_scripts_own_local_ip_is_the_kernels_too() -> None:
    assert v4("ping 10.0.0.7", {"10.0.0.7"}) == "ping 198.18.0.2"
    # outside packetdrill's ranges and not named as local: left alone
    assert v4("ping 10.0.0.7") == "ping 10.0.0.7"


def test_other_addresses_in_packetdrills_ranges_are_the_peer() -> None:
    assert v4("x 192.0.2.77 192.168.4.4 10.248.1.1") == "x 198.18.0.1 198.18.0.1 198.18.0.1"
    assert v6("x fd3d:fa7b:d17d::1 fd3d::9") == "x 2001:db8::1 2001:db8::1"


def test_the_labs_own_addresses_are_left_alone() -> None:
    assert v4("x 198.18.0.1 198.18.0.2") == "x 198.18.0.1 198.18.0.2"
    assert v6("x 2001:db8::1 2001:db8::2") == "x 2001:db8::1 2001:db8::2"


@pytest.mark.parametrize("command", [
    "sysctl -q net.ipv4.tcp_rmem=\"4096 87380 6291456\"",
    "tc qdisc replace dev tun0 root fq",
    "echo 1.2.3.4 8.8.8.8 ::1 fe80::1",  # outside packetdrill's ranges
    "date +%H:%M:%S; echo 12:30:45",  # times look like IPv6 words but are not addresses
    "ip link set dev tun0 address aa:bb:cc:dd:ee:ff",
    "cat /tmp/192.168.0.1.log /tmp/x192.0.2.1",  # inside a word or a file name
    "echo v1.192.0.2.1",
    "echo 192.0.2.300",  # not an address
    "",
])
def test_text_that_is_not_one_of_packetdrills_addresses_is_unchanged(command: str) -> None:
    assert v4(command) == command
    assert v6(command) == command


def test_prefix_lengths_keep_their_suffix() -> None:
    assert v4("ip addr add 192.168.0.1/16 dev tun0") == "ip addr add 198.18.0.2/16 dev tun0"


def test_every_occurrence_is_replaced() -> None:
    assert v4("a 192.0.2.1; b 192.0.2.1 && c 192.168.0.1") == "a 198.18.0.1; b 198.18.0.1 && c 198.18.0.2"
