"""The command line as a user meets it, without root: help, completion, option checks, exit statuses
of closed pipes and full disks. Each CLI run is a separate process, as a shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from rawtcp.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]


def rawtcp(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, timeout=60,
                          env=env, **kwargs)  # type: ignore[call-overload]


def shell(command: str) -> subprocess.CompletedProcess[str]:
    """A pipeline as a user types it (rawtcp is `python -m rawtcp`); pipefail gives rawtcp's own status."""
    cmd = command.replace("rawtcp", f"{sys.executable} -m rawtcp", 1)
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60)


# --- bare groups print their help ------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["lab"]])
def test_bare_group_prints_its_help_and_exits_0(argv: list[str]) -> None:
    proc = rawtcp(*argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: rawtcp") and "Commands:" in proc.stdout
    assert proc.stderr == ""
    assert "\n" in proc.stdout.strip() and "rawtcp: error" not in proc.stdout


def test_help_lists_commands_without_cutting_their_descriptions() -> None:
    for argv in (["--help"], ["lab", "--help"]):
        out = rawtcp(*argv).stdout
        commands = out.split("Commands:", 1)[1]
        assert "..." not in commands, out
    out = rawtcp("lab", "--help").stdout
    assert "(a no-op that says so if none is up)" in " ".join(out.split())


@pytest.mark.parametrize("columns", [60, 80, 132])
def test_help_fits_the_terminal(columns: int) -> None:
    env = dict(os.environ, COLUMNS=str(columns))
    for argv in (["--help"], ["lab", "up", "--help"], ["probe", "--help"], ["connect", "--help"],
                 ["demo", "--help"]):
        out = rawtcp(*argv, env=env).stdout
        widest = max(len(line) for line in out.splitlines())
        assert widest <= columns, (argv, widest, [line for line in out.splitlines() if len(line) > columns])


# --- every option says what it is, its unit and default -----------------------------------------

MY_COMMANDS = ["demo", "lab", "connect", "listen", "send", "recv", "shutdown", "close", "status", "sessions",
               "probe", "flood"]


def _commands(name: str) -> list[tuple[str, click.Command]]:
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None
    if isinstance(cmd, click.Group):
        return [(f"{name} {sub}", c) for sub, c in cmd.commands.items() if sub != "run"]
    return [(name, cmd)]


@pytest.mark.parametrize("name", MY_COMMANDS)
def test_every_option_has_help(name: str) -> None:
    for path, cmd in _commands(name):
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"rawtcp {path} {param.opts[0]} has no help"


@pytest.mark.parametrize("name", MY_COMMANDS)
def test_every_float_option_says_its_unit(name: str) -> None:
    from rawtcp.commands.common import FiniteFloat

    for path, cmd in _commands(name):
        for param in cmd.params:
            if isinstance(param, click.Option) and isinstance(param.type, FiniteFloat):
                text = f"{param.metavar or ''} {param.help}".lower()
                assert any(unit in text for unit in ("second", "milli", "%", "pct", "per second", " s")), \
                    f"rawtcp {path} {param.opts[0]}: no unit in {param.help!r}"


def test_every_command_has_a_help_line_in_the_table() -> None:
    assert all(help_line.strip() for _target, help_line in COMMANDS.values())


# --- non-finite numbers are refused ------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["compare", "--time-tolerance", "nan", "a.pcap", "b.pcap"],
    ["compare", "--time-tolerance", "inf", "a.pcap", "b.pcap"],
    ["connect", "198.18.0.2", "8080", "--rto-min", "nan"],
    ["send", "c1", "x", "--wait", "inf"],
    ["lab", "impair", "--loss", "nan"],
    ["probe", "198.18.0.2", "8080", "--timeout", "-inf"],
    ["demo", "--msl2", "NaN"],
])
def test_nan_and_inf_are_refused_in_one_line(argv: list[str]) -> None:
    proc = rawtcp(*argv)
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith("rawtcp: error: ") and "is not a finite number" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_finite_float_keeps_the_range_check() -> None:
    from rawtcp.commands.common import finite

    kind = finite(0, 100)
    assert kind.convert("12.5", None, None) == 12.5
    with pytest.raises(click.BadParameter):
        kind.convert("101", None, None)
    with pytest.raises(click.BadParameter, match="finite"):
        kind.convert(float("nan"), None, None)


# --- shell completion -----------------------------------------------------------------------------


def _complete(words: str, cword: int) -> list[str]:
    env = dict(os.environ, _RAWTCP_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
    proc = rawtcp(env=env)
    assert proc.returncode == 0, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line]


def test_completion_offers_commands_subcommands_and_options() -> None:
    assert set(_complete("rawtcp ", 1)) >= {"demo", "lab", "connect", "ladder", "compare", "probe"}
    assert _complete("rawtcp co", 1) == ["connect", "compare"]  # compare-stacks is a hidden alias
    assert set(_complete("rawtcp lab ", 2)) >= {"up", "down", "status", "impair", "run"}
    assert "--rto-min" in _complete("rawtcp connect --rt", 2)


def test_completion_script_is_printed_for_each_shell() -> None:
    for shell_name, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete")):
        env = dict(os.environ, _RAWTCP_COMPLETE=f"{shell_name}_source")
        proc = rawtcp(env=env)
        assert proc.returncode == 0 and marker in proc.stdout and "_RAWTCP_COMPLETE" in proc.stdout


