"""rawtcp run SCRIPT.pkt, rawtcp labs, rawtcp lab run NAME|--all: packetdrill scripts and the lab catalogue."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from rawtcp import errors


class _SetupError(errors.RawtcpError):
    """The lab or helper could not be made: exit 2, as a script error (issue 3)."""


def _guard_setup(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; a lab/wire failure becomes a one-line error with exit status 2."""
    from rawtcp.lab.errors import LabError
    from rawtcp.wire.errors import WireError

    try:
        return fn(*args, **kwargs)
    except (LabError, WireError) as exc:
        raise _SetupError(str(exc), errors.BAD_INPUT) from None


def _print_result(result: Any, as_json: bool, verbose_ladder: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    if result.passed:
        click.echo(f"{result.path}: pass ({result.events or len(result.ladder)} events, {result.duration:.2f} s)")
        if verbose_ladder and result.ladder:
            click.echo(result.ladder_text())
    else:
        click.echo(result.error, err=True)
        click.echo("what happened:")
        click.echo(result.ladder_text() or "(no segments)")
    for note in result.notes:
        click.echo(f"  {note}")


@click.command()
@click.argument("script", type=click.Path(dir_okay=False))
@click.option("--lab", "lab_kind", type=click.Choice(["netns", "docker"]), default="netns", show_default=True,
              help="Where the kernel under test lives (fresh namespaces per run).")
@click.option("--tolerance-usecs", type=click.IntRange(0), default=None,
              help="Absolute timing tolerance (overrides the script's --tolerance_usecs; default 10000).")
@click.option("--pcap", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write every segment sent and seen to this pcap file.")
@click.option("--ladder", is_flag=True, help="Print the ladder of segments on success too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object with the verdict and the ladder.")
def run(script: str, lab_kind: str, tolerance_usecs: int | None, pcap: str | None, ladder: bool,
        as_json: bool) -> int:
    """Run a packetdrill-dialect SCRIPT against the Linux kernel in fresh namespaces.

    Exit status: 0 the kernel did what the script says, 1 it did not (packetdrill-style message and
    the ladder of what happened), 2 the script or the set-up is bad.
    """
    from rawtcp.script.runner import RunOptions, run_script

    errors.require_privileges("rawtcp run")
    opts = RunOptions(tolerance_usecs=tolerance_usecs, pcap=pcap, lab=lab_kind)
    result = _guard_setup(run_script, script, opts)
    _print_result(result, as_json, ladder)
    return result.exit_code


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per lab.")
def labs(as_json: bool) -> None:
    """List the lab catalogue (scripts/labs/): one lab per question in SEED.md."""
    from rawtcp.script.catalogue import LABS

    for lab in LABS:
        if as_json:
            click.echo(json.dumps({"number": lab.number, "name": lab.name, "file": str(lab.path),
                                   "summary": lab.summary}))
        else:
            click.echo(f"{lab.number:2d}  {lab.name:<16} {lab.summary}")


@click.command("run")
@click.argument("name", required=False)
@click.option("--all", "run_all", is_flag=True, help="Run every lab and print a summary.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per lab.")
@click.option("--pcap", type=click.Path(dir_okay=False), help="Capture the lab's segments (one lab) or "
              "each lab's to PCAP with the lab's name inserted (--all).")
@click.option("--compare-kernel", is_flag=True, help="Also run the same exchange with a kernel client and "
              "compare the captures (labs handshake, seed-exchange, syn-fin-seq).")
def lab_run(name: str | None, run_all: bool, as_json: bool, pcap: str | None, compare_kernel: bool) -> int:
    """Run lab NAME (see `rawtcp labs`) in fresh namespaces, with its ladder and the kernel's states."""
    from rawtcp.script.catalogue import LABS, find, run_lab
    from rawtcp.script.errors import ScriptError

    if run_all == bool(name):
        raise click.UsageError("give a lab NAME or --all")
    errors.require_privileges("rawtcp lab run")
    chosen = list(LABS) if run_all else [find(name or "")]
    if compare_kernel:
        if run_all or chosen[0].name not in KERNEL_COMPARABLE:
            raise click.UsageError(f"--compare-kernel applies to one of: {', '.join(KERNEL_COMPARABLE)}")
        return _lab_vs_kernel(chosen[0], pcap)
    failed = []
    for lab in chosen:
        if not as_json:
            click.echo(f"== lab {lab.number}: {lab.name} — {lab.summary}")
            click.echo(_intro(lab.path))
        try:
            lab_pcap = pcap
            if pcap and run_all:
                stem, dot, ext = pcap.rpartition(".")
                lab_pcap = f"{stem}-{lab.name}.{ext}" if dot else f"{pcap}-{lab.name}"
            result = _guard_setup(run_lab, lab, pcap=lab_pcap)
        except (ScriptError, _SetupError) as exc:
            if not run_all:
                raise
            failed.append(lab.name)
            click.echo(f"{lab.name}: error: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps({"lab": lab.name, **result.to_dict()}))
        else:
            if result.passed:
                click.echo(result.ladder_text())
                for note in result.notes:
                    click.echo(f"  {note}")
                click.echo(f"lab {lab.name}: pass ({result.duration:.2f} s)\n")
            else:
                _print_result(result, False, False)
                click.echo(f"lab {lab.name}: FAIL\n")
        if not result.passed:
            failed.append(lab.name)
        sys.stdout.flush()
    if run_all and not as_json:
        click.echo(f"{len(chosen) - len(failed)}/{len(chosen)} labs passed"
                   + (f"; failed: {', '.join(failed)}" if failed else ""))
    return errors.FAILED if failed else errors.OK


# Labs where rawtcp plays a client doing what a kernel client can do the same way (connect, data, close).
KERNEL_COMPARABLE = ("handshake", "seed-exchange", "syn-fin-seq")


def _lab_vs_kernel(lab: Any, pcap: str | None) -> int:
    import tempfile

    from rawtcp.capture.compare import compare_captures, render_compare
    from rawtcp.script.catalogue import run_lab
    from rawtcp.session.kernel_compare import run_kernel_client

    crafted = pcap or tempfile.mktemp(prefix=f"rawtcp-{lab.name}-", suffix=".pcap")
    kernel = crafted.rsplit(".", 1)[0] + "-kernel.pcap"
    result = _guard_setup(run_lab, lab, pcap=crafted)
    click.echo(result.ladder_text())
    click.echo(f"lab {lab.name}: {'pass' if result.passed else 'FAIL'}; now a kernel client, same exchange…\n")
    _guard_setup(run_kernel_client, kernel)
    compared = compare_captures(crafted, kernel, ignore={"payload"})
    click.echo(render_compare(compared), nl=False)
    click.echo(f"captures: {crafted} (lab) and {kernel} (kernel client)")
    return errors.OK if result.passed else errors.FAILED


def _intro(path: Any) -> str:
    """The lab's opening comment (its lesson), without comment markers."""
    lines = []
    try:
        text = path.read_text()
    except OSError:
        return ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            lines.append(line[2:].strip())
        elif line.startswith("#") and not line.startswith("#!"):
            lines.append(line[1:].strip())
        elif line.startswith('"""') and lines == [] and path.suffix == ".py":
            continue
        elif not line:
            if lines:
                break
        else:
            break
    return "\n".join(f"  {ln}" for ln in lines)
