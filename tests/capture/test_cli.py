"""``rawtcp ladder`` and ``rawtcp compare``: output, exit codes, one-line errors for bad input."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from rawtcp.commands.capture import compare, ladder

from .builders import seed_packets


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def one_line_error(result: object, fragment: str) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert err.startswith("rawtcp: error: ") and fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert result.exception is None or isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]


@pytest.fixture
def bad_files(tmp_path: Path, seed_pcap: Path) -> dict[str, Path]:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    files = {}
    for name, data in {
        "empty": b"",
        "text": b"hello, this is not a capture\n",
        "truncated": seed_pcap.read_bytes()[:-7],
        "linktype": struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147),
    }.items():
        path = tmp_path / f"{name}.pcap"
        path.write_bytes(data)
        files[name] = path
    files["udp"] = tmp_path / "udp.pcap"
    wrpcap(str(files["udp"]), [Ether() / IP() / UDP()])
    files["missing"] = tmp_path / "missing.pcap"
    return files


EXPECTED = {
    "empty": "empty file",
    "text": "not a pcap or pcapng file",
    "linktype": "unsupported link type 147",
    "udp": "no TCP segments in",
    "missing": "No such file or directory",
}


def test_ladder_text(runner: CliRunner, seed_pcap: Path) -> None:
    result = runner.invoke(ladder, [str(seed_pcap)])
    assert result.exit_code == 0, result.output
    assert "stream 0: 198.18.0.1:40000 (client) <-> 198.18.0.2:8080 (server)" in result.output
    assert " S. seq 0 ack 1 win 65160 len 0 " in result.output
    assert "\x1b[" not in result.output  # not a terminal: no colour
    forced = runner.invoke(ladder, [str(seed_pcap), "--color", "--absolute", "--stream", "0"])
    assert forced.exit_code == 0 and "\x1b[" in forced.output
    assert "seq 8000 ack 1001" in forced.output


def test_ladder_svg(runner: CliRunner, seed_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "seed.svg"
    result = runner.invoke(ladder, [str(seed_pcap), "--svg", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    stdout = runner.invoke(ladder, [str(seed_pcap), "--svg", "-"])
    assert stdout.output.startswith("<?xml") and ET.fromstring(stdout.output.encode()).tag.endswith("svg")


def test_ladder_stream_that_does_not_exist(runner: CliRunner, make_pcap: Callable[..., Path]) -> None:
    path = make_pcap(seed_packets(c_port=1) + seed_packets(c_port=2) + seed_packets(c_port=3))
    one_line_error(runner.invoke(ladder, [str(path), "--stream", "7"]), f"no stream 7 in {path} (it has 0..2)")
    assert runner.invoke(ladder, [str(path), "--stream", "2"]).exit_code == 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ladder_bad_input(runner: CliRunner, bad_files: dict[str, Path], name: str) -> None:
    path = bad_files[name]
    result = runner.invoke(ladder, [str(path)])
    one_line_error(result, EXPECTED[name])
    assert str(path) in result.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_compare_bad_input(runner: CliRunner, bad_files: dict[str, Path], seed_pcap: Path, name: str) -> None:
    path = bad_files[name]
    result = runner.invoke(compare, [str(seed_pcap), str(path)])
    one_line_error(result, EXPECTED[name])
    assert str(path) in result.stderr
    one_line_error(runner.invoke(compare, [str(path), str(seed_pcap)]), EXPECTED[name])


def test_compare_exit_codes_and_output(runner: CliRunner, make_pcap: Callable[..., Path]) -> None:
    a = make_pcap(seed_packets())
    same = make_pcap(seed_packets(c_isn=1, s_isn=2, c_port=5555, ttl=1))
    other = make_pcap(seed_packets(server_window=100))
    result = runner.invoke(compare, [str(a), str(same)])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("same: 1 connection, 10 segments in each capture")
    result = runner.invoke(compare, [str(a), str(other)])
    assert result.exit_code == 1
    assert "different: 1 of 1 connection differ, 4 differences" in result.output
    assert runner.invoke(compare, [str(a), str(other), "--ignore", "window"]).exit_code == 0
    assert runner.invoke(compare, [str(a), str(other), "--ignore", "len,window"]).exit_code == 0
    result = runner.invoke(compare, [str(a), str(other), "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["same"] is False and doc["differences"] == 4
    slow = make_pcap(seed_packets(step=0.02))
    assert runner.invoke(compare, [str(a), str(slow)]).exit_code == 0
    assert runner.invoke(compare, [str(a), str(slow), "--time-tolerance", "5"]).exit_code == 1
    assert runner.invoke(compare, [str(a), str(slow), "--time-tolerance", "50"]).exit_code == 0


def test_compare_argument_errors(runner: CliRunner, seed_pcap: Path) -> None:
    one_line_error(runner.invoke(compare, [str(seed_pcap), str(seed_pcap), "--ignore", "colour"]),
                   "unknown field 'colour'")
    one_line_error(runner.invoke(compare, [str(seed_pcap)]), "needs two captures")
