"""Address modes (packetdrill's --ip_version) and the mapping of script addresses onto the lab's."""

from __future__ import annotations

import socket

import pytest
from test_syscalls_support import call, loopback, ok

from rawtcp.script.syscalls import Addresses, Executor


@pytest.mark.parametrize(("mode", "family"), [("ipv4", socket.AF_INET), ("ipv4-mapped-ipv6", socket.AF_INET6),
                                              ("ipv6", socket.AF_INET6)])
def test_socket_domain_follows_the_mode(mode: str, family: int) -> None:
    ex = loopback(mode)
    try:
        ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
        assert ex.socks[3].family == family
        ok(ex, "bind(3, ..., ...) = 0")
        bound = ex.socks[3].getsockname()[0]
        assert bound == {"ipv4": "127.0.0.1", "ipv4-mapped-ipv6": "::ffff:127.0.0.1", "ipv6": "::1"}[mode]
    finally:
        ex.close_all()


def test_mapped_mode_connects_over_ipv4_with_mapped_addresses() -> None:
    ex = loopback("ipv4-mapped-ipv6")
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            ex.addrs.connect_port = server.getsockname()[1]
            ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
            ok(ex, "connect(3, ..., ...) = 0")
            conn, peer = server.accept()
            with conn:
                assert peer[0] == "127.0.0.1"  # IPv4 on the wire
                assert ex.socks[3].getpeername()[0] == "::ffff:127.0.0.1"
                ok(ex, f'getpeername(3, {{sin_port=htons({ex.addrs.connect_port}), '
                       f'sin_addr=inet_addr("192.0.2.1")}}, ...) = 0')
    finally:
        ex.close_all()


def test_an_explicit_domain_is_kept() -> None:
    # packetdrill only substitutes its domain for "..."; an explicit AF_INET stays an IPv4 socket, and
    # its addresses are then plain IPv4 ones
    ex = loopback("ipv4-mapped-ipv6")
    try:
        ok(ex, "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 3")
        assert ex.socks[3].family == socket.AF_INET
        ok(ex, "bind(3, ..., ...) = 0")
        assert ex.socks[3].getsockname()[0] == "127.0.0.1"
    finally:
        ex.close_all()


def test_script_literals_map_onto_the_lab() -> None:
    ex = Executor(Addresses("198.18.0.2", "198.18.0.1", mode="ipv4", script_local_ips=("10.0.0.7",),
                            script_remote_ips=("10.248.0.2",)))
    assert ex.map_ip("192.168.0.1") == "198.18.0.2"
    assert ex.map_ip("10.0.0.7") == "198.18.0.2"
    assert ex.map_ip("192.0.2.1") == "198.18.0.1"
    assert ex.map_ip("10.248.0.2") == "198.18.0.1"
    assert ex.map_ip("fd3d:0a0b:17d6::1") == "198.18.0.2"  # spelled unlike the table, same address
    assert ex.map_ip("203.0.113.9") == "203.0.113.9"


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown address mode"):
        Addresses("127.0.0.1", "127.0.0.1", mode="ipv5")


def test_bind_to_a_script_address_struct() -> None:
    ex = loopback()
    try:
        ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
        ok(ex, 'bind(3, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("192.168.0.1")}, ...) = 0')
        assert ex.socks[3].getsockname()[0] == "127.0.0.1"
        out = call(ex, "bind(3, ..., ...) = 0")  # already bound
        assert out.error == "Expected result 0 but got -1 with errno 22 (Invalid argument)"
    finally:
        ex.close_all()
