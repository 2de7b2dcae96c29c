"""The benchmark's table, from made-up measurements (no root, no network)."""

from __future__ import annotations

from benchmark.report import build_rows, format_table


def test_bench_rows_ratios_and_verdicts() -> None:
    raw = {
        "rawtcp_handshake": {"n": 10, "median_us": 200.0, "p99_us": 900.0},
        "kernel_handshake": {"n": 10, "median_us": 20.0, "p99_us": 100.0},
        "scapy_sr1_handshake": {"n": 5, "median_us": 30_000.0, "p99_us": 40_000.0},
        "rawtcp_connections": {"per_s": 1000.0},
        "kernel_connections": {"per_s": 3000.0},
        "missed_replies": {"handshakes": 10, "server_synacks": 10, "seen": 10, "missed": 0, "failed": 0},
        "flood": {"rawtcp_pps": 150_000, "hping3_pps": 100_000},
        "compare": {"packets": 100, "rawtcp_s": 1.0, "tshark_s": 2.0, "rawtcp_exit": 0},
        "cold_start": {"python_ms": 20.0, "rawtcp_help_ms": 120.0},
    }
    rows = {r.figure: r for r in build_rows(raw, quick=True)}
    assert rows["handshake latency, median"].ratio == "10.0× kernel" and rows["handshake latency, median"].met
    assert rows["handshake vs scapy sr1, median"].ratio == "150× faster"
    assert rows["handshake vs scapy sr1, median"].met
    assert rows["full connections/s, one at a time"].met is False
    assert rows["missed replies in 10 handshakes"].met
    assert rows["SYN flood packets/s"].ratio == "1.50× hping3" and rows["SYN flood packets/s"].met
    assert rows["`rawtcp --help` cold start"].met is False
    table = format_table(list(rows.values())).splitlines()
    assert table[0].startswith("| figure") and set(table[1]) <= {"|", "-"}
    assert len({len(line) for line in table}) == 1  # aligned columns
