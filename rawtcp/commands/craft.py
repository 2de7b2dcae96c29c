"""probe, flood: crafted segments with matched answers, a bounded SYN flood."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click

from rawtcp import errors
from rawtcp.commands.common import default_lab, finite, lab_is_up, reap_leftovers, resolve_host
from rawtcp.commands.output import Printer

# Flag names as nping's --flags takes them (and tcpdump's "." for ACK), to the letters of FSRPAUEC.
FLAG_NAMES = {"fin": "F", "syn": "S", "rst": "R", "reset": "R", "psh": "P", "push": "P", "ack": "A",
              "urg": "U", "ece": "E", "cwr": "C", "all": "FSRPAUEC", "none": ""}
# hping3's flag options: -S -A -F -R -P -U, -X (its "Xmas" bit, ECE) and -Y ("Ymas", CWR).
HPING_FLAGS = {"syn_flag": "S", "ack_flag": "A", "fin_flag": "F", "rst_flag": "R", "psh_flag": "P",
               "urg_flag": "U", "ece_flag": "E", "cwr_flag": "C"}


def flag_letters(text: str) -> str:
    """The letters of a --flags value in any spelling users bring from other tools:
    letters (``SA``, hping3/rawtcp), tcpdump's ``S.`` (``.`` is ACK), nping's names ``syn,ack``
    (comma-separated, any case), ``none``/``""`` for no flag at all."""
    from rawtcp.craft.errors import CraftError

    words = [w.strip().lower() for w in text.replace("|", ",").replace("+", ",").split(",")]
    if len(words) > 1 or words[0] in FLAG_NAMES:
        letters = ""
        for word in words:
            if word not in FLAG_NAMES:
                raise CraftError(f"unknown TCP flag {word!r} in {text!r}: use names from "
                                 "fin,syn,rst,psh,ack,urg,ece,cwr or letters from FSRPAUEC")
            letters += FLAG_NAMES[word]
        return letters
    return text.strip().replace(".", "A")


def _where(netns: str | None, iface: str | None) -> str | None:
    """The namespace to send from: --netns, else the lab's client namespace (unless --iface is given)."""
    if netns is None and iface is None:
        if not lab_is_up(default_lab()):
            raise errors.RawtcpError("no lab is up: run `sudo rawtcp lab up` first (or give --netns/--iface)",
                                     errors.NO_LAB)
        return str(default_lab().client_ns)
    return netns


@contextlib.contextmanager
def _inside(netns: str | None) -> Iterator[None]:
    if netns is None:
        yield
        return
    from rawtcp.wire import netns as ns

    with ns.inside(netns):
        yield


@click.command()
@click.argument("host")
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--flags", "flags_text", metavar="FLAGS",
              help="TCP flags: letters from FSRPAUEC (SA; A = ACK, E = ECE, C = CWR), tcpdump's S. "
                   "(. = ACK), or nping's names syn,ack; none for no flag (default S, or the -S/-A/... given).")
