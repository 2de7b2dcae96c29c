"""Lab helpers that need neither root nor a namespace: netem arguments, parsing, naming."""

from __future__ import annotations

import pytest

from rawtcp.lab.errors import LabError
from rawtcp.lab.topology import LabConfig, fresh_lab, netem_args, parse_netem


def test_defaults_are_the_documented_lab():
    cfg = LabConfig()
    assert (cfg.client_ns, cfg.server_ns) == ("rawtcp-client", "rawtcp-server")
    assert (cfg.client_ip, cfg.server_ip, cfg.prefix, cfg.port) == ("198.18.0.1", "198.18.0.2", 24, 8080)
    assert cfg.listener == "echo"


def test_fresh_lab_names_are_unique_and_keep_the_addresses():
    a, b = fresh_lab("rtt-lab"), fresh_lab("rtt-lab")
    assert len({a.client_ns, a.server_ns, b.client_ns, b.server_ns}) == 4
    assert a.client_ns.startswith("rtt-lab-") and a.client_ns.endswith("-c") and a.server_ns.endswith("-s")
    assert (a.client_ip, a.server_ip) == (b.client_ip, b.server_ip) == ("198.18.0.1", "198.18.0.2")
    assert fresh_lab("rtt-lab", listener="seed", port=9000).listener == "seed"


def test_netem_args_for_the_issue_7_fault_mix():
    args = netem_args(loss=20, delay_ms=50, jitter_ms=20, reorder=10, duplicate=5, corrupt=1)
    text = " ".join(args)
    assert "delay 50ms 20ms" in text
    assert "loss random 20%" in text
    assert "reorder 10%" in text and "duplicate 5%" in text and "corrupt 1%" in text


def test_netem_args_nothing_given_is_only_the_queue_limit():
    assert netem_args() == ["limit", "100000"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": 101}, "loss 101% is outside 0-100"),
        ({"duplicate": -1}, "duplicate -1% is outside 0-100"),
        ({"delay_ms": -5}, "delay -5 ms is outside"),
        ({"jitter_ms": 5}, "jitter needs a delay"),
        ({"reorder": 10}, "reorder needs a delay"),
    ],
)
def test_netem_args_rejects_bad_settings_with_one_line(kwargs, message):
    with pytest.raises(LabError, match=message) as info:
        netem_args(**kwargs)
    assert "\n" not in str(info.value)


def test_parse_netem_reads_tc_output():
    line = ("qdisc netem 8001: root refcnt 2 limit 100000 delay 50ms  20ms loss 20% duplicate 5% "
            "reorder 10% corrupt 1% seed 123 gap 1")
    got = parse_netem(line)
    assert got["delay_ms"] == 50 and got["jitter_ms"] == 20
    assert (got["loss"], got["duplicate"], got["reorder"], got["corrupt"]) == (20, 5, 10, 1)


def test_parse_netem_units_and_missing_settings():
    got = parse_netem("qdisc netem 8002: root refcnt 2 limit 1000 delay 1.5s")
    assert got["delay_ms"] == 1500 and got["jitter_ms"] is None and got["loss"] is None
