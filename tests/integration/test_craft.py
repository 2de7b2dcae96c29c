"""probe and flood against a real Linux kernel, through the CLI as a user runs them.

Needs root, network namespaces and nftables. One private lab (namespaces rtt-craft-*, echo listener on
8080) for the module; what the kernel saw is checked with a packet socket in the server's namespace and
with ``ss``; nothing may be left behind (nftables tables, namespaces).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

import pytest
from engine_helpers import json_lines, nft_tables, ns_exec, rawtcp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, raw sockets and nftables (run the suite with sudo)")
    if shutil.which("nft") is None:
        pytest.skip("needs nftables (apt-get install nftables)")
    from rawtcp.lab import topology

    cfg = topology.fresh_lab("rtt-craft")
    with topology.temporary_lab(cfg) as info:
        yield cfg, info
    assert not topology.netns_exists(cfg.client_ns) and not topology.netns_exists(cfg.server_ns)


def _no_leftovers(cfg) -> None:
    tables = nft_tables(cfg.client_ns)
    assert "rawtcp" not in tables, tables  # neither inet rawtcp nor inet rawtcp_flood_<pid>


def test_probe_syn_gets_syn_ack_with_rtt_and_resets_the_half_open(lab):
    cfg, _ = lab
    proc = rawtcp("probe", cfg.server_ip, str(cfg.port), "--netns", cfg.client_ns, "--count", "3",
                  "--interval", "0.05", "--mss", "1400", "--sackok", "--ts", "7,0", "--wscale", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    objs = json_lines(proc.stdout)
    probes, summary = objs[:-1], objs[-1]
    assert [p["seq_no"] for p in probes] == [1, 2, 3]
    for p in probes:
        assert p["sent_flags"] == "S" and p["reply_flags"] == "S."
        assert p["reply_ack"] == (p["sent_seq"] + 1) % 2**32  # RFC 9293 §3.4: the SYN takes one number
        assert p["rtt_ms"] > 0 and p["reply_win"] > 0
        assert "mss 1460" in p["reply_options"] and "TS val" in p["reply_options"]  # the kernel echoes our TS
        assert "ecr 7" in p["reply_options"]
        assert p["rst_sent"] is True
        assert set(p) >= {"seq_no", "sent_flags", "reply_flags", "reply_seq", "reply_ack", "reply_win",
                          "reply_options", "rtt_ms"}
    assert summary["type"] == "summary"
    assert (summary["sent"], summary["received"], summary["lost"], summary["rsts_sent"]) == (3, 3, 0, 3)
    assert summary["rtt_min_ms"] <= summary["rtt_avg_ms"] <= summary["rtt_max_ms"]
    # our RSTs removed the half-open connections: nothing in SYN-RECV on the server
    ss = ns_exec(cfg.server_ns, "ss", "-tnH", "state", "syn-recv").stdout
    assert ss.strip() == ""
    _no_leftovers(cfg)


def test_probe_closed_port_gets_rst_text_output_and_pcap(lab, tmp_path):
    cfg, _ = lab
    pcap = tmp_path / "p.pcap"
    proc = rawtcp("probe", cfg.server_ip, "8099", "--netns", cfg.client_ns, "--count", "2", "--interval", "0.05",
                  "--sport", "23456", "--pcap", str(pcap))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"to {cfg.server_ip}:8099 from {cfg.client_ip} via {cfg.client_if} in namespace {cfg.client_ns}" in out
    assert out.count("SENT (") == 2 and out.count(f"TCP {cfg.client_ip}:23456 > {cfg.server_ip}:8099 S ") == 2
    rcvd = [line for line in out.splitlines() if line.startswith("RCVD")]
    assert len(rcvd) == 2 and all(" R. " in line and "rtt=" in line for line in rcvd)
    assert "2 probes sent, 2 answered, 0 lost (0.0% loss)" in out
    assert "rtt min/avg/max/mdev = " in out
    assert "RST sent" not in out
    from rawtcp.capture.pcap import iter_packets

    frames = list(iter_packets(str(pcap)))
    assert len(frames) == 4  # two probes, two answers
    _no_leftovers(cfg)


def test_probe_unanswered_counts_as_lost(lab):
    cfg, _ = lab
    # a bad TCP checksum: the server's kernel drops the segment silently (RFC 9293 §3.10.7)
    proc = rawtcp("probe", cfg.server_ip, str(cfg.port), "--netns", cfg.client_ns, "--count", "2", "--interval",
                  "0", "--timeout", "0.2", "--badsum", "--json")
    assert proc.returncode == 0, proc.stderr
    objs = json_lines(proc.stdout)
    assert [o["reply_flags"] for o in objs[:-1]] == [None, None]
    assert objs[-1]["lost"] == 2 and objs[-1]["rtt_avg_ms"] is None


def test_bad_arguments_are_one_line_errors(lab):
    cfg, _ = lab
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


def test_flood_bounded_by_count_reaches_the_server_and_cleans_up(lab):
    """Last in the module: it fills the listener's SYN queue."""
    cfg, _ = lab
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
    _no_leftovers(cfg)


def test_flood_duration_and_rate_bound_it(lab):
    cfg, _ = lab
    t0 = time.monotonic()
    proc = rawtcp("flood", cfg.server_ip, str(cfg.port), "--syn", "--duration", "0.5", "--rate", "2000",
                  "--netns", cfg.client_ns)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 15
    assert f"FLOOD SYN to {cfg.server_ip}:{cfg.port} from {cfg.client_ip}" in proc.stdout
    line = proc.stdout.strip().splitlines()[-1]
    sent = int(line.split()[1])
    assert 500 <= sent <= 1100 and "stopped by duration" in line
    _no_leftovers(cfg)
    assert subprocess.run(["ip", "netns", "exec", cfg.client_ns, "nft", "list", "tables"], capture_output=True,
                          text=True).stdout.strip() == ""