@click.option("-S", "syn_flag", is_flag=True, help="Set SYN (hping3 style; adds to --flags).")
@click.option("-A", "ack_flag", is_flag=True, help="Set ACK (hping3 style).")
@click.option("-F", "fin_flag", is_flag=True, help="Set FIN (hping3 style).")
@click.option("-R", "rst_flag", is_flag=True, help="Set RST (hping3 style).")
@click.option("-P", "psh_flag", is_flag=True, help="Set PSH (hping3 style).")
@click.option("-U", "urg_flag", is_flag=True, help="Set URG (hping3 style).")
@click.option("-X", "ece_flag", is_flag=True, help="Set ECE (hping3's -X).")
@click.option("-Y", "cwr_flag", is_flag=True, help="Set CWR (hping3's -Y).")
@click.option("--seq", type=click.IntRange(0, 2**32 - 1), help="Sequence number (default random per probe).")
@click.option("--ack", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Acknowledgment number.")
@click.option("--win", type=click.IntRange(0, 65535), default=64240, show_default=True,
              help="Window field, bytes (unscaled).")
@click.option("--mss", type=click.IntRange(0, 65535), help="MSS option, bytes (default: none).")
@click.option("--wscale", type=click.IntRange(0, 255), help="Window-scale option, a shift (default: none).")
@click.option("--sackok", is_flag=True, help="SACK-permitted option.")
@click.option("--ts", metavar="VAL,ECR", help="Timestamps option: VAL,ECR (default: none).")
@click.option("--opt", "raw_opts", multiple=True, metavar="KIND:HEX", help="Raw option (repeatable).")
@click.option("--data", help="Payload text (0x... for hex; default: none).")
@click.option("--data-len", type=int, metavar="N", help="Payload of N zero bytes, 0-1460 (default 0).")
@click.option("--ttl", type=click.IntRange(0, 255), default=64, show_default=True, help="IP TTL (IPv6 hop limit).")
@click.option("--id", "ip_id", type=click.IntRange(0, 65535), help="IP identification (default counts from 1).")
@click.option("--df", is_flag=True, help="Set IP Don't Fragment.")
@click.option("--tos", type=click.IntRange(0, 255), default=0, show_default=True,
              help="IP TOS byte (IPv6 traffic class): DSCP << 2 | ECN.")
@click.option("--badsum", is_flag=True, help="Send a wrong TCP checksum.")
@click.option("--count", "-c", type=click.IntRange(1, 100_000), default=4, show_default=True,
              help="Number of probes to send.")
@click.option("--interval", type=finite(0), metavar="S", help="Seconds between probes (default 1).")
@click.option("--rate", type=finite(), metavar="PPS", help="Probes per second (instead of --interval).")
@click.option("--timeout", type=finite(0), default=1.0, show_default=True, metavar="S",
              help="Seconds to wait for each answer.")
@click.option("--sport", type=click.IntRange(1, 65535), help="Source port (default: one random port).")
@click.option("--sport-range", metavar="LO-HI", help="Source ports LO-HI, one per probe in turn.")
@click.option("--netns", help="Namespace to send from (default: the lab's client namespace).")
@click.option("--iface", help="Interface to send on (default: by routing table).")
@click.option("--no-rst", is_flag=True, help="Do not RST the half-open connection a SYN-ACK answer leaves.")
@click.option("--pcap", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write probes and answers to this pcap (default: none).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per probe, then a summary object.")
def probe(host: str, port: int, flags_text: str | None, seq: int | None, ack: int, win: int, mss: int | None,
          wscale: int | None, sackok: bool, ts: str | None, raw_opts: tuple[str, ...], data: str | None,
          data_len: int | None, ttl: int, ip_id: int | None, df: bool, tos: int, badsum: bool, count: int,
          interval: float | None, rate: float | None, timeout: float, sport: int | None, sport_range: str | None,
          netns: str | None, iface: str | None, no_rst: bool, pcap: str | None, as_json: bool,
          **hping_flags: bool) -> None:
    """Send crafted TCP segments to HOST PORT (IPv4 or IPv6) and show each answer (nping/hping style).

    Flags: --flags SA, --flags S. or --flags syn,ack, or hping3's -S -A; both together add up.
    """
    from rawtcp.capture.streams import endpoint_name
    from rawtcp.craft import probe as pr
    from rawtcp.craft import spec as sp
    from rawtcp.craft.errors import CraftError

    if interval is not None and rate is not None:
        raise CraftError("give --interval or --rate, not both")
    if rate is not None and rate <= 0:
        raise CraftError("--rate must be positive")
    if sport is not None and sport_range is not None:
        raise CraftError("give --sport or --sport-range, not both")
    letters = "".join(HPING_FLAGS[k] for k, on in hping_flags.items() if on)
    if flags_text is not None:
        letters = flag_letters(flags_text) + letters
        if not letters:
            letters = "none"  # --flags none: a segment without any flag, on purpose
    spec = pr.ProbeSpec(
        dst_ip=resolve_host(host), dport=port, flags=sp.parse_flags(letters or "S"), seq=seq, ack=ack, window=win,
        options=sp.build_options(mss, wscale, sackok, ts, raw_opts), payload=sp.build_payload(data, data_len),
        ttl=ttl, ip_id=ip_id, df=df, tos=tos, badsum=badsum, count=count,
        interval=1.0 / rate if rate is not None else (1.0 if interval is None else interval), timeout=timeout,
        sport=sport, sport_range=sp.parse_port_range(sport_range) if sport_range else None, iface=iface,
        pcap=pcap, reset_half_open=not no_rst,
    )
    spec.check()
    errors.require_privileges("rawtcp probe")
    printer = Printer(as_json)
    if not as_json:
        reap_leftovers(printer)
    where = _where(netns, iface)

    def started(run: pr.ProbeRun) -> None:
        if not as_json:
            click.echo(f"PROBE {count} x [{sp.flag_text(spec.flags)}] to {endpoint_name((spec.dst_ip, port))} "
                       f"from {run.src_ip} "
                       f"via {run.ifname} in {f'namespace {where}' if where else 'this namespace'} "
                       f"(interval {spec.interval:g} s, timeout {timeout:g} s)")

    def show(res: pr.ProbeResult) -> None:
        if as_json:
            click.echo(json.dumps(res.to_json()))
            return
        click.echo(pr.sent_line(res))
        click.echo(pr.reply_line(res))
        if res.rst_sent:
            click.echo(f"     RST sent: removes the half-open connection the SYN-ACK left on {res.dst}")

    with _inside(where):
        run = pr.run_probes(spec, show, started)
    summary = run.summary()
    if as_json:
        summary.update(src=run.src_ip, dst=endpoint_name((spec.dst_ip, port)), iface=run.ifname, netns=where)
        click.echo(json.dumps(summary))
    else:
        for line in pr.summary_lines(summary):
            click.echo(line)
        if pcap:
            click.echo(f"wrote {pcap}")


@click.command()
@click.argument("host")
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--syn", is_flag=True, required=True, help="SYN flood (the only kind so far; required).")
@click.option("--count", "-c", type=int, help="Stop after this many packets (give --count or --duration).")
@click.option("--duration", "-d", type=finite(), metavar="S", help="Stop after this many seconds.")
@click.option("--rate", type=finite(), metavar="PPS", help="Packets per second at most (default: as fast as possible).")
@click.option("--netns", help="Namespace to send from (default: the lab's client namespace).")
@click.option("--iface", help="Interface to send on (default: by routing table).")
@click.option("--keep-rsts", is_flag=True, help="Let our kernel RST the SYN-ACKs (the SYN queue then drains).")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
def flood(host: str, port: int, syn: bool, count: int | None, duration: float | None, rate: float | None,
          netns: str | None, iface: str | None, keep_rsts: bool, as_json: bool) -> None:
    """Bounded SYN flood to HOST PORT (lab addresses only: 198.18.0.0/15, 2001:db8::/32) from random ports and ISNs."""
    from rawtcp.capture.streams import endpoint_name
    from rawtcp.craft import flood as fl

    dst = resolve_host(host)
    fl.check_target(dst)
    fl.check_bounds(count, duration, rate)
    errors.require_privileges("rawtcp flood")
    printer = Printer(as_json)
    if not as_json:
        reap_leftovers(printer)
    where = _where(netns, iface)

    def started(info: dict[str, object]) -> None:
        if as_json:
            return
        bounds = [f"{count} packets" if count else "", f"{duration:g} s" if duration else "",
                  f"{rate:g} pps" if rate else "as fast as possible"]
        click.echo(f"FLOOD SYN to {endpoint_name((dst, port))} from {info['src']} (source ports {fl.SPORT_RANGE[0]}-"
                   f"{fl.SPORT_RANGE[1]}, random ISNs) via {info['iface']} in "
                   f"{f'namespace {where}' if where else 'this namespace'}: "
                   f"{', '.join(b for b in bounds if b)}"
                   + ("" if keep_rsts else "; our kernel's RSTs to the SYN-ACKs are dropped meanwhile"))

    with _inside(where):
        res = fl.flood_syn(dst, port, count=count, duration=duration, rate=rate, iface=iface,
                           suppress=not keep_rsts, on_start=started)
    if as_json:
        click.echo(json.dumps({**res.to_json(), "netns": where}))
    else:
        click.echo(f"sent {res.sent} SYNs in {res.seconds:.3f} s: {res.pps:,.0f} packets/s "
                   f"(stopped by {res.stopped_by})")

