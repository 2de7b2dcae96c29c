"""``rawtcp compare --stacks A,B LAB|SCRIPT``: the same lab or script against two TCP stacks, each in
fresh namespaces, both ladders with each stack's states, then the two exchanges side by side with the
differences marked. ``compare-stacks`` is the command's earlier spelling, kept as a hidden alias."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from rawtcp import errors


def parse_stacks(text: str) -> list[str]:
    """Two different known stack names from ``A,B``; click.BadParameter otherwise."""
    from rawtcp.lab.stack import STACKS

    names = [s.strip() for s in text.split(",") if s.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise click.BadParameter("give two different stacks, e.g. linux,pytcp", param_hint="'--stacks'")
    for name in names:
        if name not in STACKS:
            raise click.BadParameter(f"unknown stack {name!r} (one of {', '.join(STACKS)})", param_hint="'--stacks'")
    return names


def _run_one(target: str, stack: str, pcap: str) -> Any:
    """Run lab or script ``target`` against ``stack`` in fresh namespaces, capturing to ``pcap``."""
    from rawtcp.commands.script import _guard_setup
    from rawtcp.script.catalogue import LABS, run_lab
    from rawtcp.script.runner import RunOptions, run_script

    lab = next((lab for lab in LABS if target in (lab.name, str(lab.number))), None)
    if lab is not None:
        return _guard_setup(run_lab, lab, pcap=pcap, stack=stack)
    if not Path(target).is_file():
        names = ", ".join(lab.name for lab in LABS)
        raise errors.RawtcpError(f"{target!r} is neither a lab ({names}) nor a script file", errors.BAD_INPUT)
    return _guard_setup(run_script, target, RunOptions(pcap=pcap, stack=stack, watch_states=True))


def compare_stacks(target: str, names: list[str], *, pcap_prefix: str | None = None, as_json: bool = False,
                   ignore: set[str] | None = None, time_tolerance: float | None = None,
                   color: bool | None = None) -> int:
    """Run ``target`` on both stacks and print both runs and their comparison; returns the exit status:
    0 both passed and the exchanges are the same, 1 a run failed or they differ."""
    from rawtcp.capture.compare import compare_captures, render_compare
    from rawtcp.lab.errors import LabError
    from rawtcp.lab.stack import check_stack, label

    for stack in names:
        try:
            check_stack(stack)  # before any namespace: a missing extra is bad input, not a missing lab
        except LabError as exc:
            raise errors.RawtcpError(str(exc), errors.BAD_INPUT) from None
    errors.require_privileges("rawtcp compare --stacks")
    prefix = pcap_prefix or str(Path(tempfile.mkdtemp(prefix="rawtcp-stacks-")) / "run")
    results = {}
    for stack in names:
        # classic pcap: a pcapng's per-packet notes ("script line N") would only double the side-by-side rows
        pcap = f"{prefix}-{stack}.pcap"
        result = _run_one(target, stack, pcap)
        results[stack] = (result, pcap)
        if not as_json:
            verdict = "pass" if result.passed else f"FAIL: {result.error}"
            click.echo(f"== {label(stack)}: {verdict}")
            click.echo(result.ladder_text() or "(no segments)")
            for note in result.notes:
                click.echo(f"  {note}")
            click.echo("")
    (res_a, pcap_a), (res_b, pcap_b) = results[names[0]], results[names[1]]
    # payloads are the script's own bytes on both sides; what differs is how each stack carries them
    compared = compare_captures(pcap_a, pcap_b, ignore={"payload", *(ignore or ())},
                                time_tolerance_ms=time_tolerance)
    if as_json:
        click.echo(json.dumps({"target": target, "stacks": names,
                               "runs": {s: r.to_dict() for s, (r, _) in results.items()},
                               "captures": {s: p for s, (_, p) in results.items()},
                               "compare": compared.to_json()},
                              default=str))
    else:
        click.echo(f"A = {label(names[0])} ({pcap_a}), B = {label(names[1])} ({pcap_b})")
        click.echo(render_compare(compared, color=bool(color)), nl=False, color=color)
    ok = res_a.passed and res_b.passed and compared.same
    return errors.OK if ok else errors.FAILED


@click.command("compare-stacks", hidden=True)
@click.argument("target", metavar="LAB|SCRIPT")
@click.option("--stacks", "stacks", default="linux,pytcp", show_default=True, metavar="A,B",
              help="The two stacks to run it against (linux, pytcp).")
@click.option("--pcap-prefix", default=None, metavar="PREFIX",
              help="Keep the captures as PREFIX-A.pcap and PREFIX-B.pcap (default: a temporary directory).")
@click.option("--json", "as_json", is_flag=True, help="The two runs and the comparison as one JSON object.")
def compare_stacks_alias(target: str, stacks: str, pcap_prefix: str | None, as_json: bool) -> int:
    """The earlier spelling of `rawtcp compare --stacks A,B LAB|SCRIPT`."""
    return compare_stacks(target, parse_stacks(stacks), pcap_prefix=pcap_prefix, as_json=as_json)
