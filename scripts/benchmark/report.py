"""The benchmark's table and JSON record: raw measurements in, one row per figure out.

Pure (no root, no network), so the tests read it like any other module.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from rawtcp.craft.spec import percentile


@dataclass
class Row:
    figure: str
    rawtcp: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: not measured

    def cells(self) -> list[str]:
        return [self.figure, self.rawtcp, self.baseline, self.ratio, self.target,
                "n/a" if self.met is None else ("yes" if self.met else "NO")]


@dataclass
class BenchRecord:
    quick: bool
    started: str
    host: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"bench": "rawtcp", "quick": self.quick, "started": self.started, "host": self.host,
                "raw": self.raw, "rows": [asdict(r) for r in self.rows]}

    def write(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_json(), fh, indent=2)


def stats_us(samples: list[float]) -> dict[str, Any]:
    """Latency samples (seconds) summarised in microseconds."""
    us = [s * 1e6 for s in samples]
    if not us:
        return {"n": 0}
    return {"n": len(us), "median_us": round(statistics.median(us), 1), "p99_us": round(percentile(us, 99), 1),
            "min_us": round(min(us), 1), "mean_us": round(statistics.fmean(us), 1),
            "max_us": round(max(us), 1)}


def _ms(us: float) -> str:
    return f"{us / 1000:.3f} ms" if us >= 1000 else f"{us:.0f} µs"


def _seconds(value: float | None) -> str:
    return "failed" if value is None else f"{value:.2f} s"


def _goodput(nbytes: int, seconds: float | None) -> str:
    if not seconds:
        return "–"
    kbit = nbytes * 8 / seconds / 1000
    return f"{kbit / 1000:.2f} Mbit/s" if kbit >= 1000 else f"{kbit:.0f} kbit/s"


def _kib(nbytes: int) -> str:
    return f"{nbytes // 1024} KiB" if nbytes % 1024 == 0 else f"{nbytes:,} B"


def loss_rows(loss: dict[str, Any]) -> list[Row]:
    """One row per direction of the loss-recovery record (scripts/benchmark/lossy.py's ``summary``)."""
    rows: list[Row] = []
    plan, summary = loss.get("plan", {}), loss.get("summary", {})
    if not plan or not summary:
        return rows
    nbytes, target = int(plan["bytes"]), float(plan["target_ratio"])
    path = (f"{plan['loss']:g}% loss, {plan['reorder']:g}% reorder, {plan['duplicate']:g}% dup, "
            f"{plan['delay_ms']:g}±{plan['jitter_ms']:g} ms")
    short = " (short version)" if plan.get("short") else ""
    for direction, verb in (("send", "sends"), ("recv", "receives")):
        d = summary.get(direction)
        if not d:
            continue
        rw, reno, bbr = d["rawtcp"], d["kernel-reno"], d["kernel-bbr"]
        figure = (f"loss recovery{short}: rawtcp {verb} {_kib(nbytes)}, {path}, "
                  f"median of {plan['runs']}")
        mine = f"{_seconds(rw['median_s'])} ({_goodput(nbytes, rw['median_s'])}), lost {rw['lost_bytes']} B"
        if rw["failed"]:
            mine += f", {rw['failed']} of {rw['runs']} failed"
        base = (f"kernel reno {_seconds(reno['median_s'])} ({_goodput(nbytes, reno['median_s'])}); "
                f"bbr {_seconds(bbr['median_s'])} ({_goodput(nbytes, bbr['median_s'])})")
        ratio = d.get("ratio_reno")
        ratio_text = f"{ratio:.2f}× reno" if ratio is not None else "–"
        if d.get("ratio_bbr") is not None:
            ratio_text += f" ({d['ratio_bbr']:.2f}× bbr)"
        if ratio is None:
            # rawtcp failed most runs: not met; the kernel failing most runs: nothing to compare with
            met = False if rw["median_s"] is None else None
        else:
            # every byte intact, and no more runs past the timeout than the baseline had (a median
            # hides no timeout of rawtcp's own; in the receive direction both senders are the kernel's)
            met = (ratio <= target and rw["lost_bytes"] == 0 and rw["intact"]
                   and rw["failed"] <= reno["failed"])
        rows.append(Row(figure, mine, base, ratio_text, f"≤ {target:g}× reno, 0 lost", met))
    return rows


def build_rows(raw: dict[str, Any], quick: bool) -> list[Row]:
    rows: list[Row] = []
    rh, kh = raw.get("rawtcp_handshake", {}), raw.get("kernel_handshake", {})
    s1, s3 = raw.get("scapy_sr1_handshake", {}), raw.get("scapy_l3socket_handshake", {})
    if rh.get("n") and kh.get("n"):
        ratio_k = rh["median_us"] / kh["median_us"]
        rows.append(Row("handshake latency, median", _ms(rh["median_us"]), f"kernel connect() {_ms(kh['median_us'])}",
                        f"{ratio_k:.1f}× kernel", "≤ 10× kernel", ratio_k <= 10))
        rows.append(Row("handshake latency, p99", _ms(rh["p99_us"]), f"kernel connect() {_ms(kh['p99_us'])}",
                        f"{rh['p99_us'] / kh['p99_us']:.1f}× kernel", "–", None))
    if rh.get("n") and s1.get("n"):
        sp = s1["median_us"] / rh["median_us"]
        base = f"scapy sr1+send {_ms(s1['median_us'])} (p99 {_ms(s1['p99_us'])})"
        rows.append(Row("handshake vs scapy sr1, median", _ms(rh["median_us"]), base, f"{sp:.0f}× faster",
                        "≥ 100× faster", sp >= 100))
    if rh.get("n") and s3.get("n"):
        sp = s3["median_us"] / rh["median_us"]
        rows.append(Row("handshake vs scapy L3socket, median", _ms(rh["median_us"]),
                        f"scapy conf.L3socket {_ms(s3['median_us'])} (p99 {_ms(s3['p99_us'])})",
                        f"{sp:.1f}× faster", "–", None))
    # Connections: at least 5 000/s from one process, and at least half what kernel sockets do against the
    # same listener (one at a time beside one at a time, in flight beside as many in flight).
    for mine, theirs, how in (("rawtcp_connections", "kernel_connections", "one at a time"),
                              ("rawtcp_connections_pipelined", "kernel_connections_pipelined", "{} in flight")):
        rc, kc = raw.get(mine, {}), raw.get(theirs, {})
        if rc.get("per_s") is None:
            continue
        label = how.format(rc.get("inflight"))
        kernel = kc.get("per_s")
        base = f"kernel sockets {kernel:,.0f}/s ({label})" if kernel else "kernel sockets not measured"
        ratio = rc["per_s"] / kernel if kernel else None
        met = rc["per_s"] >= 5000 and (ratio is None or ratio >= 0.5)
        rows.append(Row(f"full connections/s, {label}", f"{rc['per_s']:,.0f}/s", base,
                        f"{ratio:.2f}× kernel" if ratio is not None else "–", "≥ 5 000/s and ≥ 0.5× kernel", met))
    mr = raw.get("missed_replies", {})
    if mr:
        rows.append(Row(f"missed replies in {mr['handshakes']:,} handshakes", str(mr["missed"]),
                        f"server sent {mr['server_synacks']:,} SYN-ACKs, rawtcp saw {mr['seen']:,}", "–",
                        "0", mr["missed"] == 0 and mr["failed"] == 0))
    fl = raw.get("flood", {})
    if fl.get("rawtcp_pps"):
        hp = fl.get("hping3_pps")
        rows.append(Row("SYN flood packets/s", f"{fl['rawtcp_pps']:,}", f"hping3 --flood -S {hp:,}" if hp else
                        "hping3 missing", f"{fl['rawtcp_pps'] / hp:.2f}× hping3" if hp else "–", "≥ 1.5× hping3",
                        fl["rawtcp_pps"] >= 1.5 * hp if hp else None))
    cp = raw.get("compare", {})
    if cp.get("rawtcp_s") is not None:
        what = f"`rawtcp compare` on two {cp['packets']:,}-packet captures"
        ts = cp.get("tshark_s")
        rows.append(Row(what, f"{cp['rawtcp_s']:.2f} s", f"tshark -r (one file) {ts:.2f} s" if ts else "tshark missing",
                        f"{cp['rawtcp_s'] / ts:.2f}× tshark" if ts else "–", "faster than tshark",
                        (cp["rawtcp_s"] < ts and cp.get("rawtcp_exit") == 0) if ts else None))
    cs = raw.get("cold_start", {})
    if cs:
        rows.append(Row("`rawtcp --help` cold start", f"{cs['rawtcp_help_ms']:.0f} ms",
                        f"python -c pass {cs['python_ms']:.0f} ms",
                        f"+{cs['rawtcp_help_ms'] - cs['python_ms']:.0f} ms", "< 100 ms", cs["rawtcp_help_ms"] < 100))
    rows += loss_rows(raw.get("loss_recovery", {}))
    return rows


def format_table(rows: list[Row]) -> str:
    head = ["figure", "rawtcp", "baseline (same run)", "ratio", "target", "met"]
    table = [head, *[r.cells() for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
