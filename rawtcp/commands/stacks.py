"""rawtcp compare-stacks: the same lab or script against two TCP stacks, the two ladders side by side."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from rawtcp import errors


def _stacks(text: str) -> list[str]:
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


@click.command("compare-stacks")
@click.argument("target", metavar="LAB|SCRIPT")
@click.option("--stacks", "stacks", default="linux,pytcp", show_default=True, metavar="A,B",
              help="The two stacks to run it against (linux, pytcp).")
@click.option("--pcap-prefix", default=None, metavar="PREFIX",
              help="Keep the captures as PREFIX-A.pcap and PREFIX-B.pcap (default: a temporary directory).")
@click.option("--json", "as_json", is_flag=True, help="The two runs and the comparison as one JSON object.")
def compare_stacks(target: str, stacks: str, pcap_prefix: str | None, as_json: bool) -> int:
    """Run lab or script LAB|SCRIPT against two stacks (fresh namespaces each), then show both ladders
    side by side with the differences marked.

    Exit status: 0 both runs passed and the exchanges are the same, 1 a run failed or they differ,
    2 bad input (or what a stack's agent reports as unsupported).
    """
    from rawtcp.capture.compare import compare_captures, render_compare
    from rawtcp.lab.stack import label

    names = _stacks(stacks)
    errors.require_privileges("rawtcp compare-stacks")
    prefix = pcap_prefix or str(Path(tempfile.mkdtemp(prefix="rawtcp-stacks-")) / "run")
    results = {}
    for stack in names:
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
    compared = compare_captures(pcap_a, pcap_b, ignore={"payload"})
    same = compared.same
    if as_json:
        click.echo(json.dumps({"target": target, "stacks": names,
                               "runs": {s: r.to_dict() for s, (r, _) in results.items()},
                               "captures": {s: p for s, (_, p) in results.items()},
                               "compare": compared.to_json()},
                              default=str))
    else:
        click.echo(f"A = {label(names[0])} ({pcap_a}), B = {label(names[1])} ({pcap_b})")
        click.echo(render_compare(compared), nl=False)
    ok = res_a.passed and res_b.passed and same
    return errors.OK if ok else errors.FAILED
