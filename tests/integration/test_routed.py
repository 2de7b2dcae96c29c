"""`--iface` outside any lab, across a router: client ns → router ns → server ns.

The next hop is the router (from the routing table) and its MAC comes from ARP; the peer is a kernel
echo listener two hops away.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from engine_helpers import json_lines, keeper_pids, nft_tables, rawtcp, segments, wait_until

from rawtcp.lab.topology import WRITABLE_PROC_SYS

pytestmark = pytest.mark.integration


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@pytest.fixture
def routed():
    from rawtcp.lab.topology import spawn_listener, stop_listener

    tag = f"rtt-rt-{os.getpid()}"
    client, router, server = f"{tag}-c", f"{tag}-r", f"{tag}-s"
    listener = None
    try:
        for ns in (client, router, server):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "eth0", "netns", client, "type", "veth", "peer", "name", "r-left", "netns", router)
        _ip("link", "add", "eth0", "netns", server, "type", "veth", "peer", "name", "r-right", "netns", router)
        for ns, dev, addr in ((client, "eth0", "198.18.1.1/24"), (router, "r-left", "198.18.1.254/24"),
                              (router, "r-right", "198.18.2.254/24"), (server, "eth0", "198.18.2.2/24")):
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", client, "route", "add", "default", "via", "198.18.1.254")
        _ip("-n", server, "route", "add", "default", "via", "198.18.2.254")
        # /proc/sys directly: bare machines have no sysctl(8)
        subprocess.run(["ip", "netns", "exec", router, "sh", "-c",
                        WRITABLE_PROC_SYS + "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True)
        listener = spawn_listener(server, "echo", "198.18.2.2", 8080)
        yield client, server
    finally:
        if listener is not None:
            stop_listener(listener)
        for ns in (client, router, server):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def test_connect_across_a_router_by_interface(routed, tmp_path):
    client, _server = routed
    env = dict(os.environ, RAWTCP_RUNTIME_DIR=str(tmp_path / "run"))
    opened = rawtcp("connect", "198.18.2.2", "8080", "--name", "r1", "--netns", client, "--iface", "eth0",
                    "--msl2", "1", "--json", env=env, check=True)
    syn = segments(json_lines(opened.stdout))[0]
    assert syn["src"].startswith("198.18.1.1:")  # source address from the routing table
    assert "mss 1460" in syn["options"]  # MSS from the interface MTU (1500 - 40)
    rawtcp("send", "r1", "through the router", env=env, check=True)
    got = rawtcp("recv", "r1", "--bytes", "18", "--out", "-", env=env, check=True)
    assert got.stdout == "through the router"
    rawtcp("close", "r1", "--wait", "10", env=env, check=True)
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 10)
    assert "rawtcp" not in nft_tables(client)
