"""One benchmark run: every section with its baselines side by side, then the table and the JSON record.

Brings up labs of its own (``rtt-bench-*`` namespaces): an unimpaired one with the echo listener for the
latency, connections and flood rows, and an impaired one with a sink for the loss-recovery row. The VMs
are shared, so only same-run ratios mean anything. Handshake latency is measured in this long-lived
process, by the multi-connection driver users run (``rawtcp.api.hub()``: one shared packet socket per
interface): one-time set-up (route and ARP look-up, the shared socket and its filter, the nftables
context, scapy's import) is excluded, per-connection set-up (demultiplexer entry, port reservation,
RST-suppression element, Endpoint) is included, exactly as a kernel ``connect()`` is timed from
``socket()`` to its return. Loops are bounded; only lab addresses are used.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from benchmark import lossy
from benchmark.baselines import (
    SynAckCounter,
    kernel_connections,
    kernel_connections_pipelined,
    kernel_handshakes,
    listen_drops,
    scapy_handshakes,
)
from benchmark.report import BenchRecord, build_rows, format_table, stats_us
from benchmark.rows import (
    PIPELINE,
    cold_start_rows,
    compare_rows,
    flood_rows,
    rawtcp_connections,
    rawtcp_connections_pipelined,
    rawtcp_handshakes,
)
from rawtcp import compiled
from rawtcp.session.hub import Hub, HubStats

SECTIONS = ("cold-start", "compare", "lab", "loss")
SECTION_HELP = {
    "cold-start": "`rawtcp --help` beside `python -c pass`",
    "compare": "`rawtcp compare` beside tshark",
    "lab": "handshake latency, connections/s, missed replies, SYN flood (kernel, scapy, hping3)",
    "loss": "loss recovery over an impaired lab (kernel Reno and BBR)",
}


@dataclass
class Sizes:
    handshakes: int
    kernel_handshakes: int
    scapy_sr1: int
    scapy_l3: int
    connections: int
    flood_seconds: float
    compare_packets: int
    cold_runs: int
    loss: lossy.LossPlan


QUICK = Sizes(handshakes=1000, kernel_handshakes=1000, scapy_sr1=10, scapy_l3=50, connections=500,
              flood_seconds=2.0, compare_packets=100_000, cold_runs=5, loss=lossy.QUICK_PLAN)
FULL = Sizes(handshakes=10_000, kernel_handshakes=10_000, scapy_sr1=50, scapy_l3=300, connections=3000,
             flood_seconds=5.0, compare_packets=1_000_000, cold_runs=15, loss=lossy.FULL_PLAN)


def _say(text: str) -> None:
    print(text, flush=True)


def _source_version() -> dict[str, Any]:
    """Which rawtcp was measured: the checkout's commit, and whether the tree had changes beside it."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

    def git(*args: str) -> str:
        try:
            proc = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "session_commit": git("log", "-1", "--format=%h", "--", "rawtcp/session") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "rawtcp"))}


