"""The benchmark's table and its loss-recovery arithmetic, from made-up measurements (no root, no network)."""

from __future__ import annotations

import math

from benchmark.lossy import QUICK_PLAN, LossPlan, Transfer, summarise
from benchmark.report import build_rows, format_table

PLAN = LossPlan(nbytes=1000, runs=3, loss=20, reorder=10, duplicate=5, delay_ms=50, jitter_ms=20, timeout=120.0,
                short=False)


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
    assert rows["full connections/s, one at a time"].ratio == "0.33× kernel"
    assert rows["handshake latency, median"].target == "≤ 10× kernel"
    assert rows["missed replies in 10 handshakes"].met
    assert rows["SYN flood packets/s"].ratio == "1.50× hping3" and rows["SYN flood packets/s"].met
    assert rows["`rawtcp --help` cold start"].met is False
    table = format_table(list(rows.values())).splitlines()
    assert table[0].startswith("| figure") and set(table[1]) <= {"|", "-"}
    assert len({len(line) for line in table}) == 1  # aligned columns


def test_connection_rows_need_5000_per_second_and_half_the_kernel_side_by_side() -> None:
    raw = {"rawtcp_connections": {"per_s": 6000.0}, "kernel_connections": {"per_s": 15_000.0},
           "rawtcp_connections_pipelined": {"per_s": 9000.0, "inflight": 16},
           "kernel_connections_pipelined": {"per_s": 16_000.0, "inflight": 16}}
    rows = {r.figure: r for r in build_rows(raw, quick=True)}
    serial, piped = rows["full connections/s, one at a time"], rows["full connections/s, 16 in flight"]
    assert serial.met is False and serial.ratio == "0.40× kernel"  # 5 000/s is not enough beside 15 000/s
    assert piped.met is True and piped.baseline == "kernel sockets 16,000/s (16 in flight)"


def _runs(client: str, direction: str, times: list[float | None], plan: LossPlan = PLAN,
          delivered: int | None = None) -> list[Transfer]:
    full = plan.nbytes if delivered is None else delivered
    # a run that finished delivered everything; one that failed got ``delivered`` bytes and no end
    return [Transfer(client, direction, i, t, plan.nbytes if t is not None else full, t is not None, t is not None)
            for i, t in enumerate(times)]


def test_medians_count_a_failed_run_as_slower_than_any_finished_one() -> None:
    transfers = (_runs("rawtcp", "send", [10.0, None, 12.0]) + _runs("kernel-reno", "send", [9.0, 8.0, 30.0])
                 + _runs("kernel-bbr", "send", [2.0, 3.0, 1.0])
                 + _runs("rawtcp", "recv", [None, None, 5.0], delivered=400)
                 + _runs("kernel-reno", "recv", [4.0, 4.0, 4.0]) + _runs("kernel-bbr", "recv", [None, 1.0, 1.0]))
    s = summarise(transfers, PLAN)
    send, recv = s["send"], s["recv"]
    assert send["rawtcp"]["median_s"] == 12.0 and send["rawtcp"]["failed"] == 1
    assert send["rawtcp"]["times_s"] == [10.0, None, 12.0]
    # a run given up on has lost nothing (it failed, and counts as slowest); what ended is intact
    assert send["rawtcp"]["lost_bytes"] == 0 and send["rawtcp"]["intact"]
    assert send["kernel-reno"]["median_s"] == 9.0 and send["ratio_reno"] == round(12 / 9, 3)
    assert send["kernel-bbr"]["median_s"] == 2.0 and send["ratio_bbr"] == 6.0
    assert math.isclose(send["kernel-reno"]["goodput_kbit_s"], 1000 * 8 / 9.0 / 1000, abs_tol=0.1)
    # most of rawtcp's runs failed: no median, no ratio
    assert recv["rawtcp"]["median_s"] is None and recv["ratio_reno"] is None and recv["rawtcp"]["failed"] == 2
    assert recv["kernel-bbr"]["median_s"] == 1.0


