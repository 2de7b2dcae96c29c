"""probe and flood against a real Linux kernel, through the CLI as a user runs them.

Needs root, network namespaces and nftables. One private lab (namespaces rtt-craft-*, echo listener on
8080) for the module; what the kernel saw is checked with a packet socket in the server's namespace and
with ``ss``; nothing may be left behind (nftables tables, namespaces).
"""

from __future__ import annotations

import select
import subprocess
import time

import pytest
from engine_helpers import json_lines, ns_exec, rawtcp
from probe_helpers import assert_no_leftovers, probe_closed_port, probe_syn_ack

pytestmark = pytest.mark.integration


def test_probe_syn_gets_syn_ack_with_rtt_and_resets_the_half_open(module_lab):
    cfg, _ = module_lab
    probes, _summary = probe_syn_ack(cfg, cfg.server_ip, "--wscale", "6")
    assert all("mss 1460" in p["reply_options"] for p in probes)  # the kernel's MSS over IPv4: 1500 - 20 - 20


def test_probe_closed_port_gets_rst_text_output_and_pcap(module_lab, tmp_path):
    cfg, _ = module_lab
    out, _frames = probe_closed_port(cfg, cfg.server_ip, tmp_path / "p.pcap")
    assert f"to {cfg.server_ip}:8099 from {cfg.client_ip} via {cfg.client_if} in namespace {cfg.client_ns}" in out
    assert out.count(f"TCP {cfg.client_ip}:23456 > {cfg.server_ip}:8099 S ") == 2


def test_probe_unanswered_counts_as_lost(module_lab):
    cfg, _ = module_lab
    # a bad TCP checksum: the server's kernel drops the segment silently (RFC 9293 §3.10.7)
    proc = rawtcp("probe", cfg.server_ip, str(cfg.port), "--netns", cfg.client_ns, "--count", "2", "--interval",
                  "0", "--timeout", "0.2", "--badsum", "--json")
    assert proc.returncode == 0, proc.stderr
    objs = json_lines(proc.stdout)
    assert [o["reply_flags"] for o in objs[:-1]] == [None, None]
    assert objs[-1]["lost"] == 2 and objs[-1]["rtt_avg_ms"] is None


def test_bad_arguments_are_one_line_errors(module_lab):
    cfg, _ = module_lab
    proc = rawtcp("probe", cfg.server_ip, "80", "--netns", cfg.client_ns, "--flags", "SX")
    assert proc.returncode == 2 and "unknown TCP flag" in proc.stderr and "Traceback" not in proc.stderr
    proc = rawtcp("flood", "10.1.2.3", "80", "--syn", "--count", "1", "--netns", cfg.client_ns)
    assert proc.returncode == 2 and "only sends to lab addresses" in proc.stderr
    proc = rawtcp("flood", cfg.server_ip, "80", "--syn", "--netns", cfg.client_ns)
    assert proc.returncode == 2 and "needs a bound" in proc.stderr


def _count_syns(link, want: int, timeout: float) -> int:
    from rawtcp.core.segment import Flags
    from rawtcp.wire.link import decode

    seen, end = 0, time.monotonic() + timeout
    while seen < want and time.monotonic() < end:
        if not select.select([link], [], [], 0.2)[0]:
            continue
        for raw, status in link.recv_frames(256):
            dec = decode(raw, status)
            if dec is not None and dec.segment.flags == Flags.SYN:
                seen += 1
    return seen


def test_flood_bounded_by_count_reaches_the_server_and_cleans_up(module_lab):
    """Last in the module: it fills the listener's SYN queue."""
    cfg, _ = module_lab
    from rawtcp.wire import netns
    from rawtcp.wire.link import PacketLink

    count = 3000
    with netns.inside(cfg.server_ns):
        link = PacketLink(cfg.server_if, cfg.server_ip, cfg.port, rcvbuf=32 << 20)  # open before the flood
    try:
        proc = rawtcp("flood", cfg.server_ip, str(cfg.port), "--syn", "--count", str(count), "--netns",
                      cfg.client_ns, "--json")
        assert proc.returncode == 0, proc.stderr
        res = json_lines(proc.stdout)[-1]
        assert res["sent"] == count and res["stopped_by"] == "count" and res["pps"] > 0
        assert _count_syns(link, count, 10.0) == count
    finally:
        link.close()
    # our kernel's RSTs were dropped, so the server still holds half-open connections
    syn_recv = ns_exec(cfg.server_ns, "ss", "-tnH", "state", "syn-recv", f"sport = :{cfg.port}").stdout
    assert len(syn_recv.splitlines()) > 0
    assert_no_leftovers(cfg)


def test_flood_duration_and_rate_bound_it(module_lab):
    cfg, _ = module_lab
    t0 = time.monotonic()
    proc = rawtcp("flood", cfg.server_ip, str(cfg.port), "--syn", "--duration", "0.5", "--rate", "2000",
                  "--netns", cfg.client_ns)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 15
    assert f"FLOOD SYN to {cfg.server_ip}:{cfg.port} from {cfg.client_ip}" in proc.stdout
    line = proc.stdout.strip().splitlines()[-1]
    sent = int(line.split()[1])
    assert 500 <= sent <= 1100 and "stopped by duration" in line
    assert_no_leftovers(cfg)
    assert subprocess.run(["ip", "netns", "exec", cfg.client_ns, "nft", "list", "tables"], capture_output=True,
                          text=True).stdout.strip() == ""