def test_completing_command_names_imports_no_command_module() -> None:
    # rawtcp.commands.groups holds the click group classes the top level itself is built from.
    code = ("import os, sys; os.environ.update(_RAWTCP_COMPLETE='bash_complete', COMP_WORDS='rawtcp ', "
            "COMP_CWORD='1')\n"
            "from rawtcp.cli import main\n"
            "try:\n    main([])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('rawtcp.commands.') and m != 'rawtcp.commands.groups' "
            "or m == 'scapy'), "
            "file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip() == "[]", proc.stderr


# --- pipes and full disks ---------------------------------------------------------------------------


def test_a_reader_that_leaves_early_is_not_an_error() -> None:
    proc = shell("rawtcp labs | head -3")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3 and proc.stderr == ""


def test_a_full_standard_output_is_named_and_is_not_exit_1(tmp_path: Path) -> None:
    proc = shell("rawtcp labs > /dev/full")
    assert proc.returncode == 2
    assert proc.stderr == "rawtcp: error: cannot write standard output: No space left on device\n"


def test_compare_to_a_full_disk_is_not_different(tmp_path: Path) -> None:
    a = _seed_pcap(tmp_path / "a.pcap")
    proc = shell(f"rawtcp compare {a} {a} > /dev/full")
    assert proc.returncode == 2, proc.stderr  # not 1: that means "different"
    assert "cannot write standard output" in proc.stderr and proc.stderr.count("\n") == 1


def test_write_text_names_the_output_file() -> None:
    from rawtcp import errors
    from rawtcp.commands.common import write_text

    with pytest.raises(errors.RawtcpError) as info:
        write_text("/dev/full", "x" * 100_000)
    assert str(info.value) == "cannot write /dev/full: No space left on device"
    assert info.value.exit_code == errors.BAD_INPUT


def _seed_pcap(path: Path) -> Path:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    c, s = ("198.18.0.1", 40000), ("198.18.0.2", 8080)

    def seg(src: tuple[str, int], dst: tuple[str, int], flags: str, seq: int, ack: int, data: bytes = b""):
        return Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq,
                                                            ack=ack) / data

    pkts = [seg(c, s, "S", 1000, 0), seg(s, c, "SA", 5000, 1001), seg(c, s, "A", 1001, 5001),
            seg(c, s, "PA", 1001, 5001, b"x" * 20), seg(s, c, "A", 5001, 1021), seg(c, s, "FA", 1021, 5001),
            seg(s, c, "FA", 5001, 1022), seg(c, s, "A", 1022, 5002)]
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i / 100
    wrpcap(str(path), pkts)
    return path


# --- probe's flag spellings -------------------------------------------------------------------------


@pytest.mark.parametrize("text,letters", [
    ("S", "S"), ("SA", "SA"), ("sa", "sa"), ("S.", "SA"), (".", "A"), ("P.", "PA"), ("syn,ack", "SA"),
    ("SYN,ACK", "SA"), ("syn", "S"), ("fin,psh,urg", "FPU"), ("none", ""), ("", ""), ("rst|ack", "RA"),
])
def test_probe_flag_spellings(text: str, letters: str) -> None:
    from rawtcp.commands.craft import flag_letters

    assert flag_letters(text) == letters


def test_probe_unknown_flag_name_is_one_line() -> None:
    from rawtcp.commands.craft import flag_letters
    from rawtcp.craft.errors import CraftError

    with pytest.raises(CraftError, match="unknown TCP flag 'sin'"):
        flag_letters("sin,ack")


# --- the demo's ladder fits the terminal -------------------------------------------------------------


def _demo_records() -> list[dict[str, object]]:
    rows = [("out", "S", 1000, None, 0, "mss 1460", "SYN-SENT", None),
            ("in", "S.", 3012559609, 1001, 0, "mss 1024", "SYN-SENT", "LISTEN (request sock)"),
            ("out", ".", 1001, 3012559610, 0, "", "ESTABLISHED", "ESTABLISHED"),
            ("out", "P.", 1001, 3012559610, 20, "", "ESTABLISHED", "ESTABLISHED")]
    return [{"dir": d, "flags": f, "seq": seq, "rel_seq": 0, "ack": ack, "rel_ack": 1 if ack else None,
             "len": n, "options": o, "state": st, "kernel_state": k} for d, f, seq, ack, n, o, st, k in rows]


@pytest.mark.parametrize("width", [None, 132, 100, 80, 60])
def test_demo_ladder_fits_the_width_without_losing_a_field(width: int | None) -> None:
    from rawtcp.commands.demo import ladder_lines

    lines = ladder_lines(_demo_records(), width)  # type: ignore[arg-type]
    if width is not None and width >= 80:
        assert max(map(len, lines)) <= width, lines
    text = "\n".join(lines)
    for needed in ("3012559609", "ack 1001", "<mss 1024>", "LISTEN (request sock)", "ESTABLISHED", "len 20"):
        assert needed in text
    if width is None:
        assert len(lines) == 5  # unchanged when nothing asks it to fit (pipes, files)


def test_sigint_interrupts_even_when_the_parent_ignored_it() -> None:
    """`rawtcp … &` in a script starts with SIGINT ignored; `kill -INT` must still unwind it (exit 130)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "rawtcp", "ladder", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        time.sleep(1.0)  # started and blocked reading the capture from stdin
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
