"""rawtcp run SCRIPT.pkt, rawtcp labs, rawtcp lab run NAME|--all: packetdrill scripts and the lab catalogue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from rawtcp import errors


class _SetupError(errors.RawtcpError):
    """The lab or helper could not be made: exit 2, as a script error."""


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


def _defines(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="'-D'")
        out[name.strip()] = value
    return out


def _variants(text: str | None, ip_version: str | None) -> list[str]:
    from rawtcp.script.suite import IP_VERSIONS

    if text is None:
        return [ip_version or "ipv4"]
    chosen = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))  # each mode once
    if chosen == ["all"]:
        return list(IP_VERSIONS)
    bad = [v for v in chosen if v not in IP_VERSIONS]
    if bad or not chosen:
        raise click.BadParameter(f"{', '.join(bad) or text!r}: choose from {', '.join(IP_VERSIONS)} or all",
                                 param_hint="'--variants'")
    return chosen


@click.command()
@click.argument("scripts", nargs=-1, required=True, type=click.Path())
@click.option("--ip-version", "--ip_version", "ip_version",
              type=click.Choice(["ipv4", "ipv4-mapped-ipv6", "ipv6"]), default=None,
              help="Address mode, as packetdrill's --ip_version (default: the script's own option line, else ipv4).")
@click.option("--variants", default=None, metavar="LIST",
              help="Run every script in each of these modes (comma-separated: ipv4,ipv4-mapped-ipv6,ipv6, or all), "
                   "with run_all.py's -D defines for each.")
@click.option("-D", "--define", "defines", multiple=True, metavar="NAME=VALUE",
              help="Define a symbol the script uses (packetdrill's -D), e.g. -D TFO_COOKIE=3021b9d889017eeb.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Scripts run at once, each in its own namespaces.")
@click.option("--retries", type=click.IntRange(0, 5), default=0, show_default=True,
              help="Run a failed script again up to this many times (suites; retried passes are reported).")
@click.option("--check", is_flag=True, help="Only parse and validate the scripts (no root, no network).")
@click.option("--lab", "lab_kind", type=click.Choice(["netns", "docker"]), default="netns", show_default=True,
              help="Where the kernel under test lives (fresh namespaces per run).")
@click.option("--tolerance-usecs", "--tolerance_usecs", "tolerance_usecs", type=click.IntRange(0), default=None,
              help="Absolute timing tolerance in microseconds (overrides the script's; default 10000).")
@click.option("--timeout", type=click.FloatRange(1), default=None,
              help="Seconds one script may take in a suite run before it is stopped and reported [default: 180].")
@click.option("--pcap", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write every segment sent and seen to this pcap file (one script).")
@click.option("--ladder", is_flag=True, help="Print the ladder of segments on success too (one script).")
@click.option("--junit", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write a JUnit XML report (one testsuite per address mode).")
@click.option("--stack", type=click.Choice(["linux", "pytcp"]), default="linux", show_default=True,
              help="The TCP stack under test: Linux's, or PyTCP on a TAP device (extra rawtcp[pytcp]).")
@click.option("--agent", metavar="PATH|HOST:PORT", default=None,
              help="Make the script's calls through this agent (docs/agent-protocol.md), in the lab that is up "
                   "(a TCP agent's token from RAWTCP_HELPER_TOKEN).")
@click.option("--netns", "lab_ns", metavar="NAME", default=None,
              help="With --agent: the client namespace of the lab that is up [default: rawtcp-client].")
@click.option("--json", "as_json", is_flag=True,
              help="JSON: one object for one script (verdict and ladder); one line per script and mode, then a "
                   "summary, for several.")
def run(scripts: tuple[str, ...], ip_version: str | None, variants: str | None, defines: tuple[str, ...],
        jobs: int, retries: int, check: bool, lab_kind: str, tolerance_usecs: int | None, timeout: float | None,
        pcap: str | None, ladder: bool, junit: str | None, stack: str, agent: str | None, lab_ns: str | None,
        as_json: bool) -> int:
    """Run packetdrill-dialect SCRIPTS (files or directories of *.pkt) against the Linux kernel.

    One script runs in fresh namespaces in this process. Several (or a directory, or --variants with
    more than one mode) run as a suite: each script and mode in its own namespaces, -j at a time, from
    the script's own directory, then a summary table.

    Exit status: 0 everything passed, 1 a script failed (packetdrill-style message and the ladder of
    what happened), 2 a script or the set-up is bad.
    """
    from rawtcp.script.suite import find_scripts, variant_applies

    if lab_ns is not None and agent is None:
        raise click.UsageError("--netns names the lab an --agent run uses: give --agent too")
    symbols = _defines(defines)
    modes = _variants(variants, ip_version)
    files = find_scripts(scripts)
    if not files:
        raise click.BadParameter("no *.pkt scripts found", param_hint="SCRIPTS")
    if check:
        return _check(files, modes, symbols, as_json)
    errors.require_privileges("rawtcp run")
    # One script in one mode runs here; with --variants it must apply to that mode (*v4.pkt / *v6.pkt),
    # as in a suite: an explicit --ip-version runs it whatever its name says, as packetdrill would.
    single = (len(files) == 1 and len(modes) == 1 and all(not Path(s).is_dir() for s in scripts)
              and (variants is None or variant_applies(files[0], modes[0])))
    if single:
        from rawtcp.script.runner import RunOptions, run_script

        opts = RunOptions(tolerance_usecs=tolerance_usecs, pcap=pcap, lab=lab_kind,
                          ip_version=ip_version if variants is None else modes[0], stack=stack, agent=agent,
                          lab_ns=lab_ns)
        result = _guard_setup(run_script, str(files[0]), opts, symbols)
        _print_result(result, as_json, ladder)
        if junit:
            _single_junit(result, modes[0], junit)
        return result.exit_code
    if pcap or ladder or lab_kind != "netns" or agent:
        raise click.UsageError("--pcap, --ladder, --lab docker and --agent apply to one script")
    return _suite(files, modes, symbols, jobs, retries, tolerance_usecs, timeout, junit, as_json, stack)


def _suite(files: list[Path], modes: list[str], symbols: dict[str, str], jobs: int, retries: int,
           tolerance_usecs: int | None,
           timeout: float | None, junit: str | None, as_json: bool, stack: str = "linux") -> int:
    from rawtcp.script.suite import (
        DEFAULT_JOB_TIMEOUT,
        SuiteOptions,
        failures_text,
        outcome_counts,
        plan,
        progress_line,
        run_suite,
        summary_table,
        write_junit,
    )

    planned = plan(files, modes)
    if stack != "linux":
        from rawtcp.lab.errors import LabError
        from rawtcp.lab.stack import check_stack

        try:
            check_stack(stack)  # once, before a hundred children each say it
        except LabError as exc:
            raise errors.RawtcpError(str(exc), errors.BAD_INPUT) from None
    opts = SuiteOptions(variants=modes, jobs=jobs, defines=symbols, tolerance_usecs=tolerance_usecs,
                        timeout=timeout or DEFAULT_JOB_TIMEOUT, retries=retries, stack=stack)

    def report(result: Any) -> None:
        click.echo(json.dumps(result.to_dict()) if as_json else progress_line(result))
        sys.stdout.flush()

    results = run_suite(planned, opts, report)
    if junit:
        write_junit(results, junit)
    failed = [r for r in results if not r.passed]
    if as_json:
        counts = {m: {"passed": sum(r.passed for r in results if r.job.variant == m),
                      "total": sum(r.job.variant == m for r in results),
                      **outcome_counts([r for r in results if r.job.variant == m])} for m in modes}
        click.echo(json.dumps({"summary": counts, "failed": len(failed), "stack": stack}))
    else:
        click.echo("")
        click.echo(summary_table(results, modes))
        if failed:
            click.echo("\nfailures (first error):")
            click.echo(failures_text(results))
    if not failed:
        return errors.OK
    # unsupported scripts alone are bad input for this stack (2), as each one is on its own
    return errors.FAILED if any(r.outcome in ("fail", "timeout") for r in failed) else errors.BAD_INPUT


def _check(files: list[Path], modes: list[str], symbols: dict[str, str], as_json: bool) -> int:
    """Parse and validate each script in each mode, without root or network."""
    from rawtcp.script.check import check_script
    from rawtcp.script.suite import VARIANT_DEFINES, variant_applies

    bad = 0
    for path in files:
        for mode in modes:
            if not variant_applies(path, mode):
                continue
            # the address mode comes from the command line here, with run_all.py's addresses: the
            # script's own address lines are overridden, as packetdrill's command line overrides them
            problems = check_script(str(path), {**VARIANT_DEFINES[mode], **symbols}, mode,
                                    overrides=ADDRESS_OPTIONS)
            bad += bool(problems)
            if as_json:
                click.echo(json.dumps({"script": str(path), "variant": mode, "ok": not problems,
                                       "problems": problems}))
            else:
                for problem in problems:
                    click.echo(f"{problem} [{mode}]" if len(modes) > 1 else problem, err=True)
    if not as_json:
        click.echo(f"{'all scripts are valid' if not bad else f'{bad} script run(s) have problems'}")
    return errors.BAD_INPUT if bad else errors.OK


ADDRESS_OPTIONS = ("local_ip", "remote_ip", "gateway_ip", "netmask_ip")


def _single_junit(result: Any, mode: str, path: str) -> None:
    from rawtcp.script.suite import Job, JobResult, write_junit

    outcome = "pass" if result.passed else ("fail" if result.exit_code == 1 else "error")
    error = (result.error or "").splitlines()[0] if result.error else None
    write_junit([JobResult(Job(Path(result.path), mode, result.path), outcome, result.duration, error,
                           result.exit_code)], path)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per lab.")
@click.option("--lesson", is_flag=True, help="Print the seed exchange and the questions the labs answer.")
def labs(as_json: bool, lesson: bool) -> None:
    """List the lab catalogue: one lab per question the seed exchange raises (see --lesson)."""
    from rawtcp.script.catalogue import LABS, LESSON

    if lesson:
        click.echo(LESSON.read_text(), nl=False)
        return

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
@click.option("-6", "--ipv6", is_flag=True, help="Run the lab over IPv6 (the lab's 2001:db8:: addresses).")
@click.option("--stack", type=click.Choice(["linux", "pytcp"]), default="linux", show_default=True,
              help="The TCP stack under test: Linux's, or PyTCP on a TAP device (extra rawtcp[pytcp]).")
def lab_run(name: str | None, run_all: bool, as_json: bool, pcap: str | None, compare_kernel: bool,
            ipv6: bool, stack: str) -> int:
    """Run lab NAME (see `rawtcp labs`) in fresh namespaces, with its ladder and the kernel's states."""
    from rawtcp.script.catalogue import LABS, find, run_lab
    from rawtcp.script.errors import ScriptError

    if run_all == bool(name):
        raise click.UsageError("give a lab NAME or --all")
    errors.require_privileges("rawtcp lab run")
    chosen = list(LABS) if run_all else [find(name or "")]
    if compare_kernel:
        if stack != "linux":
            raise click.UsageError("--compare-kernel runs against Linux (rawtcp compare --stacks compares stacks)")
        if ipv6:
            raise click.UsageError("--compare-kernel runs over IPv4 only")
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
            result = _guard_setup(run_lab, lab, pcap=lab_pcap, ip_version="ipv6" if ipv6 else "ipv4", stack=stack)
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
    import os
    import tempfile

    from rawtcp.capture.compare import compare_captures, render_compare
    from rawtcp.script.catalogue import run_lab
    from rawtcp.session.kernel_compare import run_kernel_client

    # A directory of our own (mkdtemp: created atomically, mode 0700) holds both captures; they are
    # kept, and named at the end, for the user to open.
    crafted = pcap or os.path.join(tempfile.mkdtemp(prefix=f"rawtcp-{lab.name}-"), f"{lab.name}.pcap")
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
