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


def build_rows(raw: dict[str, Any], quick: bool) -> list[Row]:
    rows: list[Row] = []
    rh, kh = raw.get("rawtcp_handshake", {}), raw.get("kernel_handshake", {})
    s1, s3 = raw.get("scapy_sr1_handshake", {}), raw.get("scapy_l3socket_handshake", {})
    if rh.get("n") and kh.get("n"):
        ratio_k = rh["median_us"] / kh["median_us"]
        rows.append(Row("handshake latency, median", _ms(rh["median_us"]), f"kernel connect() {_ms(kh['median_us'])}",
                        f"{ratio_k:.1f}× kernel", "≤ 20× kernel", ratio_k <= 20))
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
    rc, kc = raw.get("rawtcp_connections", {}), raw.get("kernel_connections", {})
    pc = raw.get("rawtcp_connections_pipelined", {})
    base = f"kernel sockets {kc.get('per_s', 0):,.0f}/s (one at a time)"
    if rc.get("per_s") is not None:
        rows.append(Row("full connections/s, one at a time", f"{rc['per_s']:,.0f}/s", base,
                        f"{rc['per_s'] / kc['per_s']:.2f}× kernel" if kc.get("per_s") else "–",
                        "≥ 5 000/s", rc["per_s"] >= 5000))
    if pc.get("per_s") is not None:
        rows.append(Row(f"full connections/s, {pc['inflight']} in flight", f"{pc['per_s']:,.0f}/s", base,
                        f"{pc['per_s'] / kc['per_s']:.2f}× kernel" if kc.get("per_s") else "–",
                        "≥ 5 000/s", pc["per_s"] >= 5000))
    mr = raw.get("missed_replies", {})
    if mr:
        rows.append(Row(f"missed replies in {mr['handshakes']:,} handshakes", str(mr["missed"]),
                        f"server sent {mr['server_synacks']:,} SYN-ACKs, rawtcp saw {mr['seen']:,}", "–",
                        "0", mr["missed"] == 0 and mr["failed"] == 0))
    fl = raw.get("flood", {})
    if fl.get("rawtcp_pps"):
        hp = fl.get("hping3_pps")
        rows.append(Row("SYN flood packets/s", f"{fl['rawtcp_pps']:,}", f"hping3 --flood -S {hp:,}" if hp else
                        "hping3 missing", f"{fl['rawtcp_pps'] / hp:.2f}× hping3" if hp else "–", "≥ 1.0× hping3",
                        fl["rawtcp_pps"] >= hp if hp else None))
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
    return rows


def format_table(rows: list[Row]) -> str:
    head = ["figure", "rawtcp", "baseline (same run)", "ratio", "target", "met"]
    table = [head, *[r.cells() for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
