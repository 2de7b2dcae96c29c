"""rawtcp's side of each row, and the rows that time rawtcp and its baseline in one function (SYN flood
beside hping3, ``rawtcp compare`` beside tshark, ``rawtcp --help`` beside ``python -c pass``).

rawtcp's connections are driven by the multi-connection driver users run (``rawtcp.api.hub()``:
rawtcp.session.hub.Hub), with its default TCP profile (Linux-like), over the shared receive path."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmark import compare as capture_gen
from benchmark.baselines import REQUEST, tx_packets
from rawtcp.core import State
from rawtcp.session.hub import Flow, Hub

PIPELINE = 16  # connections in flight in the pipelined connections-per-second run


def _opened(hub: Hub, flow: Flow, timeout: float = 5.0) -> bool:
    """Turn the hub until ``flow`` is established (True) or has ended or ``timeout`` passed (False)."""
    hub.wait(lambda: flow.state is not State.SYN_SENT, timeout)
    return flow.established


def rawtcp_handshakes(hub: Hub, dst: str, port: int, n: int) -> list[float]:
    """Each handshake timed from the connection's set-up (demultiplexer entry, port, RST-suppression element,
    Endpoint) to ESTABLISHED, as a kernel connect() from socket() to its return; then reset, as the kernel
    baseline's SO_LINGER 0 close."""
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        flow = hub.connect(dst, port)
        ok = _opened(hub, flow)
        t1 = clock()
        if ok:
            samples.append(t1 - t0)
        hub.release(flow)
    return samples


def rawtcp_connections(hub: Hub, dst: str, port: int, n: int) -> tuple[float, int]:
    """Open, one request/response, close, one after another: (seconds, completed). The close is started
    as a kernel close() is (our FIN goes out, the rest completes while the next connection opens), but the
    clock stops only once every connection has finished its four-way close (TIME-WAIT)."""
    done = 0
    flows = []
    t0 = time.perf_counter()
    for _ in range(n):
        flow = hub.connect(dst, port)
        if not _opened(hub, flow):
            hub.release(flow)
            continue
        flow.send(REQUEST)
        if hub.wait(lambda f=flow: f.readable >= len(REQUEST), 5.0) and flow.read() == REQUEST:
            flow.close()
            flows.append(flow)
            done += 1
        else:
            hub.release(flow)
    hub.wait(lambda: all(f.finished for f in flows), 10.0)
    elapsed = time.perf_counter() - t0
    return elapsed, done - sum(not f.finished for f in flows)


def rawtcp_connections_pipelined(hub: Hub, dst: str, port: int, n: int, inflight: int, timeout: float = 60.0
                                 ) -> tuple[float, int]:
    """The same connections, ``inflight`` at a time from one thread and one poll loop: a connection
    waiting for the server's answer no longer holds up the next one's set-up."""
    clock = time.perf_counter
    started = done = 0
    active: dict[Flow, int] = {}  # 0: opening, 1: request sent
    closing: list[Flow] = []
    t0 = clock()
    end = t0 + timeout
    while (started < n or active) and clock() < end:
        while started < n and len(active) < inflight:
            active[hub.connect(dst, port)] = 0
            started += 1
        hub.poll(0.05)
        for flow, phase in list(active.items()):
            if phase == 0 and flow.established:
                flow.send(REQUEST)
                active[flow] = 1
            elif phase == 1 and flow.readable >= len(REQUEST):
                if flow.read() == REQUEST:
                    done += 1
                    closing.append(flow)
                del active[flow]
                flow.close()
            elif flow.finished:  # refused, reset or timed out
                del active[flow]
                hub.release(flow)
    for flow in active:
        hub.release(flow)
    hub.wait(lambda: all(f.finished for f in closing), 10.0)
    return clock() - t0, done - sum(not f.finished for f in closing)


def flood_rows(cfg: Any, seconds: float) -> dict[str, Any]:
    """rawtcp flood and hping3 --flood -S, the same length each, on the same veth, both with our kernel's
    RSTs to the SYN-ACKs dropped (so the veth's tx counter counts SYNs only)."""
    from rawtcp.craft import flood as fl
    from rawtcp.wire import nft

    out: dict[str, Any] = {}
    before = tx_packets(cfg.client_ns, cfg.client_if)
    res = fl.flood_syn(cfg.server_ip, cfg.port, duration=seconds)
    out["rawtcp_pps"] = round((tx_packets(cfg.client_ns, cfg.client_if) - before) / res.seconds)
    out["rawtcp_own_pps"] = round(res.pps)
    hping = shutil.which("hping3")
    timeout = shutil.which("timeout")
    if hping and timeout:
        time.sleep(1.0)  # let the SYN cookies/queue of the previous run settle
        with nft.suppress_port_range_rsts(cfg.client_ip, cfg.server_ip, cfg.port, fl.SPORT_RANGE):
            before = tx_packets(cfg.client_ns, cfg.client_if)
            t0 = time.perf_counter()
            proc = subprocess.run([timeout, "-s", "INT", f"{seconds:g}", hping, "--flood", "-S", "-p",
                                   str(cfg.port), cfg.server_ip], capture_output=True, text=True, timeout=seconds + 30)
            dt = time.perf_counter() - t0
            out["hping3_pps"] = round((tx_packets(cfg.client_ns, cfg.client_if) - before) / dt)
        for line in (proc.stdout + proc.stderr).splitlines():
            if "packets transmitted" in line or "packets tramitted" in line:
                out["hping3_own_pps"] = round(int(line.split()[0]) / seconds)
    return out


def compare_rows(packets: int) -> dict[str, Any]:
    """``rawtcp compare`` (the CLI) on two identical captures vs ``tshark -r`` reading one, on captures
    made by scripts/benchmark/compare.py's generator."""
    out: dict[str, Any] = {"packets": packets}
    workdir = tempfile.mkdtemp(prefix="rawtcp-bench-")
    try:
        a, b = os.path.join(workdir, "a.pcap"), os.path.join(workdir, "b.pcap")
        out["packets"] = capture_gen.generate(a, packets)
        shutil.copyfile(a, b)
        tshark = shutil.which("tshark")
        if tshark:
            t0 = time.perf_counter()
            subprocess.run([tshark, "-r", a, "-T", "fields", "-e", "tcp.seq", "-e", "tcp.ack"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            out["tshark_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        proc = subprocess.run([*_rawtcp_cmd(), "compare", a, b], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        out["rawtcp_s"] = round(time.perf_counter() - t0, 3)
        out["rawtcp_exit"] = proc.returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _rawtcp_cmd() -> list[str]:
    exe = shutil.which("rawtcp") or os.path.join(os.path.dirname(sys.executable), "rawtcp")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "rawtcp"]


def cold_start_rows(runs: int) -> dict[str, Any]:
    def median_run(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    median_run([sys.executable, "-c", "pass"])  # warm the page cache for both
    return {"python_ms": round(median_run([sys.executable, "-c", "pass"]) * 1000, 1),
            "rawtcp_help_ms": round(median_run([*_rawtcp_cmd(), "--help"]) * 1000, 1)}

