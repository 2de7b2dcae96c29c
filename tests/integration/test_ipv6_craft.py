"""probe and flood over IPv6 against a real Linux kernel, through the CLI as a user runs them.

Needs root, network namespaces and nftables. One private dual-stack lab (namespaces rtt-ipv6-craft-*, echo
listener on 8080 for both families) for the module; what the kernel saw is counted by an nftables
counter of the test's own in the server's namespace, and by ``ss``; nothing may be left behind.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from engine_helpers import json_lines, ns_exec, rawtcp
from probe_helpers import assert_no_leftovers, probe_closed_port, probe_syn_ack

pytestmark = pytest.mark.integration

COUNTERS = "rtt_count6"  # the test's own table in the server's namespace


@pytest.fixture(scope="module")
def lab(module_lab):
    _, info = module_lab
    assert info.server_ip6 == "2001:db8::2" and info.client_ip6 == "2001:db8::1"
    return module_lab


def _counters(cfg, port: int) -> None:
    """Count, at the server's input hook, IPv6 SYNs and RSTs from the client to ``port``."""
    script = (f"table inet {COUNTERS} {{\n chain input {{\n  type filter hook input priority -300; policy accept;\n"
              f"  ip6 saddr 2001:db8::1 tcp dport {port} tcp flags & (syn|ack) == syn counter\n"
              f"  ip6 saddr 2001:db8::1 tcp dport {port} tcp flags & rst == rst counter\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", cfg.server_ns, "nft", "-f", "-"], input=script, text=True, check=True)


def _tcp_mib(cfg) -> dict[str, int]:
    """The server namespace's TCP counters (/proc/net/snmp: both families count there)."""
    lines = [line.split() for line in ns_exec(cfg.server_ns, "cat", "/proc/net/snmp").stdout.splitlines()
             if line.startswith("Tcp:")]
    return dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=True))


def _read_counters(cfg) -> tuple[int, int]:
    out = ns_exec(cfg.server_ns, "nft", "list", "table", "inet", COUNTERS).stdout
    packets = [int(n) for n in re.findall(r"counter packets (\d+)", out)]
    assert len(packets) == 2, out
    return packets[0], packets[1]


def _drop_counters(cfg) -> None:
    ns_exec(cfg.server_ns, "nft", "delete", "table", "inet", COUNTERS)


def test_probe_gets_a_syn_ack_over_ipv6(lab):
    cfg, info = lab
    probes, summary = probe_syn_ack(cfg, info.server_ip6)
    for p in probes:
        assert p["src"].startswith("[2001:db8::1]:") and p["dst"] == "[2001:db8::2]:8080"
        assert "mss 1440" in p["reply_options"]  # the kernel's MSS over IPv6: 1500 - 40 - 20
    assert summary["src"] == info.client_ip6 and summary["dst"] == "[2001:db8::2]:8080"


def test_probe_closed_ipv6_port_gets_rst_and_pcap_holds_ipv6(lab, tmp_path):
    cfg, info = lab
    out, frames = probe_closed_port(cfg, info.server_ip6, tmp_path / "p6.pcap")
    assert f"to [2001:db8::2]:8099 from 2001:db8::1 via {cfg.client_if}" in out
    assert out.count("TCP [2001:db8::1]:23456 > [2001:db8::2]:8099 S ") == 2
    from rawtcp.capture.decode import decode_tcp

    decoded = [decode_tcp(f.linktype, f.data) for f in frames]
    assert [(d.src, d.dst) for d in decoded if d is not None] == [("2001:db8::1", "2001:db8::2"),
                                                                  ("2001:db8::2", "2001:db8::1")] * 2
    assert_no_leftovers(cfg)


def test_flood_refuses_ipv6_outside_the_documentation_prefix(lab):
    cfg, _ = lab
    for target in ("2001:db9::2", "fd00::2", "::1", "2001:4860::8888"):
        proc = rawtcp("flood", target, "80", "--syn", "--count", "1", "--netns", cfg.client_ns)
        assert proc.returncode == 2, (target, proc.stderr)
        assert "only sends to lab addresses in 198.18.0.0/15 or 2001:db8::/32" in proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert_no_leftovers(cfg)


def test_bounded_ipv6_flood_reaches_the_kernel_and_its_rsts_are_dropped(lab):
    """Last in the module: it fills the listener's IPv6 SYN queue."""
    cfg, info = lab
    count = 2000
    _counters(cfg, cfg.port)
    before = _tcp_mib(cfg)
    try:
        proc = rawtcp("flood", info.server_ip6, str(cfg.port), "--syn", "--count", str(count), "--netns",
                      cfg.client_ns, "--json")
        assert proc.returncode == 0, proc.stderr
        res = json_lines(proc.stdout)[-1]
        assert res["sent"] == count and res["stopped_by"] == "count" and res["dst"] == info.server_ip6
        assert res["src"] == info.client_ip6
        syns, rsts = _read_counters(cfg)
        assert syns == count  # every SYN reached the server's kernel
        assert rsts == 0  # the flood's ip6 rule dropped our kernel's RSTs to the SYN-ACKs
    finally:
        _drop_counters(cfg)
    after = _tcp_mib(cfg)
    # TCP took them all: checksums patched right over the IPv6 pseudo-header (RFC 8200 §8.1).
    assert after["InCsumErrors"] == before["InCsumErrors"] and after["InErrs"] == before["InErrs"]
    assert after["InSegs"] - before["InSegs"] >= count
    # and the server holds IPv6 half-open connections
    syn_recv = ns_exec(cfg.server_ns, "ss", "-6tnH", "state", "syn-recv", f"sport = :{cfg.port}").stdout
    assert len(syn_recv.splitlines()) > 0 and "[2001:db8::1]" in syn_recv
    assert_no_leftovers(cfg)
