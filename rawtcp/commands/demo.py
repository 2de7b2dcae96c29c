"""rawtcp demo: the main job — SEED.md's ten segments against a real Linux kernel, as a ladder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from rawtcp import errors
from rawtcp.commands.common import finite, output_path, reap_leftovers, terminal_width
from rawtcp.commands.output import Printer
from rawtcp.core.segment import segment_words

Record = dict[str, Any]


LABEL_WIDTH = 64  # the segment column when nothing forces it narrower (README's picture)


def _label(rec: Record) -> str:
    """The segment column: flags, seq and ack in columns (absolute, relative in brackets), then length and
    options; no window, so the ladder fits the README's width."""
    ack = None if rec.get("ack") is None else f"{rec['ack']} ({rec['rel_ack']})"
    words = segment_words(rec["flags"], f"{rec['seq']} ({rec['rel_seq']})", ack, None, rec["len"],
                          rec.get("options") or "", brackets=True)
    tail = " ".join(w for w in (words.length, words.options) if w)
    return f"{words.flags:<5} {words.seq:<22} {words.ack:<22} {tail}"


def _peer_state(rec: Record, stack: str) -> str:
    # Linux answers a SYN from a request sock, which has no state of its own to show; a user-space
    # stack's session exists from the SYN on
    return rec.get("kernel_state") or ("LISTEN (request sock)" if stack == "linux" else "-")


def _ladder_line(n: int, rec: Record, label_width: int = LABEL_WIDTH, stack: str = "linux") -> str:
    arrow = "──▶" if rec["dir"] == "out" else "◀──"
    return f"{n:>2}  {rec['state']:<12} {arrow} {_label(rec):<{label_width}} {arrow} {_peer_state(rec, stack)}"


def ladder_lines(segments: list[Record], width: int | None = None, stack: str = "linux") -> list[str]:
    """The demo's ladder, header first, the right-hand column headed by the stack under test. ``width``
    (the terminal's) makes it fit: the segment column shrinks to its longest label, and if that is still
    too wide the stack's state goes on a line of its own under each segment instead of being cut."""
    from rawtcp.lab.stack import label, state_label

    heading = label(stack)
    header = f"{'#':>2}  {'rawtcp':<12}     {'segment':<{LABEL_WIDTH}}     {heading}"
    lines = [header] + [_ladder_line(n, rec, stack=stack) for n, rec in enumerate(segments, 1)]
    if width is None or max(map(len, lines)) <= width:
        return lines
    label_width = max((len(_label(rec).rstrip()) for rec in segments), default=0)
    header = f"{'#':>2}  {'rawtcp':<12}     {'segment':<{label_width}}     {heading}"
    lines = [header] + [_ladder_line(n, rec, label_width, stack).rstrip() for n, rec in enumerate(segments, 1)]
    if max(map(len, lines)) <= width:
        return lines
    lines = [f"{'#':>2}  {'rawtcp':<12}     segment   ({heading}'s state below each)"]
    for n, rec in enumerate(segments, 1):
        arrow = "──▶" if rec["dir"] == "out" else "◀──"
        lines.append(f"{n:>2}  {rec['state']:<12} {arrow} {' '.join(_label(rec).split())}")
        lines.append(f"{'':>2}  {'':<12} {arrow} {state_label(stack)}: {_peer_state(rec, stack)}")
    return lines


@click.command()
@click.option("--pcap", type=click.Path(dir_okay=False), default="rawtcp-demo.pcap", show_default=True,
              help="Where to write the capture (a .states.json with the kernel's states goes beside it).")
@click.option("--isn", type=click.IntRange(0, 2**32 - 1), default=1000, show_default=True,
              help="rawtcp's initial sequence number (SEED.md's client uses 1000).")
@click.option("--msl2", type=finite(0), default=1.0, show_default=True, metavar="S",
              help="TIME-WAIT length, seconds.")
@click.option("-6", "--ipv6", is_flag=True, help="The same exchange over IPv6 (2001:db8::1 ↔ 2001:db8::2).")
@click.option("--stack", type=click.Choice(["linux", "pytcp"]), default="linux", show_default=True,
              help="The server's TCP stack: Linux's, or PyTCP on a TAP device (extra rawtcp[pytcp]).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text.")
def demo(pcap: str, isn: int, msl2: float, ipv6: bool, stack: str, as_json: bool) -> None:
    """Reproduce SEED.md's segments 1–10 against a real kernel in a lab of its own, then remove the lab."""
    from rawtcp.lab.topology import LabConfig
    from rawtcp.session.demo import DockerPeer, check_shape, run_demo

    docker = DockerPeer.from_env()
    if ipv6 and docker is not None:
        raise errors.RawtcpError("demo --ipv6 needs a lab of its own: the compose lab's network is IPv4 only",
                                 errors.BAD_INPUT)
    errors.require_privileges("rawtcp demo")
    printer = Printer(as_json)
    reap_leftovers(printer)
    pcap_path = output_path(pcap)
    if docker is None:
        lab = LabConfig()
        server = f"[{lab.server_ip6}]" if ipv6 else lab.server_ip
        client = lab.client_ip6 if ipv6 else lab.client_ip
        printer.message("rawtcp demo: a fresh lab (two namespaces, a veth), Linux listening with the seed "
                        f"server on {server}:{lab.port}; rawtcp is the client at {client} with ISN "
                        f"{isn}.\n")
    else:
        printer.message(f"rawtcp demo (compose lab): Linux's seed server in the listener container at "
                        f"{docker.ip}:{docker.port}; rawtcp is the client in this container, ISN {isn}.\n")
    if stack != "linux" and docker is not None:
        raise errors.RawtcpError("demo --stack needs a lab of its own, not the compose lab", errors.BAD_INPUT)
    result = run_demo(pcap_path, printer, isn=isn, msl2=msl2, docker=docker, ipv6=ipv6, stack_name=stack)
    if as_json:
        click.echo(json.dumps({"type": "summary", "mismatches": result.mismatches, "pcap": pcap_path,
                               "listener": result.listener_log}))
        raise SystemExit(errors.FAILED if result.mismatches else errors.OK)
    from rawtcp.lab.stack import label, state_label

    peer = "the kernel" if stack == "linux" else label(stack)
    click.echo("\nThe exchange as a ladder (absolute and relative numbers, relative as tshark counts them);"
               f"\nrawtcp's state on the left, {peer}'s own socket state on the right:\n")
    for line in ladder_lines(result.segments, terminal_width(), stack):
        click.echo(line)
    kernel_path = " → ".join(dict.fromkeys(result.kernel_states)) or f"(no {label(stack)} state changes seen)"
    client_path = " → ".join(result.client_states)
    click.echo(f"\nrawtcp went through: {client_path}")
    click.echo(f"{peer} socket went through: {kernel_path}")
    for entry in result.listener_log:
        click.echo(f"{peer} listener received {entry.get('received')} bytes and sent {entry.get('sent')}")
    click.echo(f"rawtcp received: {result.received!r}")
    problems = check_shape(result.segments)
    if problems:
        click.echo("\nThe shape differs from SEED.md:")
        for line in problems:
            click.echo(f"  {line}")
    else:
        click.echo(f"\nSame shape as SEED.md's segments 1–10 ({peer} picked its own ISN).")
    click.echo(f"capture: {pcap_path}  ({state_label(stack)} states: {pcap_path}.states.json; "
               f"`rawtcp ladder {Path(pcap).name}` draws it again)")
    if problems:
        raise SystemExit(errors.FAILED)
