"""Helpers for probe's integration tests (test_craft.py over IPv4, test_ipv6_craft.py over IPv6): the
same probe against the lab's kernel, checked where both families agree; each test adds its family's
addresses and MSS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_helpers import json_lines, nft_tables, ns_exec, rawtcp

from rawtcp.lab.topology import LabConfig


def assert_no_leftovers(cfg: LabConfig) -> None:
    tables = nft_tables(cfg.client_ns)
    assert "rawtcp" not in tables, tables  # neither inet rawtcp nor inet rawtcp_flood_<pid>


def probe_syn_ack(cfg: LabConfig, host: str, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Three SYNs to the lab's listener: each answered with a SYN-ACK that acknowledges it, the kernel
    echoes our timestamp, our RST removes the half-open connection. Returns (probes, summary)."""
    proc = rawtcp("probe", host, str(cfg.port), "--netns", cfg.client_ns, "--count", "3", "--interval", "0.05",
                  "--mss", "1400", "--sackok", "--ts", "7,0", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    objs = json_lines(proc.stdout)
    probes, summary = objs[:-1], objs[-1]
    assert [p["seq_no"] for p in probes] == [1, 2, 3]
    for p in probes:
        assert p["sent_flags"] == "S" and p["reply_flags"] == "S."
        assert p["reply_ack"] == (p["sent_seq"] + 1) % 2**32  # RFC 9293 §3.4: the SYN takes one number
        assert p["rtt_ms"] > 0 and p["reply_win"] > 0
        assert "TS val" in p["reply_options"] and "ecr 7" in p["reply_options"]  # the kernel echoes our TS
        assert p["rst_sent"] is True
        assert set(p) >= {"seq_no", "sent_flags", "reply_flags", "reply_seq", "reply_ack", "reply_win",
                          "reply_options", "rtt_ms"}
    assert summary["type"] == "summary"
    assert (summary["sent"], summary["received"], summary["lost"], summary["rsts_sent"]) == (3, 3, 0, 3)
    assert summary["rtt_min_ms"] <= summary["rtt_avg_ms"] <= summary["rtt_max_ms"]
    # our RSTs removed the half-open connections: nothing in SYN-RECV on the server
    assert ns_exec(cfg.server_ns, "ss", "-tnH", "state", "syn-recv").stdout.strip() == ""
    assert_no_leftovers(cfg)
    return probes, summary


def probe_closed_port(cfg: LabConfig, host: str, pcap: Path) -> tuple[str, list[Any]]:
    """Two SYNs from port 23456 to port 8099, where nothing listens: each answered with RST, shown as
    text, and captured (two probes, two answers). Returns (the text, the captured packets)."""
    from rawtcp.capture.pcap import iter_packets

    proc = rawtcp("probe", host, "8099", "--netns", cfg.client_ns, "--count", "2", "--interval", "0.05",
                  "--sport", "23456", "--pcap", str(pcap))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rcvd = [line for line in out.splitlines() if line.startswith("RCVD")]
    assert len(rcvd) == 2 and all(" R. " in line and "rtt=" in line for line in rcvd)
    assert out.count("SENT (") == 2
    assert "2 probes sent, 2 answered, 0 lost (0.0% loss)" in out
    assert "rtt min/avg/max/mdev = " in out
    assert "RST sent" not in out
    frames = list(iter_packets(str(pcap)))
    assert len(frames) == 4  # two probes, two answers
    assert_no_leftovers(cfg)
    return out, frames