def test_loss_rows_show_the_ratio_to_reno_and_whether_the_target_is_met() -> None:
    transfers = (_runs("rawtcp", "send", [10.0, 11.0, 12.0]) + _runs("kernel-reno", "send", [10.0, 10.0, 10.0])
                 + _runs("kernel-bbr", "send", [5.0, 5.0, 5.0])
                 + _runs("rawtcp", "recv", [20.0, 20.0, 20.0]) + _runs("kernel-reno", "recv", [10.0, 10.0, 10.0])
                 + _runs("kernel-bbr", "recv", [None, None, None]))
    raw = {"loss_recovery": {"plan": PLAN.to_json(), "summary": summarise(transfers, PLAN)}}
    rows = build_rows(raw, quick=False)
    assert [r.figure for r in rows] == [
        "loss recovery: rawtcp sends 1,000 B, 20% loss, 10% reorder, 5% dup, 50±20 ms, median of 3",
        "loss recovery: rawtcp receives 1,000 B, 20% loss, 10% reorder, 5% dup, 50±20 ms, median of 3"]
    send, recv = rows
    assert send.ratio == "1.10× reno (2.20× bbr)" and send.met is True
    assert send.target == "≤ 1.25× reno, 0 lost"
    assert send.rawtcp.startswith("11.00 s (") and "lost 0 B" in send.rawtcp
    assert "kernel reno 10.00 s" in send.baseline and "bbr 5.00 s" in send.baseline
    assert recv.ratio == "2.00× reno" and recv.met is False
    assert "bbr failed" in recv.baseline
    assert len({len(line) for line in format_table(rows).splitlines()}) == 1


def test_a_lost_byte_misses_the_target_whatever_the_time() -> None:
    # the stream ended (the sender's FIN was read) one byte short
    transfers = [*_runs("rawtcp", "send", [1.0, 1.0, 1.0]), Transfer("rawtcp", "send", 3, None, 999, True, False),
                 *_runs("kernel-reno", "send", [10.0] * 4), *_runs("kernel-bbr", "send", [10.0] * 4)]
    raw = {"loss_recovery": {"plan": PLAN.to_json(), "summary": summarise(transfers, PLAN)}}
    (send,) = build_rows(raw, quick=False)
    assert send.met is False and "lost 1 B" in send.rawtcp and "1 of 4 failed" in send.rawtcp


def test_one_timed_out_run_misses_the_target_even_with_a_good_median() -> None:
    transfers = [*_runs("rawtcp", "send", [1.0, 1.0, 1.0, None], delivered=500),
                 *_runs("kernel-reno", "send", [10.0] * 4), *_runs("kernel-bbr", "send", [10.0] * 4)]
    summary = summarise(transfers, PLAN)
    assert summary["send"]["rawtcp"]["lost_bytes"] == 0 and summary["send"]["ratio_reno"] == 0.1
    (send,) = build_rows({"loss_recovery": {"plan": PLAN.to_json(), "summary": summary}}, quick=False)
    assert send.met is False and "1 of 4 failed" in send.rawtcp


def test_a_timed_out_run_is_allowed_only_as_often_as_the_baseline_had_one() -> None:
    # Receiving, both senders are the kernel's: a Reno sender stuck in a backed-off timer fails rawtcp's
    # run and the kernel receiver's alike. No more failures than kernel Reno had, and the median holds.
    transfers = [*_runs("rawtcp", "recv", [10.0, 11.0, 12.0, None], delivered=500),
                 *_runs("kernel-reno", "recv", [10.0, 10.0, 10.0, None]), *_runs("kernel-bbr", "recv", [5.0] * 4)]
    (recv,) = build_rows({"loss_recovery": {"plan": PLAN.to_json(), "summary": summarise(transfers, PLAN)}},
                         quick=False)
    assert recv.met is True and "1 of 4 failed" in recv.rawtcp


def test_the_short_version_says_so() -> None:
    transfers = [t for c in ("rawtcp", "kernel-reno", "kernel-bbr") for d in ("send", "recv")
                 for t in _runs(c, d, [1.0] * QUICK_PLAN.runs, QUICK_PLAN)]
    raw = {"loss_recovery": {"plan": QUICK_PLAN.to_json(), "summary": summarise(transfers, QUICK_PLAN)}}
    rows = build_rows(raw, quick=True)
    assert len(rows) == 2 and all(r.figure.startswith("loss recovery (short version): ") for r in rows)
    assert "64 KiB" in rows[0].figure and rows[0].met is True


def test_the_full_plan_is_the_one_asked_for() -> None:
    from benchmark.lossy import FULL_PLAN

    assert (FULL_PLAN.nbytes, FULL_PLAN.loss, FULL_PLAN.reorder, FULL_PLAN.duplicate, FULL_PLAN.delay_ms,
            FULL_PLAN.jitter_ms) == (256 * 1024, 20, 10, 5, 50, 20)
    assert FULL_PLAN.runs >= 5 and FULL_PLAN.timeout <= 120 and not FULL_PLAN.short
    assert QUICK_PLAN.short and QUICK_PLAN.runs >= 3
