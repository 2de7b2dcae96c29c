"""``rawtcp ladder`` and ``rawtcp compare``: draw a capture's TCP streams, compare two captures.

Registered lazily by rawtcp/cli.py as ``rawtcp.commands.capture:ladder`` and ``…:compare``. FILE may
be ``-`` (standard input) and gzip-compressed, as with tshark.

Exit status: ``ladder`` 0; ``compare`` 0 same, 1 different; both 2 for bad input — a missing, empty or
non-pcap file, an unsupported link type, no TCP, a stream that does not exist — with one line on
stderr, ``rawtcp: error: <message>``. A file cut in the middle of a packet is read as tshark reads
it: what comes before the cut is drawn or compared, a ``rawtcp: warning:`` line says where it ends,
and the exit status is 2, as tshark's is, so a script notices the damage. Packets cut short by the
snapshot length are kept (lengths come from the IP header) with one warning line, exit status
unchanged.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import NoReturn

import click

from rawtcp.capture.errors import CaptureError
from rawtcp.commands.common import finite, write_text

# errors of writing our own output (not of reading the capture)
_OUTPUT_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EPIPE, errno.EFBIG)

EXIT_SAME, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2


def _fail(message: str) -> NoReturn:
    click.echo(f"rawtcp: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _message(path: str, exc: Exception) -> str:
    if isinstance(exc, OSError):
        text = f"{exc.strerror or exc}"
        return f"{exc.filename or path}: {text}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if path in text else f"{path}: {text}"


@click.command("ladder")
@click.argument("file", metavar="FILE")
@click.option("--svg", "svg_out", metavar="OUT.svg", help="Write a standalone SVG ladder to OUT.svg ('-' for stdout).")
@click.option("--stream", "stream_no", type=click.IntRange(min=0), metavar="N",
              help="Only TCP stream N (tshark's tcp.stream numbering).")
@click.option("--absolute", is_flag=True,
              help="Show seq/ack as on the wire (default: relative to each side's ISN, as tshark shows them).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the streams as JSON: every segment with its frame, states and expert markers.")
@click.option("--color/--no-color", default=None, help="Colour the text ladder (default: when stdout is a terminal).")
def ladder(file: str, svg_out: str | None, stream_no: int | None, absolute: bool, as_json: bool,
           color: bool | None) -> None:
    """Draw the TCP streams of a pcap/pcapng FILE ('-' for stdin) as ladders, with both ends' states.

    Rows carry tshark's frame numbers and Wireshark's expert markers (retransmission, dup ACK…).
    """
    from rawtcp.capture.ladder import render_svg, render_text, stream_json
    from rawtcp.capture.pcap import ReadReport
    from rawtcp.capture.streams import read_capture

    name = "standard input" if file == "-" else file
    report = ReadReport(name)
    try:
        streams, total = read_capture(file, stream=stream_no, report=report)
        if not streams:
            if total == 0:
                # one line: a file cut before its first complete packet says so, with no warning beside it
                cut = " (truncated before its first complete packet)" if report.damaged else ""
                _fail(f"no TCP segments in {name}{cut}")
            _fail(f"no stream {stream_no} in {name} (it has 0..{total - 1})")
        _warn(report.warnings())
        if as_json:
            click.echo(json.dumps({"file": name, "warnings": report.warnings(),
                                   "streams": [stream_json(st, absolute) for st in streams]}, indent=2))
        elif svg_out:
            svg = render_svg(streams, absolute=absolute, title=name)
            if svg_out == "-":
                click.echo(svg, nl=False)
            else:
                write_text(svg_out, svg)  # a write error names the SVG file, not the capture
                click.echo(f"wrote {svg_out} ({len(streams)} stream{'s' if len(streams) != 1 else ''})",
                           err=True)
        for i, stream in enumerate(streams if not (as_json or svg_out) else []):
            if i:
                click.echo("")
            click.echo(render_text(stream, absolute=absolute, color=color is not False), nl=False,
                       color=color)
    except (CaptureError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
            raise  # writing our output failed (disk full, closed pipe): cli.main names standard output
        _fail(_message(name, exc))
    if report.damaged:
        sys.exit(EXIT_ERROR)


def _warn(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"rawtcp: warning: {line}", err=True)


@click.command("compare")
@click.argument("a", metavar="A", required=False)
@click.argument("b", metavar="B", required=False)
@click.option("--ignore", "ignore", multiple=True, metavar="FIELD",
              help="Leave FIELD out: direction, flags, seq, ack, len, window, options, payload, time "
                   "(repeat or separate with commas).")
@click.option("--time-tolerance", type=finite(0), metavar="MS",
              help="Also compare the gaps between consecutive segments, within MS milliseconds "
                   "(default: gaps not compared).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--color/--no-color", default=None, help="Colour the output (default: when stdout is a terminal).")
@click.option("--kernel", is_flag=True,
              help="Run the exchange twice in the lab (crafted and kernel client) and compare (needs root).")
@click.option("--force", is_flag=True, help="With --kernel: overwrite A and B if they exist.")
@click.option("--stacks", metavar="S1,S2", default=None,
              help="Run lab or script A (no B) against two TCP stacks, e.g. linux,pytcp, each in fresh "
                   "namespaces; show both ladders with each stack's states, then compare (needs root).")
@click.option("--pcap-prefix", default=None, metavar="PREFIX",
              help="With --stacks: keep the captures as PREFIX-S1.pcap and PREFIX-S2.pcap "
                   "(default: a temporary directory).")
def compare(a: str, b: str | None, ignore: tuple[str, ...], time_tolerance: float | None, as_json: bool,
            color: bool | None, kernel: bool, force: bool, stacks: str | None, pcap_prefix: str | None) -> None:
    """Compare the TCP exchanges of captures A and B ('-' for stdin); exit 0 same, 1 different, 2 error.

    Connections are matched by order and role, not port; segments are aligned by their place in the
    sequence space, so a segment in one capture only is one difference. ISNs, ports, IP ID, TTL,
    checksums, timestamp values and times are normalised away.

    With --stacks S1,S2, A is a lab (see `rawtcp labs`) or a script run on both stacks; exit 0 both
    runs passed and the exchanges are the same, 1 a run failed or they differ, 2 bad input (or a call
    a stack's agent reports as unsupported).
    """
    from rawtcp.capture.compare import compare_captures, render_compare

    fields = {part.strip() for item in ignore for part in item.split(",") if part.strip()}
    if stacks is not None:
        sys.exit(_compare_stacks(a, b, stacks, kernel, pcap_prefix, as_json, fields, time_tolerance, color))
    if pcap_prefix is not None:
        _fail("--pcap-prefix goes with --stacks")
    if kernel:
        crafted, kernel_file = a or "rawtcp-crafted.pcapng", b or "rawtcp-kernel.pcapng"
        if not force:
            for path in (crafted, kernel_file):
                if os.path.exists(path):
                    _fail(f"{path} exists: compare --kernel would overwrite it (use --force, or other names)")
        a, b = _run_kernel_exchange(crafted, kernel_file, as_json)
    if a is None or b is None:
        _fail("compare needs two captures: rawtcp compare A B")
    try:
        result = compare_captures(a, b, ignore=fields, time_tolerance_ms=time_tolerance)
    except CaptureError as exc:  # its message already names the file
        _fail(str(exc).splitlines()[0])
    except OSError as exc:
        _fail(_message(a, exc))
    _warn(result.warnings)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_compare(result, color=color is not False), nl=False, color=color)
    if result.damaged:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_SAME if result.same else EXIT_DIFFERENT)


def _compare_stacks(target: str | None, extra: str | None, stacks: str, kernel: bool, pcap_prefix: str | None,
                    as_json: bool, fields: set[str], time_tolerance: float | None, color: bool | None) -> int:
    """`compare --stacks S1,S2 LAB|SCRIPT`: one target, run on both stacks."""
    from rawtcp.commands.stacks import compare_stacks, parse_stacks

    if kernel:
        _fail("--stacks and --kernel are two different comparisons: give one")
    if target is None or extra is not None:
        _fail("compare --stacks takes one LAB or SCRIPT: rawtcp compare --stacks linux,pytcp seed-exchange")
    return compare_stacks(target, parse_stacks(stacks), pcap_prefix=pcap_prefix, as_json=as_json, ignore=fields,
                          time_tolerance=time_tolerance, color=color)


def _run_kernel_exchange(crafted: str, kernel: str, as_json: bool) -> tuple[str, str]:
    """`compare --kernel`: the same exchange by rawtcp and by a kernel client, captured in one lab."""
    from rawtcp import errors
    from rawtcp.commands.common import reap_leftovers
    from rawtcp.commands.output import Printer
    from rawtcp.session.kernel_compare import run_both

    errors.require_privileges("rawtcp compare --kernel")
    printer = Printer(as_json)
    reap_leftovers(printer)
    if not as_json:
        click.echo(f"running the exchange twice in a fresh lab: crafted → {crafted}, kernel → {kernel}", err=True)
    run_both(crafted, kernel, lambda rec: None)
    return crafted, kernel