def lab_rows(raw: dict[str, Any], sizes: Sizes) -> None:
    """The rows measured in the unimpaired lab, with their baselines (into ``raw``)."""
    from rawtcp.lab import topology
    from rawtcp.wire import netns

    cfg = topology.fresh_lab("rtt-bench")
    dst, port = cfg.server_ip, cfg.port

    def conns(secs: float, done: int, **extra: Any) -> dict[str, Any]:
        return {"n": sizes.connections, **extra, "completed": done, "seconds": round(secs, 3),
                "per_s": round(done / secs, 1)}

    with topology.temporary_lab(cfg, listener=True) as _lab, netns.inside(cfg.client_ns):
        # The kernel first, before the hub's shared socket exists (it would take a copy of every frame).
        kernel_handshakes(dst, port, 50)  # warm-up, not recorded
        raw["kernel_handshake"] = stats_us(kernel_handshakes(dst, port, sizes.kernel_handshakes))
        _say(f"  kernel connect(): {raw['kernel_handshake']}")
        raw["kernel_connections"] = conns(*kernel_connections(dst, port, sizes.connections))
        raw["kernel_connections_pipelined"] = conns(
            *kernel_connections_pipelined(dst, port, sizes.connections, PIPELINE), inflight=PIPELINE)
        _say(f"  kernel connections: {raw['kernel_connections']}; pipelined {raw['kernel_connections_pipelined']}")
        hub = Hub()
        counter = SynAckCounter(cfg.server_ns, port)
        try:
            # warm-up (not recorded): first-use costs of the code paths, the route, the shared socket
            rawtcp_handshakes(hub, dst, port, 50)
            hub.stats = HubStats()
            before, drops = counter.read(), listen_drops(cfg.server_ns)
            samples = rawtcp_handshakes(hub, dst, port, sizes.handshakes)
            server_synacks = counter.read() - before
            drops = listen_drops(cfg.server_ns) - drops
            raw["rawtcp_handshake"] = stats_us(samples)
            st = hub.stats
            raw["missed_replies"] = {"handshakes": sizes.handshakes, "server_synacks": server_synacks,
                                     "seen": st.synacks_seen, "missed": server_synacks - st.synacks_seen,
                                     "failed": st.failed, "syn_retransmissions": st.retransmissions,
                                     "server_listen_drops": drops}
            _say(f"  rawtcp handshakes: {raw['rawtcp_handshake']}; {raw['missed_replies']}")
            raw["rawtcp_connections"] = conns(*rawtcp_connections(hub, dst, port, sizes.connections))
            raw["rawtcp_connections_pipelined"] = conns(
                *rawtcp_connections_pipelined(hub, dst, port, sizes.connections, PIPELINE), inflight=PIPELINE)
            _say(f"  rawtcp connections: {raw['rawtcp_connections']}; pipelined "
                 f"{raw['rawtcp_connections_pipelined']}")
            s1, f1 = scapy_handshakes(hub, dst, port, sizes.scapy_sr1, persistent=False)
            raw["scapy_sr1_handshake"] = {**stats_us(s1), "failed": f1}
            _say(f"  scapy sr1+send: {raw['scapy_sr1_handshake']}")
            s3, f3 = scapy_handshakes(hub, dst, port, sizes.scapy_l3, persistent=True)
            raw["scapy_l3socket_handshake"] = {**stats_us(s3), "failed": f3}
            _say(f"  scapy conf.L3socket: {raw['scapy_l3socket_handshake']}")
        finally:
            counter.close()
            hub.close()  # before the flood: the shared socket would take a copy of every SYN-ACK
        raw["flood"] = flood_rows(cfg, sizes.flood_seconds)
        _say(f"  flood: {raw['flood']}")


def run_bench(quick: bool = False, json_path: str | None = None, handshakes: int | None = None,
              only: tuple[str, ...] = SECTIONS) -> bool:
    """Run the chosen sections and their baselines; print the table; write the JSON record.
    True if every target measured is met."""
    from rawtcp.wire.closer import raise_fd_limit

    sizes = QUICK if quick else FULL
    raise_fd_limit()
    if handshakes is not None:
        n = max(1, min(handshakes, 100_000))
        sizes = dataclasses.replace(sizes, handshakes=n, kernel_handshakes=n)
    t_start = time.perf_counter()
    record = BenchRecord(quick, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                          "rawtcp": _source_version(), "hot_path": compiled.status(), "sections": list(only)})
    raw = record.raw
    _say(f"rawtcp benchmark ({'quick' if quick else 'full'}): {os.cpu_count()} CPUs, Linux {platform.release()}, "
         f"hot path {compiled.status()}"
         + ("" if set(only) == set(SECTIONS) else f"; only {', '.join(only)}"))
    if "cold-start" in only:
        raw["cold_start"] = cold_start_rows(sizes.cold_runs)
        _say(f"  cold start: {raw['cold_start']}")
    if "compare" in only:
        raw["compare"] = compare_rows(sizes.compare_packets)
        _say(f"  compare: {raw['compare']}" + (" (--quick: 100k packets, not 1M)" if quick else ""))
    if "lab" in only:
        lab_rows(raw, sizes)
    if "loss" in only:
        plan = sizes.loss
        _say(f"  loss recovery{' (short version)' if plan.short else ''}: {plan.nbytes} B, {plan.runs} runs per "
             f"client and direction, {plan.loss:g}% loss, {plan.reorder:g}% reorder, {plan.duplicate:g}% duplicate, "
             f"{plan.delay_ms:g}±{plan.jitter_ms:g} ms, {plan.timeout:g} s per transfer")
        raw["loss_recovery"] = lossy.loss_recovery(plan)
        _say(f"  loss recovery: {raw['loss_recovery']['summary']}")
    raw["seconds"] = round(time.perf_counter() - t_start, 1)
    record.rows = build_rows(raw, quick)
    _say("")
    _say(format_table(record.rows))
    measured = [r for r in record.rows if r.met is not None]
    met = [r for r in measured if r.met]
    _say(f"\n{len(met)} of {len(measured)} targets met in {raw['seconds']:.0f} s"
         + ("; --quick: fewer handshakes/connections, a 100k-packet compare, the short loss row" if quick else ""))
    path = json_path or os.path.join(tempfile.gettempdir(), f"rawtcp-bench-{int(time.time())}.json")
    record.write(path)
    _say(f"JSON record: {path}")
    return len(met) == len(measured)
